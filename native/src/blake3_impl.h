/* blake3_impl.h - private: BLAKE3 constants, the hasher layout, and the
 * signature every backend implements (one function set per backend, suffixed
 * _portable / _sse41 / _avx2 / _avx512; blake3_dispatch.c picks one). */
#ifndef CB_BLAKE3_IMPL_H
#define CB_BLAKE3_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cb_blake3.h"

#define B3_BLOCK_LEN 64
#define B3_CHUNK_LEN 1024
/* 2^54 chunks of 1 KiB exceed 2^64 bytes: the CV stack never grows past 54. */
#define B3_MAX_DEPTH 54

/* Domain flags (BLAKE3 spec, table 3). */
enum {
    B3_CHUNK_START = 1u << 0,
    B3_CHUNK_END = 1u << 1,
    B3_PARENT = 1u << 2,
    B3_ROOT = 1u << 3,
    B3_KEYED_HASH = 1u << 4,
    B3_DERIVE_KEY_CONTEXT = 1u << 5,
    B3_DERIVE_KEY_MATERIAL = 1u << 6
};

/* The initialisation vector (same words as SHA-256's H(0)). */
static const uint32_t B3_IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                  0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

/* Message word order for round r: B3_SCHEDULE[r][i] is the index of the
 * message word used at position i (the spec's permutation applied r times). */
static const uint8_t B3_SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

/* Hasher state. Chunk state (cv, buffered block, counters) + the stack of
 * chaining values of completed subtrees (see blake3.c), stored as bytes: one
 * per set bit of chunk_counter, plus one while merging is pending. */
struct cb_blake3_hasher {
    uint32_t key[8];
    uint32_t cv[8];
    uint64_t chunk_counter;
    uint8_t buf[B3_BLOCK_LEN];
    uint8_t buf_len;
    uint8_t blocks_compressed;
    uint8_t flags;
    uint8_t stack_len;
    uint8_t stack[(B3_MAX_DEPTH + 1) * 32];
};

static inline uint32_t b3_load32(const void *p) {
    uint8_t b[4];
    memcpy(b, p, 4);
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static inline void b3_store32(void *p, uint32_t w) {
    uint8_t b[4] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16), (uint8_t)(w >> 24)};
    memcpy(p, b, 4);
}

static inline void b3_load_key_words(const uint8_t key[32], uint32_t out[8]) {
    for (int i = 0; i < 8; i++) out[i] = b3_load32(key + 4 * i);
}

/* Backend signature (the same for every backend):
 *
 * compress_in_place: cv <- first 8 words of compress(cv, block, counter,
 *   block_len, flags).
 * compress_xof: out <- all 16 output words (64 bytes, little-endian) of the
 *   same compression; the root output block for counter t.
 * hash_many: n independent inputs at input + i * stride, each exactly
 *   `blocks` 64-byte blocks long, all keyed with `key`; input i uses counter
 *   counter + i when increment_counter, else counter. Block 0 gets
 *   flags | flags_start, the last block flags | flags_end. Writes the n
 *   resulting CVs (32 bytes each, little-endian) to out. Used for whole
 *   chunks (stride 1024, 16 blocks) and parents (stride 64, 1 block). */
typedef struct {
    void (*compress_in_place)(uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN], uint8_t block_len,
                              uint64_t counter, uint8_t flags);
    void (*compress_xof)(const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN], uint8_t block_len,
                         uint64_t counter, uint8_t flags, uint8_t out[64]);
    void (*hash_many)(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                      const uint32_t key[8], uint64_t counter, int increment_counter, uint8_t flags,
                      uint8_t flags_start, uint8_t flags_end, uint8_t *out);
} cb_b3_backend;

#define CB_B3_DECLARE(sfx)                                                                  \
    void cb_b3_compress_in_place_##sfx(uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],   \
                                       uint8_t block_len, uint64_t counter, uint8_t flags); \
    void cb_b3_compress_xof_##sfx(const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN],  \
                                  uint8_t block_len, uint64_t counter, uint8_t flags,       \
                                  uint8_t out[64]);                                         \
    void cb_b3_hash_many_##sfx(const uint8_t *input, size_t stride, size_t n, size_t blocks, \
                               const uint32_t key[8], uint64_t counter,                     \
                               int increment_counter, uint8_t flags, uint8_t flags_start,   \
                               uint8_t flags_end, uint8_t *out);

CB_B3_DECLARE(portable)
/* The x86 SIMD backends exist only when hashes.cmake compiled their sources
 * with the needed -m flags; it says so by defining CB_HASH_SIMD. */
#if defined(CB_HASH_SIMD) && (defined(__x86_64__) || defined(__i386__))
#define CB_HAVE_X86 1
CB_B3_DECLARE(sse41)
#endif
#if defined(CB_HASH_SIMD) && defined(__x86_64__)
#define CB_HAVE_AVX2 1
/* AVX2 adds only hash_many; its single compressions are the SSE4.1 ones. */
void cb_b3_hash_many_avx2(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                          const uint32_t key[8], uint64_t counter, int increment_counter,
                          uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out);
/* AVX-512 likewise adds only hash_many (16 inputs at once; 8 or fewer go to
 * the AVX2 code). */
#define CB_HAVE_AVX512 1
void cb_b3_hash_many_avx512(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                            const uint32_t key[8], uint64_t counter, int increment_counter,
                            uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out);
#endif

/* The backend in use (chosen on first call; see blake3_dispatch.c). */
const cb_b3_backend *cb_b3_active(void);

#endif /* CB_BLAKE3_IMPL_H */
