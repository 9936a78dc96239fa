/* blake3_sse41.c - BLAKE3 with 128-bit SSE4.1 vectors. Built with -msse4.1.
 *
 * Two layouts:
 * - one compression: the 4x4 state as four row vectors; a round runs G on
 *   the four columns at once, rotates rows 1..3 so the diagonals line up as
 *   columns, runs G again and rotates back;
 * - hash_many: four inputs side by side, vector i holding state word i of
 *   all four (the message blocks are transposed on load), so G needs no
 *   shuffles at all. */
#include "blake3_impl.h"

#ifdef CB_HAVE_X86
#include <immintrin.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE __m128i add(__m128i a, __m128i b) { return _mm_add_epi32(a, b); }
ALWAYS_INLINE __m128i xor_(__m128i a, __m128i b) { return _mm_xor_si128(a, b); }
/* Byte shuffles rotating each 32-bit word right by 16 and by 8. */
static const uint8_t ROT16_MASK[16] __attribute__((aligned(16))) = {
    2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
static const uint8_t ROT8_MASK[16] __attribute__((aligned(16))) = {
    1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12};

/* The shuffle takes its mask straight from memory (inline asm, since the
 * compiler would otherwise pin both masks in registers): with 16 state
 * vectors and only 16 registers, two more live values cost many spills
 * (measured on the same code with 256-bit vectors: about 15%). */
ALWAYS_INLINE __m128i rot16(__m128i x) {
    __asm__("pshufb {%1, %0|%0, %1}" : "+x"(x) : "m"(*(const uint8_t(*)[16])ROT16_MASK));
    return x;
}
ALWAYS_INLINE __m128i rot8(__m128i x) {
    __asm__("pshufb {%1, %0|%0, %1}" : "+x"(x) : "m"(*(const uint8_t(*)[16])ROT8_MASK));
    return x;
}
ALWAYS_INLINE __m128i rot12(__m128i x) {
    return _mm_or_si128(_mm_srli_epi32(x, 12), _mm_slli_epi32(x, 20));
}
ALWAYS_INLINE __m128i rot7(__m128i x) {
    return _mm_or_si128(_mm_srli_epi32(x, 7), _mm_slli_epi32(x, 25));
}

/* ---- one compression, row layout ---------------------------------------- */

ALWAYS_INLINE void g_rows(__m128i *a, __m128i *b, __m128i *c, __m128i *d, __m128i mx, __m128i my) {
    *a = add(add(*a, *b), mx);
    *d = rot16(xor_(*d, *a));
    *c = add(*c, *d);
    *b = rot12(xor_(*b, *c));
    *a = add(add(*a, *b), my);
    *d = rot8(xor_(*d, *a));
    *c = add(*c, *d);
    *b = rot7(xor_(*b, *c));
}

ALWAYS_INLINE void compress_rows(__m128i r[4], const uint32_t cv[8], const uint8_t block[64],
                                 uint8_t block_len, uint64_t counter, uint8_t flags) {
    uint32_t m[16];
    memcpy(m, block, 64); /* x86 is little-endian, as BLAKE3's words are */
    r[0] = _mm_loadu_si128((const __m128i *)&cv[0]);
    r[1] = _mm_loadu_si128((const __m128i *)&cv[4]);
    r[2] = _mm_set_epi32((int)B3_IV[3], (int)B3_IV[2], (int)B3_IV[1], (int)B3_IV[0]);
    r[3] = _mm_set_epi32((int)flags, (int)block_len, (int)(uint32_t)(counter >> 32),
                         (int)(uint32_t)counter);
    for (int i = 0; i < 7; i++) {
        const uint8_t *s = B3_SCHEDULE[i];
        g_rows(&r[0], &r[1], &r[2], &r[3],
               _mm_set_epi32((int)m[s[6]], (int)m[s[4]], (int)m[s[2]], (int)m[s[0]]),
               _mm_set_epi32((int)m[s[7]], (int)m[s[5]], (int)m[s[3]], (int)m[s[1]]));
        /* Lane i of row k moves to hold element (i + k) mod 4: diagonals. */
        r[1] = _mm_shuffle_epi32(r[1], _MM_SHUFFLE(0, 3, 2, 1));
        r[2] = _mm_shuffle_epi32(r[2], _MM_SHUFFLE(1, 0, 3, 2));
        r[3] = _mm_shuffle_epi32(r[3], _MM_SHUFFLE(2, 1, 0, 3));
        g_rows(&r[0], &r[1], &r[2], &r[3],
               _mm_set_epi32((int)m[s[14]], (int)m[s[12]], (int)m[s[10]], (int)m[s[8]]),
               _mm_set_epi32((int)m[s[15]], (int)m[s[13]], (int)m[s[11]], (int)m[s[9]]));
        r[1] = _mm_shuffle_epi32(r[1], _MM_SHUFFLE(2, 1, 0, 3));
        r[2] = _mm_shuffle_epi32(r[2], _MM_SHUFFLE(1, 0, 3, 2));
        r[3] = _mm_shuffle_epi32(r[3], _MM_SHUFFLE(0, 3, 2, 1));
    }
}

void cb_b3_compress_in_place_sse41(uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],
                                   uint8_t block_len, uint64_t counter, uint8_t flags) {
    __m128i r[4];
    compress_rows(r, cv, block, block_len, counter, flags);
    _mm_storeu_si128((__m128i *)&cv[0], xor_(r[0], r[2]));
    _mm_storeu_si128((__m128i *)&cv[4], xor_(r[1], r[3]));
}

