/* cdc.c: FastCDC content-defined chunking, as specified in docs/chunker.md.
 *
 * Gear hash h = (h << 1) + G[byte]; normalized chunking with a stricter mask (more one-bits)
 * before avg_size and a looser one after it; bytes before min_size are never hashed (cut-point
 * skipping). The cut rule is the FastCDC-2020 one as fastcdc-rs/pyfastcdc run it (hashing starts at
 * min_size rounded down to even, the mask switches at avg_size rounded down to even, the last odd
 * byte before max_size is not tested, the triggering byte starts the next chunk), so with
 * their gear table and masks (cb_cdc_init_custom) our cut points equal theirs: the tests use that
 * as a differential oracle. Our own gear table and masks are derived in code below from a
 * documented seed, so nothing here is an opaque constant table.
 */
#include "cheng_native.h"
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

struct cb_cdc {
    uint64_t gear[256];
    uint64_t mask_s, mask_l;
    size_t min, avg, max;
};

/* SplitMix64 state seed: the ASCII bytes "chengcdc" read big-endian. */
#define GEAR_SEED 0x6368656E67636463ull

void cb_cdc_gear(uint64_t out[256]) {
    uint64_t s = GEAR_SEED;
    for (int i = 0; i < 256; i++) {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        out[i] = z ^ (z >> 31);
    }
}

/* `bits` one-bits spread over positions 62..15: bit k sits at 62 - floor(48k / bits). Spreading
 * them (the papers' "zero padding") makes every checked bit depend on a window of >= 16 bytes;
 * bit 63 stays clear so the two-bytes-at-a-time form of the loop checks the same bits. */
uint64_t cb_cdc_mask(unsigned bits) {
    if (bits == 0 || bits > 48) return 0;
    uint64_t m = 0;
    for (unsigned k = 0; k < bits; k++) m |= 1ull << (62 - (48 * k) / bits);
    return m;
}

size_t cb_cdc_size(void) { return sizeof(cb_cdc); }

static int check_sizes(uint64_t min, uint64_t avg, uint64_t max) {
    if (avg < CB_CDC_AVG_LOWER || avg > CB_CDC_AVG_UPPER || (avg & (avg - 1)) != 0)
        return CB_CDC_EAVG;
    if (min < CB_CDC_MIN_LOWER || min > avg) return CB_CDC_EMIN;
    if (max < avg || max > CB_CDC_MAX_UPPER) return CB_CDC_EMAX;
    return CB_CDC_OK;
}

int cb_cdc_init_custom(cb_cdc *c, uint64_t min, uint64_t avg, uint64_t max, uint64_t mask_s,
                       uint64_t mask_l, const uint64_t gear[256]) {
    int rc = check_sizes(min, avg, max);
    if (rc) return rc;
    if (mask_s == 0 || mask_l == 0) return CB_CDC_EMASK;
    memcpy(c->gear, gear, sizeof c->gear);
    c->mask_s = mask_s;
    c->mask_l = mask_l;
    c->min = (size_t)min;
    c->avg = (size_t)avg;
    c->max = (size_t)max;
    return CB_CDC_OK;
}

int cb_cdc_init(cb_cdc *c, uint64_t min, uint64_t avg, uint64_t max, unsigned normalization) {
    int rc = check_sizes(min, avg, max);
    if (rc) return rc;
    if (normalization > 3) return CB_CDC_ENORM;
    unsigned bits = 0;
    while ((1ull << bits) < avg) bits++;
    uint64_t gear[256];
    cb_cdc_gear(gear);
    return cb_cdc_init_custom(c, min, avg, max, cb_cdc_mask(bits + normalization),
                              cb_cdc_mask(bits - normalization), gear);
}

const char *cb_cdc_strerror(int err) {
    switch (err) {
    case CB_CDC_OK: return "ok";
    case CB_CDC_EMIN: return "min_size must be at least 64 and at most avg_size";
    case CB_CDC_EAVG: return "avg_size must be a power of two from 256 to 2**28";
    case CB_CDC_EMAX: return "max_size must be at least avg_size and at most 2**30";
    case CB_CDC_ENORM: return "normalization must be 0, 1, 2 or 3";
    case CB_CDC_EMASK: return "a mask must not be zero";
    default: return "unknown error";
    }
}

uint64_t cb_cdc_mask_s(const cb_cdc *c) { return c->mask_s; }
uint64_t cb_cdc_mask_l(const cb_cdc *c) { return c->mask_l; }

size_t cb_cdc_max_chunks(const cb_cdc *c, size_t len) {
    /* Every chunk but the last is at least (min & ~1) >= 64 bytes long. */
    return len / (c->min & ~(size_t)1) + 1;
}

/* The hashing loop over positions [i, stop) with one mask; returns the cut or `stop` (none).
 * The critical path is one shift-add (an lea) per byte; everything else (byte load, table load,
 * fused test-and-branch) is independent work, so the loop is bound by how many instructions the
 * core issues per byte. Sixteen bytes per round keep the loop's own counting out of that budget. */
#define STEP(k)                                                                                    \
    h = (h << 1) + g[q[k]];                                                                        \
    if (!(h & m)) return (size_t)(q - p) + (k);

static inline size_t scan(const uint64_t *g, const uint8_t *p, size_t i, size_t stop, uint64_t m,
                          uint64_t *hp) {
    uint64_t h = *hp;
    const uint8_t *q = p + i, *end = p + stop; /* i and stop are even */
    for (; end - q >= 16; q += 16) {
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
        STEP(8) STEP(9) STEP(10) STEP(11) STEP(12) STEP(13) STEP(14) STEP(15)
    }
    for (; q < end; q += 2) {
        STEP(0) STEP(1)
    }
    *hp = h;
    return stop;
}
#undef STEP

