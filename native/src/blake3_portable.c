/* blake3_portable.c - the reference-shaped BLAKE3 compression in plain C.
 * Always built; the fallback on every CPU and the baseline the SIMD
 * backends are tested against. Written from the BLAKE3 spec, section 2.2. */
#include "blake3_impl.h"

static inline uint32_t rotr32(uint32_t w, unsigned c) { return (w >> c) | (w << (32 - c)); }

/* The quarter-round G (spec 2.2) on state words a, b, c, d with message
 * words x, y. */
#define G(a, b, c, d, x, y)                \
    do {                                   \
        s[a] = s[a] + s[b] + (x);          \
        s[d] = rotr32(s[d] ^ s[a], 16);    \
        s[c] = s[c] + s[d];                \
        s[b] = rotr32(s[b] ^ s[c], 12);    \
        s[a] = s[a] + s[b] + (y);          \
        s[d] = rotr32(s[d] ^ s[a], 8);     \
        s[c] = s[c] + s[d];                \
        s[b] = rotr32(s[b] ^ s[c], 7);     \
    } while (0)

static inline void round_fn(uint32_t s[16], const uint32_t m[16], int r) {
    const uint8_t *p = B3_SCHEDULE[r];
    /* columns */
    G(0, 4, 8, 12, m[p[0]], m[p[1]]);
    G(1, 5, 9, 13, m[p[2]], m[p[3]]);
    G(2, 6, 10, 14, m[p[4]], m[p[5]]);
    G(3, 7, 11, 15, m[p[6]], m[p[7]]);
    /* diagonals */
    G(0, 5, 10, 15, m[p[8]], m[p[9]]);
    G(1, 6, 11, 12, m[p[10]], m[p[11]]);
    G(2, 7, 8, 13, m[p[12]], m[p[13]]);
    G(3, 4, 9, 14, m[p[14]], m[p[15]]);
}

static void compress_core(uint32_t s[16], const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],
                          uint8_t block_len, uint64_t counter, uint8_t flags) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++) m[i] = b3_load32(block + 4 * i);
    for (int i = 0; i < 8; i++) s[i] = cv[i];
    s[8] = B3_IV[0];
    s[9] = B3_IV[1];
    s[10] = B3_IV[2];
    s[11] = B3_IV[3];
    s[12] = (uint32_t)counter;
    s[13] = (uint32_t)(counter >> 32);
    s[14] = block_len;
    s[15] = flags;
    /* Rounds spelled out, so every message index is a constant. */
    round_fn(s, m, 0);
    round_fn(s, m, 1);
    round_fn(s, m, 2);
    round_fn(s, m, 3);
    round_fn(s, m, 4);
    round_fn(s, m, 5);
    round_fn(s, m, 6);
}

void cb_b3_compress_in_place_portable(uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],
                                      uint8_t block_len, uint64_t counter, uint8_t flags) {
    uint32_t s[16];
    compress_core(s, cv, block, block_len, counter, flags);
    for (int i = 0; i < 8; i++) cv[i] = s[i] ^ s[i + 8];
}

void cb_b3_compress_xof_portable(const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],
                                 uint8_t block_len, uint64_t counter, uint8_t flags,
                                 uint8_t out[64]) {
    uint32_t s[16];
    compress_core(s, cv, block, block_len, counter, flags);
    for (int i = 0; i < 8; i++) {
        b3_store32(out + 4 * i, s[i] ^ s[i + 8]);
        b3_store32(out + 32 + 4 * i, s[i + 8] ^ cv[i]);
    }
}

void cb_b3_hash_many_portable(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                              const uint32_t key[8], uint64_t counter, int increment_counter,
                              uint8_t flags, uint8_t flags_start, uint8_t flags_end,
                              uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t cv[8];
        memcpy(cv, key, sizeof cv);
        const uint8_t *in = input + i * stride;
        uint64_t ctr = increment_counter ? counter + i : counter;
        for (size_t b = 0; b < blocks; b++) {
            uint8_t f = flags;
            if (b == 0) f |= flags_start;
            if (b + 1 == blocks) f |= flags_end;
            cb_b3_compress_in_place_portable(cv, in + b * B3_BLOCK_LEN, B3_BLOCK_LEN, ctr, f);
        }
        for (int w = 0; w < 8; w++) b3_store32(out + 32 * i + 4 * w, cv[w]);
    }
}