void cb_b3_compress_xof_sse41(const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],
                              uint8_t block_len, uint64_t counter, uint8_t flags, uint8_t out[64]) {
    __m128i r[4];
    compress_rows(r, cv, block, block_len, counter, flags);
    _mm_storeu_si128((__m128i *)(out + 0), xor_(r[0], r[2]));
    _mm_storeu_si128((__m128i *)(out + 16), xor_(r[1], r[3]));
    _mm_storeu_si128((__m128i *)(out + 32), xor_(r[2], _mm_loadu_si128((const __m128i *)&cv[0])));
    _mm_storeu_si128((__m128i *)(out + 48), xor_(r[3], _mm_loadu_si128((const __m128i *)&cv[4])));
}

/* ---- four inputs at once, word-sliced layout ------------------------------ */

/* G on state words a, b, c, d of every lane (spec 2.2). */
ALWAYS_INLINE void g4(__m128i v[16], int a, int b, int c, int d, __m128i mx, __m128i my) {
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
ALWAYS_INLINE void round4(__m128i v[16], const __m128i m[16], int r) {
    const uint8_t *s = B3_SCHEDULE[r];
    g4(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    g4(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    g4(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    g4(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    g4(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    g4(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    g4(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    g4(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
}

/* In place: rows a..d (one per input) become columns (one per word). */
ALWAYS_INLINE void transpose4(__m128i *a, __m128i *b, __m128i *c, __m128i *d) {
    __m128i ab_lo = _mm_unpacklo_epi32(*a, *b), ab_hi = _mm_unpackhi_epi32(*a, *b);
    __m128i cd_lo = _mm_unpacklo_epi32(*c, *d), cd_hi = _mm_unpackhi_epi32(*c, *d);
    *a = _mm_unpacklo_epi64(ab_lo, cd_lo);
    *b = _mm_unpackhi_epi64(ab_lo, cd_lo);
    *c = _mm_unpacklo_epi64(ab_hi, cd_hi);
    *d = _mm_unpackhi_epi64(ab_hi, cd_hi);
}

static void hash4_lanes(const uint8_t *const lanes[4], size_t blocks, const uint32_t key[8],
                  uint64_t counter, int inc, uint8_t flags, uint8_t flags_start, uint8_t flags_end,
                  uint8_t *out) {
    __m128i h[8], m[16], v[16];
    for (int i = 0; i < 8; i++) h[i] = _mm_set1_epi32((int)key[i]);
    uint64_t c[4];
    for (int j = 0; j < 4; j++) c[j] = counter + (inc ? (uint64_t)j : 0);
    const __m128i ctr_lo = _mm_set_epi32((int)(uint32_t)c[3], (int)(uint32_t)c[2],
                                         (int)(uint32_t)c[1], (int)(uint32_t)c[0]);
    const __m128i ctr_hi = _mm_set_epi32((int)(uint32_t)(c[3] >> 32), (int)(uint32_t)(c[2] >> 32),
                                         (int)(uint32_t)(c[1] >> 32), (int)(uint32_t)(c[0] >> 32));
    for (size_t b = 0; b < blocks; b++) {
        const size_t off = b * B3_BLOCK_LEN;
        for (int q = 0; q < 4; q++) { /* words 4q..4q+3 of the four inputs */
            m[4 * q + 0] = _mm_loadu_si128((const __m128i *)(lanes[0] + off + 16 * q));
            m[4 * q + 1] = _mm_loadu_si128((const __m128i *)(lanes[1] + off + 16 * q));
            m[4 * q + 2] = _mm_loadu_si128((const __m128i *)(lanes[2] + off + 16 * q));
            m[4 * q + 3] = _mm_loadu_si128((const __m128i *)(lanes[3] + off + 16 * q));
            transpose4(&m[4 * q], &m[4 * q + 1], &m[4 * q + 2], &m[4 * q + 3]);
        }
        uint8_t f = flags;
        if (b == 0) f |= flags_start;
        if (b + 1 == blocks) f |= flags_end;
        for (int i = 0; i < 8; i++) v[i] = h[i];
        for (int i = 0; i < 4; i++) v[8 + i] = _mm_set1_epi32((int)B3_IV[i]);
        v[12] = ctr_lo;
        v[13] = ctr_hi;
        v[14] = _mm_set1_epi32(B3_BLOCK_LEN);
        v[15] = _mm_set1_epi32(f);
        round4(v, m, 0);
        round4(v, m, 1);
        round4(v, m, 2);
        round4(v, m, 3);
        round4(v, m, 4);
        round4(v, m, 5);
        round4(v, m, 6);
        for (int i = 0; i < 8; i++) h[i] = xor_(v[i], v[i + 8]);
    }
    transpose4(&h[0], &h[1], &h[2], &h[3]);
    transpose4(&h[4], &h[5], &h[6], &h[7]);
    for (int j = 0; j < 4; j++) {
        _mm_storeu_si128((__m128i *)(out + 32 * j), h[j]);
        _mm_storeu_si128((__m128i *)(out + 32 * j + 16), h[4 + j]);
    }
}

void cb_b3_hash_many_sse41(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                           const uint32_t key[8], uint64_t counter, int increment_counter,
                           uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out) {
    while (n >= 4) {
        const uint8_t *lanes[4] = {input, input + stride, input + 2 * stride, input + 3 * stride};
        hash4_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start, flags_end,
                    out);
        input += 4 * stride;
        out += 4 * 32;
        n -= 4;
        if (increment_counter) counter += 4;
    }
    if (n >= 2) {
        /* A partial group: one 4-way pass, spare lanes re-reading input 0
         * (results dropped), is faster than two or three single ones. */
        const uint8_t *lanes[4];
        for (size_t j = 0; j < 4; j++) lanes[j] = input + (j < n ? j : 0) * stride;
        uint8_t tmp[4 * 32];
        hash4_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start, flags_end,
                    tmp);
        memcpy(out, tmp, n * 32);
        return;
    }
    for (; n > 0; n--) {
        uint32_t cv[8];
        memcpy(cv, key, sizeof cv);
        for (size_t b = 0; b < blocks; b++) {
            uint8_t f = flags;
            if (b == 0) f |= flags_start;
            if (b + 1 == blocks) f |= flags_end;
            cb_b3_compress_in_place_sse41(cv, input + b * B3_BLOCK_LEN, B3_BLOCK_LEN, counter, f);
        }
        memcpy(out, cv, 32);
        input += stride;
        out += 32;
        if (increment_counter) counter++;
    }
}
#endif