/* The cut rule of docs/chunker.md ("Cut rule"). */
size_t cb_cdc_cut(const cb_cdc *c, const uint8_t *p, size_t n) {
    if (n <= c->min) return n;
    size_t end = n > c->max ? c->max : n;
    size_t center = n < c->avg ? n : c->avg;
    size_t lo = c->min & ~(size_t)1, mid = center & ~(size_t)1, hi = end & ~(size_t)1;
    uint64_t h = 0;
    size_t r = scan(c->gear, p, lo, mid, c->mask_s, &h);
    if (r != mid) return r;
    r = scan(c->gear, p, mid, hi, c->mask_l, &h);
    if (r != hi) return r;
    return end;
}

/* Serial chunking from `pos`; stops at `stop_at` (first chunk start >= stop_at is not cut). */
static size_t chunk_serial(const cb_cdc *c, const uint8_t *buf, size_t len, int eof, size_t pos,
                           size_t stop_at, uint64_t *ends, size_t cap, size_t *n_out) {
    size_t n = *n_out;
    while (pos < len && pos < stop_at) {
        size_t rest = len - pos;
        if (!eof && rest < c->max) break;
        if (n >= cap) return (size_t)-1;
        pos += cb_cdc_cut(c, buf + pos, rest);
        ends[n++] = pos;
    }
    *n_out = n;
    return pos;
}

typedef struct {
    const cb_cdc *c;
    const uint8_t *buf;
    size_t len;
    int eof;
    size_t seg[CB_MAX_THREADS + 1];
    uint64_t *prov[CB_MAX_THREADS]; /* provisional ends of the chunks starting in segment t */
    size_t nprov[CB_MAX_THREADS];
    int failed[CB_MAX_THREADS];
} par_job;

static void par_chunk(void *arg, unsigned t, unsigned n) {
    (void)n;
    par_job *j = (par_job *)arg;
    size_t cap = cb_cdc_max_chunks(j->c, j->seg[t + 1] - j->seg[t]) + 1;
    j->prov[t] = (uint64_t *)malloc(cap * sizeof(uint64_t));
    j->nprov[t] = 0;
    if (!j->prov[t]) {
        j->failed[t] = 1;
        return;
    }
    size_t pos = chunk_serial(j->c, j->buf, j->len, j->eof, j->seg[t], j->seg[t + 1], j->prov[t],
                              cap, &j->nprov[t]);
    j->failed[t] = pos == (size_t)-1;
}

/* Parallel search: thread t chunks its segment as if a chunk started at the segment's first
 * byte. Those cut points are provisional; the serial merge follows the true chain of chunks
 * from the previous segment until it lands on one of segment t's provisional chunk starts —
 * from there on both chains are the same, because a cut depends only on where its chunk starts
 * and on the bytes after it. If the chains never meet, the merge just chunks serially, so the
 * result always equals the single-threaded one. */
static size_t chunk_parallel(const cb_cdc *c, const uint8_t *buf, size_t len, int eof,
                             unsigned threads, uint64_t *ends, size_t cap, size_t *consumed) {
    par_job *j = (par_job *)calloc(1, sizeof(par_job));
    if (!j) return (size_t)-1;
    j->c = c;
    j->buf = buf;
    j->len = len;
    j->eof = eof;
    for (unsigned t = 0; t <= threads; t++) j->seg[t] = len / threads * t + len % threads * t / threads;
    cb_parallel_run(threads, par_chunk, j);
    size_t n = 0, result = (size_t)-1;
    for (unsigned t = 0; t < threads; t++)
        if (j->failed[t]) goto out;
    size_t pos = 0;
    for (unsigned t = 0; t < threads; t++) {
        const uint64_t *p = j->prov[t];
        size_t np = j->nprov[t];
        if (np == 0) continue;
        size_t last = (size_t)p[np - 1], k = 0;
        /* Provisional chunk starts of segment t: seg[t], p[0], p[1], ... */
        while (pos < last) {
            if (pos == j->seg[t]) {
                k = 0;
            } else {
                while (k < np && p[k] < pos) k++;
                if (p[k] != pos) {
                    /* Without eof, a cut needs max_size bytes ahead (as in chunk_serial). */
                    if (!eof && len - pos < c->max) goto tail;
                    if (n >= cap) goto out;
                    pos += cb_cdc_cut(c, buf + pos, len - pos);
                    ends[n++] = pos;
                    continue;
                }
                k++;
            }
            /* Met the provisional chain: adopt the rest of it. */
            if (np - k > cap - n) goto out;
            memcpy(ends + n, p + k, (np - k) * sizeof(uint64_t));
            n += np - k;
            pos = last;
        }
    }
tail:
    pos = chunk_serial(c, buf, len, eof, pos, len, ends, cap, &n);
    if (pos == (size_t)-1) goto out;
    *consumed = pos;
    result = n;
out:
    for (unsigned t = 0; t < threads; t++) free(j->prov[t]);
    free(j);
    return result;
}

size_t cb_cdc_chunk(const cb_cdc *c, const uint8_t *buf, size_t len, int eof, unsigned threads,
                    uint64_t *ends, size_t cap, size_t *consumed) {
    if (threads > CB_MAX_THREADS) threads = CB_MAX_THREADS;
    if (threads > 1 && len / threads >= 4 * c->max) {
        size_t used = 0;
        size_t n = chunk_parallel(c, buf, len, eof, threads, ends, cap, &used);
        if (consumed) *consumed = used;
        return n;
    }
    size_t n = 0;
    size_t pos = chunk_serial(c, buf, len, eof, 0, len, ends, cap, &n);
    if (pos == (size_t)-1) return (size_t)-1;
    if (consumed) *consumed = pos;
    return n;
}
