/* cb_hash_file_fixed: digests equal cb_hash_chunks over the same bytes (and one-shot hashes),
 * for any thread count and every SHA-256/BLAKE3 backend; a file shorter than `size` fails. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cheng_native.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CB_HAVE_HASHES
#include "cb_blake3.h"
#include "cb_sha256.h"
#endif

int main(void) {
    int err = 0;
    uint8_t d[32];
    CHECK(cb_hash_file_fixed(0, 10, 4, 9, 1, d, &err) == -1);
    CHECK(cb_hash_file_fixed(0, 10, 0, CB_ALGO_SHA256, 1, d, &err) == -1);
    CHECK(cb_hash_file_fixed(-1, 10, 4, CB_ALGO_SHA256, 1, d, &err) == -1);
#ifdef CB_HAVE_HASHES
    size_t n = (3u << 20) + 12345;
    uint8_t *data = malloc(n);
    CHECK(data != NULL);
    if (!data) return 1;
    cb_fill(data, n, 11);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f) return 1;
    CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fflush(f) == 0);
    int fd = fileno(f);
    static const char *sha_names[] = {"portable", "shani"};
    static const char *b3_names[] = {"portable", "sse41", "avx2", "avx512"};
    static const uint64_t chunks[] = {1, 1000, 65536, 262144, 1u << 20, 1u << 22};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        uint64_t chunk = chunks[c];
        /* a chunk of 1 byte only over a prefix, to keep the test quick */
        size_t len = chunk == 1 ? 3000 : n;
        size_t k = len / chunk + (len % chunk != 0);
        uint64_t *ends = malloc(k * sizeof *ends);
        uint8_t *want = malloc(32 * k), *got = malloc(32 * k);
        CHECK(ends && want && got);
        if (!ends || !want || !got) return 1;
        for (size_t i = 0; i < k; i++) ends[i] = (i + 1) * chunk < len ? (i + 1) * chunk : len;
        for (int algo = 0; algo < 2; algo++) {
            const char *const *names = algo == CB_ALGO_SHA256 ? sha_names : b3_names;
            size_t nb = algo == CB_ALGO_SHA256 ? 2 : 4;
            cb_sha256_force_backend("portable");
            cb_blake3_force_backend("portable");
            CHECK(cb_hash_chunks(data, len, ends, k, algo, 1, want) == 0);
            /* spot-check the reference against one-shot hashes */
            uint8_t one[32];
            if (algo == CB_ALGO_SHA256)
                cb_sha256(data + ends[k - 1] - (k > 1 ? ends[k - 1] - ends[k - 2] : ends[0]),
                          k > 1 ? ends[k - 1] - ends[k - 2] : ends[0], one);
            else
                cb_blake3(data + ends[k - 1] - (k > 1 ? ends[k - 1] - ends[k - 2] : ends[0]),
                          k > 1 ? ends[k - 1] - ends[k - 2] : ends[0], one);
            CHECK(memcmp(one, want + 32 * (k - 1), 32) == 0);
            for (size_t b = 0; b < nb; b++) {
                int forced = algo == CB_ALGO_SHA256 ? cb_sha256_force_backend(names[b])
                                                    : cb_blake3_force_backend(names[b]);
                if (forced != 0) continue; /* not on this CPU */
                for (unsigned t = 1; t <= 5; t++) {
                    memset(got, 0, 32 * k);
                    CHECK(cb_hash_file_fixed(fd, len, chunk, algo, t, got, &err) == 0);
                    CHECK(err == 0);
                    CHECK(memcmp(want, got, 32 * k) == 0);
                }
            }
        }
        free(ends);
        free(want);
        free(got);
    }
    cb_sha256_force_backend("auto");
    cb_blake3_force_backend("auto");
    /* Empty: nothing to hash, nothing written. */
    CHECK(cb_hash_file_fixed(fd, 0, 262144, CB_ALGO_SHA256, 2, d, &err) == 0);
    /* The file is shorter than claimed (it shrank): -3, for any thread count. */
    for (unsigned t = 1; t <= 3; t++) {
        uint8_t *out = malloc(32 * 20);
        CHECK(out != NULL);
        if (!out) return 1;
        CHECK(cb_hash_file_fixed(fd, (uint64_t)n + 1, 262144, CB_ALGO_SHA256, t, out, &err) == -3);
        CHECK(cb_hash_file_fixed(fd, (uint64_t)n + (5u << 20), 262144, CB_ALGO_BLAKE3, t, out, &err) == -3);
        free(out);
    }
    /* A descriptor that cannot be read: -4 with errno. */
    int wfd = dup(fd);
    CHECK(wfd >= 0);
    CHECK(close(wfd) == 0);
    CHECK(cb_hash_file_fixed(wfd, 1000, 100, CB_ALGO_SHA256, 2, d, &err) == -4);
    CHECK(err != 0);
    fclose(f);
    free(data);
#else
    CHECK(cb_hash_file_fixed(0, 10, 4, CB_ALGO_SHA256, 1, d, &err) == -2);
#endif
    return cb_failures;
}
