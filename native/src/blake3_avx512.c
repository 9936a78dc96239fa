/* blake3_avx512.c - BLAKE3 hash_many over sixteen inputs at once with
 * 512-bit AVX-512F vectors. Built with -mavx512f (hashes.cmake gives this
 * file alone that flag); x86-64 only. The dispatch code selects it only when
 * cpuid reports AVX-512F and the OS saves the opmask and all 32 ZMM
 * registers (XCR0 bits 5..7, read with xgetbv; see cpu_features.c).
 *
 * Layout as in the AVX2 backend: vector i holds state word i of all sixteen
 * inputs, so the rounds are vertical adds, xors and rotates. What AVX-512
 * adds besides the width: a rotate instruction (vprord), so each of G's four
 * rotations is one instruction instead of a shuffle or a shift-shift-or, and
 * 32 vector registers, so the 16 state vectors and the message words fit
 * without the spills that made the AVX2 backend resort to inline asm; plain
 * intrinsics do here.
 *
 * Each 64-byte block of the sixteen inputs is one 512-bit row per input;
 * a 16x16 transpose of 32-bit words turns the rows into the sixteen
 * message-word vectors. The resulting CVs are transposed back the same way.
 * A partial group of 9..15 inputs runs one 16-way pass with the spare lanes
 * re-reading input 0 (results dropped); 8 or fewer go to the AVX2 code (so
 * this backend requires AVX2 too), and single compressions to the SSE4.1
 * code, as for the AVX2 backend. Nothing allocates; the vectors live on the
 * stack. */
#include "blake3_impl.h"

#ifdef CB_HAVE_AVX512
#include <immintrin.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m512i add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
ALWAYS_INLINE __m512i xor_(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }

/* G (spec 2.2) on one (a, b, c, d) column or diagonal of all sixteen inputs. */
ALWAYS_INLINE void g(__m512i v[16], int a, int b, int c, int d, __m512i mx, __m512i my) {
    v[a] = add(add(v[a], v[b]), mx);
    v[d] = _mm512_ror_epi32(xor_(v[d], v[a]), 16);
    v[c] = add(v[c], v[d]);
    v[b] = _mm512_ror_epi32(xor_(v[b], v[c]), 12);
    v[a] = add(add(v[a], v[b]), my);
    v[d] = _mm512_ror_epi32(xor_(v[d], v[a]), 8);
    v[c] = add(v[c], v[d]);
    v[b] = _mm512_ror_epi32(xor_(v[b], v[c]), 7);
}

/* One round with message order s (a row of B3_SCHEDULE): the four columns,
 * then the four diagonals. Written as G after G; the compiler interleaves the
 * four independent G's of each half round. */
ALWAYS_INLINE void round16(__m512i v[16], const __m512i m[16], const uint8_t s[16]) {
    g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
}

/* h <- first half of compress(h, m) for sixteen inputs; c holds state rows
 * 2 and 3 (IV words, counter low/high, block length, flags). */
ALWAYS_INLINE void compress16(__m512i h[8], const __m512i c[8], const __m512i m[16]) {
    __m512i v[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[8 + i] = c[i];
    }
    round16(v, m, B3_SCHEDULE[0]);
    round16(v, m, B3_SCHEDULE[1]);
    round16(v, m, B3_SCHEDULE[2]);
    round16(v, m, B3_SCHEDULE[3]);
    round16(v, m, B3_SCHEDULE[4]);
    round16(v, m, B3_SCHEDULE[5]);
    round16(v, m, B3_SCHEDULE[6]);
    for (int i = 0; i < 8; i++) h[i] = xor_(v[i], v[8 + i]);
}

/* In place 16x16 transpose of 32-bit words: x[j] word i <-> x[i] word j.
 * Per 128-bit lane, unpacks gather word w of four rows; then two rounds of
 * 128-bit lane shuffles put lane L of rows 4g..4g+3 into lane g. */
