/* file_hash.c: hash a file's fixed-size chunks on several threads, reading with pread.
 *
 * Each thread reads one chunk at a time into its own buffer (a chunk fits the core's L2, so
 * the hash reads what the copy just brought in) and hashes it; threads take chunk numbers
 * from a shared counter, and each digest lands in its own slot, so the output does not depend
 * on which thread did what. The copy out of the page cache then runs on every thread instead
 * of on one reader in front of the hashing. pread rather than mmap: a file truncated while we
 * read it must give an error, not SIGBUS.
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64
#include "cheng_native.h"
#include "parallel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef CB_HAVE_HASHES
#include "cb_blake3.h"
#include "cb_sha256.h"

typedef struct {
    int fd;
    uint64_t size, chunk, n;
    int algo;
    uint8_t *out;
    atomic_uint_fast64_t next;
    atomic_int rc;   /* the first failure (0 while none) */
    atomic_int err;  /* errno of a failed read */
} file_job;

static void fail(file_job *j, int rc, int err) {
    int zero = 0;
    if (atomic_compare_exchange_strong(&j->rc, &zero, rc)) atomic_store(&j->err, err);
}

/* Reads exactly len bytes at off; 0, -3 when the file ends first, -4 on a read error. */
static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off, int *err) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            return -4;
        }
        if (r == 0) return -3;
        got += (size_t)r;
    }
    return 0;
}

static void file_worker(void *arg, unsigned t, unsigned nt) {
    (void)t;
    (void)nt;
    file_job *j = (file_job *)arg;
    uint8_t *buf = malloc((size_t)j->chunk);
    if (!buf) {
        fail(j, -5, ENOMEM);
        return;
    }
    for (;;) {
        if (atomic_load(&j->rc) != 0) break;
        uint64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        uint64_t off = i * j->chunk;
        size_t len = (size_t)(j->size - off < j->chunk ? j->size - off : j->chunk);
        int err = 0;
        int rc = read_full(j->fd, buf, len, off, &err);
        if (rc != 0) {
            fail(j, rc, err);
            break;
        }
        if (j->algo == CB_ALGO_SHA256)
            cb_sha256(buf, len, j->out + 32 * i);
        else
            cb_blake3(buf, len, j->out + 32 * i);
    }
    free(buf);
}
#endif

int cb_hash_file_fixed(int fd, uint64_t size, uint64_t chunk, int algo, unsigned threads,
                       uint8_t *out, int *err) {
    if (err) *err = 0;
    if (algo != CB_ALGO_SHA256 && algo != CB_ALGO_BLAKE3) return -1;
    if (chunk == 0 || chunk > CB_FILE_CHUNK_MAX || fd < 0) return -1;
#ifdef CB_HAVE_HASHES
    uint64_t n = size / chunk + (size % chunk != 0);
    if (n == 0) return 0;
    if (threads > CB_MAX_THREADS) threads = CB_MAX_THREADS;
    if (threads == 0) threads = 1;
    if (threads > n) threads = (unsigned)n;
#ifdef POSIX_FADV_SEQUENTIAL
    /* Ask for a larger read-ahead when the file is not cached; harmless when it is. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    file_job j = {.fd = fd, .size = size, .chunk = chunk, .n = n, .algo = algo, .out = out};
    atomic_init(&j.next, 0);
    atomic_init(&j.rc, 0);
    atomic_init(&j.err, 0);
    /* A thread that fails to start leaves its share to the others (the counter). */
    (void)cb_parallel_run(threads, file_worker, &j);
    int rc = atomic_load(&j.rc);
    if (rc != 0 && err) *err = atomic_load(&j.err);
    return rc;
#else
    (void)size;
    (void)threads;
    (void)out;
    return -2;
#endif
}
