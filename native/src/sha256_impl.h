/* sha256_impl.h - private: SHA-256 context layout and the block-function
 * signature every backend implements (sha256_portable.c, sha256_shani.c). */
#ifndef CB_SHA256_IMPL_H
#define CB_SHA256_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "cb_sha256.h"

struct cb_sha256_ctx {
    uint32_t state[8];
    uint64_t total_len; /* bytes fed so far (FIPS 180-4 limits messages to 2^64 bits) */
    uint8_t buf[64];
    uint32_t buf_len;
};

/* Round constants K (FIPS 180-4, 4.2.2). */
extern const uint32_t cb_sha256_K[64];

/* Processes nblocks consecutive 64-byte blocks at data into state. */
typedef void (*cb_sha256_blocks_fn)(uint32_t state[8], const uint8_t *data, size_t nblocks);

void cb_sha256_blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks);
/* Only when hashes.cmake compiled sha256_shani.c with -msha (CB_HASH_SIMD). */
#if defined(CB_HASH_SIMD) && (defined(__x86_64__) || defined(__i386__))
#define CB_HAVE_X86 1
void cb_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks);
#endif

#endif