ALWAYS_INLINE void transpose16(__m512i x[16]) {
    __m512i t[16], u[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(x[2 * k], x[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(x[2 * k], x[2 * k + 1]);
    }
    /* u[4g + w], 128-bit lane L: word 4L + w of rows 4g..4g+3. */
    for (int g4 = 0; g4 < 16; g4 += 4) {
        u[g4 + 0] = _mm512_unpacklo_epi64(t[g4], t[g4 + 2]);
        u[g4 + 1] = _mm512_unpackhi_epi64(t[g4], t[g4 + 2]);
        u[g4 + 2] = _mm512_unpacklo_epi64(t[g4 + 1], t[g4 + 3]);
        u[g4 + 3] = _mm512_unpackhi_epi64(t[g4 + 1], t[g4 + 3]);
    }
    for (int w = 0; w < 4; w++) {
        __m512i lo01 = _mm512_shuffle_i32x4(u[w], u[4 + w], 0x44);  /* lanes 0,1 | 0,1 */
        __m512i hi01 = _mm512_shuffle_i32x4(u[w], u[4 + w], 0xEE);  /* lanes 2,3 | 2,3 */
        __m512i lo23 = _mm512_shuffle_i32x4(u[8 + w], u[12 + w], 0x44);
        __m512i hi23 = _mm512_shuffle_i32x4(u[8 + w], u[12 + w], 0xEE);
        x[w] = _mm512_shuffle_i32x4(lo01, lo23, 0x88);      /* lane 0 of each */
        x[4 + w] = _mm512_shuffle_i32x4(lo01, lo23, 0xDD);  /* lane 1 */
        x[8 + w] = _mm512_shuffle_i32x4(hi01, hi23, 0x88);  /* lane 2 */
        x[12 + w] = _mm512_shuffle_i32x4(hi01, hi23, 0xDD); /* lane 3 */
    }
}

static void hash16_lanes(const uint8_t *const lanes[16], size_t blocks, const uint32_t key[8],
                         uint64_t counter, int inc, uint8_t flags, uint8_t flags_start,
                         uint8_t flags_end, uint8_t *out) {
    __m512i h[8], m[16], c[8];
    for (int i = 0; i < 8; i++) h[i] = _mm512_set1_epi32((int)key[i]);
    uint32_t lo[16], hi[16];
    for (int j = 0; j < 16; j++) {
        uint64_t ctr = counter + (inc ? (uint64_t)j : 0);
        lo[j] = (uint32_t)ctr;
        hi[j] = (uint32_t)(ctr >> 32);
    }
    for (int i = 0; i < 4; i++) c[i] = _mm512_set1_epi32((int)B3_IV[i]);
    c[4] = _mm512_loadu_si512((const void *)lo);
    c[5] = _mm512_loadu_si512((const void *)hi);
    c[6] = _mm512_set1_epi32(B3_BLOCK_LEN);
    for (size_t b = 0; b < blocks; b++) {
        const size_t off = b * B3_BLOCK_LEN;
        for (int j = 0; j < 16; j++) {
            /* Two blocks ahead in each of the sixteen streams, as in the
             * AVX2 backend (the hardware prefetcher does not follow that
             * many). Prefetches never fault past the end of an input. */
            _mm_prefetch((const char *)(lanes[j] + off + 2 * B3_BLOCK_LEN), _MM_HINT_T0);
            m[j] = _mm512_loadu_si512((const void *)(lanes[j] + off));
        }
        transpose16(m);
        uint8_t f = flags;
        if (b == 0) f |= flags_start;
        if (b + 1 == blocks) f |= flags_end;
        c[7] = _mm512_set1_epi32(f);
        compress16(h, c, m);
    }
    /* Rows 8..15 are padding: after the transpose, the low 256 bits of
     * x[j] are the eight CV words of input j. */
    __m512i x[16];
    for (int i = 0; i < 8; i++) {
        x[i] = h[i];
        x[8 + i] = _mm512_setzero_si512();
    }
    transpose16(x);
    for (int j = 0; j < 16; j++)
        _mm256_storeu_si256((__m256i *)(void *)(out + 32 * j), _mm512_castsi512_si256(x[j]));
}

void cb_b3_hash_many_avx512(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                            const uint32_t key[8], uint64_t counter, int increment_counter,
                            uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out) {
    while (n >= 16) {
        const uint8_t *lanes[16];
        for (size_t j = 0; j < 16; j++) lanes[j] = input + j * stride;
        hash16_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start,
                     flags_end, out);
        input += 16 * stride;
        out += 16 * 32;
        n -= 16;
        if (increment_counter) counter += 16;
    }
    if (n > 8) {
        /* 9..15 inputs: one padded 16-way pass costs about what an 8-way
         * pass plus a partial one would. */
        const uint8_t *lanes[16];
        for (size_t j = 0; j < 16; j++) lanes[j] = input + (j < n ? j : 0) * stride;
        uint8_t tmp[16 * 32];
        hash16_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start,
                     flags_end, tmp);
        memcpy(out, tmp, n * 32);
        return;
    }
    cb_b3_hash_many_avx2(input, stride, n, blocks, key, counter, increment_counter, flags,
                         flags_start, flags_end, out);
}
#endif
