/* blake3_avx2.c - BLAKE3 hash_many over eight inputs at once with 256-bit
 * AVX2 vectors. Built with -mavx2.
 *
 * Same word-sliced layout as the SSE4.1 hash_many: vector i holds state word
 * i of all eight inputs, so the rounds are plain vertical adds, xors and
 * rotates. Each 64-byte block of the eight inputs is loaded as sixteen
 * 256-bit rows and transposed (two 8x8 transposes of 32-bit words) into the
 * sixteen message-word vectors. Fewer than eight inputs, and single
 * compressions, go to the SSE4.1 code (the AVX2 backend requires SSE4.1). */
#include "blake3_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
ALWAYS_INLINE __m256i xor_(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
/* Byte shuffles rotating each 32-bit word right by 16 and by 8. */
static const uint8_t ROT16_MASK[32] __attribute__((aligned(32))) = {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 18, 19, 16, 17, 22, 23, 20, 21, 26, 27, 24, 25, 30, 31, 28, 29};
static const uint8_t ROT8_MASK[32] __attribute__((aligned(32))) = {1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 17, 18, 19, 16, 21, 22, 23, 20, 25, 26, 27, 24, 29, 30, 31, 28};

/* The shuffle takes its mask straight from memory (inline asm, since the
 * compiler would otherwise pin both masks in registers): with 16 state
 * vectors and only 16 registers, two more live values cost many spills
 * (measured: about 15% of throughput). */
ALWAYS_INLINE __m256i rot16(__m256i x) {
    __asm__("vpshufb {%1, %0, %0|%0, %0, %1}" : "+x"(x) : "m"(*(const uint8_t(*)[32])ROT16_MASK));
    return x;
}
ALWAYS_INLINE __m256i rot8(__m256i x) {
    __asm__("vpshufb {%1, %0, %0|%0, %0, %1}" : "+x"(x) : "m"(*(const uint8_t(*)[32])ROT8_MASK));
    return x;
}
ALWAYS_INLINE __m256i rot12(__m256i x) {
    return _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20));
}
ALWAYS_INLINE __m256i rot7(__m256i x) {
    return _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25));
}

/* G on state words a, b, c, d of every lane (spec 2.2). */
ALWAYS_INLINE void g8(__m256i v[16], int a, int b, int c, int d, __m256i mx, __m256i my) {
    v[a] = add(add(v[a], v[b]), mx);
    v[d] = rot16(xor_(v[d], v[a]));
    v[c] = add(v[c], v[d]);
    v[b] = rot12(xor_(v[b], v[c]));
    v[a] = add(add(v[a], v[b]), my);
    v[d] = rot8(xor_(v[d], v[a]));
    v[c] = add(v[c], v[d]);
    v[b] = rot7(xor_(v[b], v[c]));
}

/* One round: columns, then diagonals. The four G calls of each half are
 * independent; written one after another (not interleaved by hand), GCC
 * keeps fewer values live and the CPU overlaps them anyway (measured faster
 * than the interleaved form). */
ALWAYS_INLINE void round8(__m256i v[16], const __m256i m[16], int r) {
    const uint8_t *s = B3_SCHEDULE[r];
    g8(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    g8(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    g8(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    g8(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    g8(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    g8(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    g8(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    g8(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
}

/* In place 8x8 transpose of 32-bit words: x[j] word i <-> x[i] word j. */
ALWAYS_INLINE void transpose8(__m256i x[8]) {
    __m256i t0 = _mm256_unpacklo_epi32(x[0], x[1]), t1 = _mm256_unpackhi_epi32(x[0], x[1]);
    __m256i t2 = _mm256_unpacklo_epi32(x[2], x[3]), t3 = _mm256_unpackhi_epi32(x[2], x[3]);
    __m256i t4 = _mm256_unpacklo_epi32(x[4], x[5]), t5 = _mm256_unpackhi_epi32(x[4], x[5]);
    __m256i t6 = _mm256_unpacklo_epi32(x[6], x[7]), t7 = _mm256_unpackhi_epi32(x[6], x[7]);
    /* uK holds words K and K+4 of rows 0..3 (u0..u3) or rows 4..7 (u4..u7). */
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    x[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    x[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    x[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    x[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    x[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    x[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    x[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    x[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

static void hash8_lanes(const uint8_t *const lanes[8], size_t blocks, const uint32_t key[8],
                  uint64_t counter, int inc, uint8_t flags, uint8_t flags_start, uint8_t flags_end,
                  uint8_t *out) {
    __m256i h[8], m[16], v[16];
    for (int i = 0; i < 8; i++) h[i] = _mm256_set1_epi32((int)key[i]);
    uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; j++) {
        uint64_t c = counter + (inc ? (uint64_t)j : 0);
        lo[j] = (uint32_t)c;
        hi[j] = (uint32_t)(c >> 32);
    }
    const __m256i ctr_lo = _mm256_loadu_si256((const __m256i *)lo);
    const __m256i ctr_hi = _mm256_loadu_si256((const __m256i *)hi);
    for (size_t b = 0; b < blocks; b++) {
        const size_t off = b * B3_BLOCK_LEN;
        for (int j = 0; j < 8; j++) {
            m[j] = _mm256_loadu_si256((const __m256i *)(lanes[j] + off));
            m[8 + j] = _mm256_loadu_si256((const __m256i *)(lanes[j] + off + 32));
        }
        transpose8(&m[0]);
        transpose8(&m[8]);
        uint8_t f = flags;
        if (b == 0) f |= flags_start;
        if (b + 1 == blocks) f |= flags_end;
        for (int i = 0; i < 8; i++) v[i] = h[i];
        for (int i = 0; i < 4; i++) v[8 + i] = _mm256_set1_epi32((int)B3_IV[i]);
        v[12] = ctr_lo;
        v[13] = ctr_hi;
        v[14] = _mm256_set1_epi32(B3_BLOCK_LEN);
        v[15] = _mm256_set1_epi32(f);
        round8(v, m, 0);
        round8(v, m, 1);
        round8(v, m, 2);
        round8(v, m, 3);
        round8(v, m, 4);
        round8(v, m, 5);
        round8(v, m, 6);
        for (int i = 0; i < 8; i++) h[i] = xor_(v[i], v[i + 8]);
    }
    transpose8(h);
    for (int j = 0; j < 8; j++) _mm256_storeu_si256((__m256i *)(out + 32 * j), h[j]);
}

void cb_b3_hash_many_avx2(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                          const uint32_t key[8], uint64_t counter, int increment_counter,
                          uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out) {
    while (n >= 8) {
        const uint8_t *lanes[8];
        for (size_t j = 0; j < 8; j++) lanes[j] = input + j * stride;
        hash8_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start, flags_end,
                    out);
        input += 8 * stride;
        out += 8 * 32;
        n -= 8;
        if (increment_counter) counter += 8;
    }
    if (n >= 3) {
        /* A partial group: one 8-way pass with the spare lanes re-reading
         * input 0 (their results are dropped) is faster than 4-way plus
         * single compressions for 3 or more inputs. */
        const uint8_t *lanes[8];
        for (size_t j = 0; j < 8; j++) lanes[j] = input + (j < n ? j : 0) * stride;
        uint8_t tmp[8 * 32];
        hash8_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start, flags_end,
                    tmp);
        memcpy(out, tmp, n * 32);
        return;
    }
    cb_b3_hash_many_sse41(input, stride, n, blocks, key, counter, increment_counter, flags,
                          flags_start, flags_end, out);
}
#endif
