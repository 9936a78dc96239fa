/* chengscan.c: a package's sources through both Cheng scanners in one call (cb_chengtok.h).
 *
 * Publish scans every source file twice, for the fingerprint (chengtok.c) and for the API table
 * (chengapi.c). Handing each file over in its own call made the caller take the GIL back 2 x
 * files times; a scan on its own thread then waited on the thread building the snapshot at each
 * return (the GIL is handed over every few milliseconds), so the two never overlapped. One call
 * for the whole package runs both scanners per file while its bytes are in cache, with no
 * Python in between.
 */
#include "cb_chengtok.h"

#include <stdlib.h>
#include <string.h>

struct cb_apiout {
    uint8_t *bytes;
    size_t nbytes, capbytes;
    uint64_t *rec; /* 5 per record, as cb_api_decls writes them (offsets into bytes) */
    size_t nrec, caprec;
    uint64_t *count; /* records of each file given with CB_SCAN_API, in order */
    size_t nfiles, capfiles;
};

cb_apiout *cb_apiout_new(void) { return (cb_apiout *)calloc(1, sizeof(cb_apiout)); }

void cb_apiout_free(cb_apiout *o) {
    if (!o) return;
    free(o->bytes);
    free(o->rec);
    free(o->count);
    free(o);
}

size_t cb_apiout_bytes(const cb_apiout *o, const uint8_t **bytes) {
    *bytes = o->bytes;
    return o->nbytes;
}

size_t cb_apiout_records(const cb_apiout *o, const uint64_t **rec) {
    *rec = o->rec;
    return o->nrec;
}

size_t cb_apiout_files(const cb_apiout *o, const uint64_t **count) {
    *count = o->count;
    return o->nfiles;
}

/* Room for `need` more elements of `size` bytes after `used` (doubling). */
static int grow(void **p, size_t *cap, size_t used, size_t need, size_t size) {
    if (*cap - used >= need) return 0;
    size_t c = *cap ? *cap : 64;
    while (c - used < need) {
        if (c > ((size_t)-1) / 2 / size) return -1;
        c *= 2;
    }
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int api_file(cb_apiout *o, const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls) {
    if (grow((void **)&o->count, &o->capfiles, o->nfiles, 1, sizeof *o->count)) return -1;
    /* A guess at first (a declaration per 64 bytes; real code has one per ~1 KB), doubled on
     * CB_API_SMALL; the bytes bound always holds (see api_decls in _native/chengtok.py). */
    size_t want_bytes = 4 * len + 64, want_rec = len / 64 + 64;
    for (;;) {
        if (grow((void **)&o->bytes, &o->capbytes, o->nbytes, want_bytes, 1) ||
            grow((void **)&o->rec, &o->caprec, o->nrec, 5 * want_rec, sizeof *o->rec))
            return -1;
        size_t k = cb_api_decls(text, len, ucls, nucls, o->bytes + o->nbytes, o->capbytes - o->nbytes,
                                o->rec + 5 * o->nrec, (o->caprec - 5 * o->nrec) / 5);
        if (k == CB_API_NOMEM) return -1;
        if (k == CB_API_SMALL) {
            want_bytes *= 2;
            want_rec *= 2;
            continue;
        }
        uint64_t *r = o->rec + 5 * o->nrec, base = o->nbytes;
        size_t used = k ? (size_t)(r[5 * (k - 1) + 3] + r[5 * (k - 1) + 4]) : 0;
        for (size_t i = 0; i < k; i++) {
            r[5 * i + 1] += base;
            r[5 * i + 3] += base;
        }
        o->nbytes += used;
        o->nrec += k;
        o->count[o->nfiles++] = k;
        return 0;
    }
}

int cb_scan_package(cb_ctok *s, size_t n, const uint8_t *const *texts, const size_t *lens,
                    const uint32_t *const *ucls, const size_t *nucls, const uint8_t *what,
                    cb_apiout *out) {
    for (size_t i = 0; i < n; i++) {
        if ((what[i] & CB_SCAN_FINGERPRINT) && cb_ctok_feed(s, texts[i], lens[i], ucls[i], nucls[i]))
            return -1;
        if ((what[i] & CB_SCAN_API) && api_file(out, texts[i], lens[i], ucls[i], nucls[i])) return -1;
    }
    return 0;
}
