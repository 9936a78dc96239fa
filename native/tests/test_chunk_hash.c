/* cb_hash_chunks: digests equal one-shot hashes of each chunk for any thread count. */
#include "check.h"
#include "cheng_native.h"

#include <stdlib.h>
#include <string.h>

#ifdef CB_HAVE_HASHES
#include "cb_blake3.h"
#include "cb_sha256.h"
#endif

int main(void) {
    size_t n = 3u << 20;
    uint8_t *data = malloc(n);
    cb_fill(data, n, 7);
    cb_cdc *c = malloc(cb_cdc_size());
    CHECK(cb_cdc_init(c, 16384, 65536, 262144, 2) == 0);
    size_t cap = cb_cdc_max_chunks(c, n);
    uint64_t *ends = malloc(cap * sizeof *ends);
    size_t k = cb_cdc_chunk(c, data, n, 1, 2, ends, cap, NULL);
    CHECK(k > 10 && k != (size_t)-1);
    uint8_t *d1 = malloc(32 * k), *d2 = malloc(32 * k);
    CHECK(cb_hash_chunks(data, n, ends, k, 7, 1, d1) == -1);
    uint64_t bad_ends[2] = {10, 5};
    CHECK(cb_hash_chunks(data, n, bad_ends, 2, CB_ALGO_SHA256, 1, d1) == -4);
#ifdef CB_HAVE_HASHES
    for (int algo = 0; algo < 2; algo++) {
        CHECK(cb_hash_chunks(data, n, ends, k, algo, 1, d1) == 0);
        for (size_t i = 0; i < k; i++) {
            uint8_t want[32];
            size_t start = i ? ends[i - 1] : 0;
            if (algo == CB_ALGO_SHA256)
                cb_sha256(data + start, ends[i] - start, want);
            else
                cb_blake3(data + start, ends[i] - start, want);
            CHECK(memcmp(want, d1 + 32 * i, 32) == 0);
        }
        for (unsigned t = 2; t <= 8; t++) {
            memset(d2, 0, 32 * k);
            CHECK(cb_hash_chunks(data, n, ends, k, algo, t, d2) == 0);
            CHECK(memcmp(d1, d2, 32 * k) == 0);
        }
    }
    /* Many tiny chunks (batched hand-out). */
    size_t small = 5000;
    uint64_t *fixed = malloc(small * sizeof *fixed);
    for (size_t i = 0; i < small; i++) fixed[i] = 100 * (i + 1);
    uint8_t *s1 = malloc(32 * small), *s2 = malloc(32 * small);
    CHECK(cb_hash_chunks(data, n, fixed, small, CB_ALGO_BLAKE3, 1, s1) == 0);
    CHECK(cb_hash_chunks(data, n, fixed, small, CB_ALGO_BLAKE3, 3, s2) == 0);
    CHECK(memcmp(s1, s2, 32 * small) == 0);
    free(fixed);
    free(s1);
    free(s2);
    /* SHA-256("abc"), FIPS 180-2 appendix B.1. */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                    0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                    0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint64_t e3 = 3;
    CHECK(cb_hash_chunks((const uint8_t *)"abc", 3, &e3, 1, CB_ALGO_SHA256, 4, d1) == 0);
    CHECK(memcmp(d1, abc, 32) == 0);
#else
    CHECK(cb_hash_chunks(data, n, ends, k, CB_ALGO_SHA256, 1, d1) == -2);
#endif
    free(d1);
    free(d2);
    free(ends);
    free(c);
    free(data);
    if (cb_failures) fprintf(stderr, "test_chunk_hash: %d failure(s)\n", cb_failures);
    return cb_failures != 0;
}
