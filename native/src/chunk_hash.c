/* chunk_hash.c: hash many chunks of one buffer on several threads.
 *
 * Threads take chunks in order from a shared counter, a few at a time, so uneven chunk sizes
 * still spread evenly; each digest lands in its own slot, so the output does not depend on
 * which thread hashed what.
 */
#include "cheng_native.h"
#include "parallel.h"

#include <stdatomic.h>

#ifdef CB_HAVE_HASHES
#include "cb_blake3.h"
#include "cb_sha256.h"
#endif

int cb_have_hashes(void) {
#ifdef CB_HAVE_HASHES
    return 1;
#else
    return 0;
#endif
}

#ifdef CB_HAVE_HASHES
typedef struct {
    const uint8_t *buf;
    const uint64_t *ends;
    size_t n, batch;
    int algo;
    uint8_t *out;
    atomic_size_t next;
} hash_job;

static void hash_worker(void *arg, unsigned t, unsigned nt) {
    (void)t;
    (void)nt;
    hash_job *j = (hash_job *)arg;
    for (;;) {
        size_t first = atomic_fetch_add(&j->next, j->batch);
        if (first >= j->n) return;
        size_t last = first + j->batch < j->n ? first + j->batch : j->n;
        for (size_t i = first; i < last; i++) {
            size_t start = i ? (size_t)j->ends[i - 1] : 0;
            size_t len = (size_t)j->ends[i] - start;
            if (j->algo == CB_ALGO_SHA256)
                cb_sha256(j->buf + start, len, j->out + 32 * i);
            else
                cb_blake3(j->buf + start, len, j->out + 32 * i);
        }
    }
}
#endif

int cb_hash_chunks(const uint8_t *buf, size_t len, const uint64_t *ends, size_t n, int algo,
                   unsigned threads, uint8_t *out) {
    if (algo != CB_ALGO_SHA256 && algo != CB_ALGO_BLAKE3) return -1;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (ends[i] < prev || ends[i] > len) return -4;
        prev = ends[i];
    }
#ifdef CB_HAVE_HASHES
    if (threads > CB_MAX_THREADS) threads = CB_MAX_THREADS;
    if (threads > n) threads = n ? (unsigned)n : 1;
    hash_job j = {buf, ends, n, 1, algo, out, 0};
    /* Small chunks in batches so the shared counter is not the bottleneck. */
    size_t avg = n ? len / n : 0;
    if (avg < 65536) j.batch = 65536 / (avg + 1) + 1;
    atomic_init(&j.next, 0);
    /* A thread that fails to start leaves its share to the others (the counter), so the
     * result is complete either way. */
    (void)cb_parallel_run(threads ? threads : 1, hash_worker, &j);
    return 0;
#else
    (void)buf;
    (void)out;
    (void)threads;
    return -2;
#endif
}
