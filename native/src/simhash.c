/* simhash.c: 64-bit SimHash over token streams (docs/chunker.md, "SimHash64").
 *
 * Token hash: XXH64 with seed 0 (a published, widely implemented hash: anyone can recompute a
 * fingerprint). Fingerprint bit b is set when more than half of the tokens have bit b set in
 * their hash (every token weighs 1; a tie clears the bit), the same rule as the PyPI `simhash`
 * package, so that package with our token hash is an oracle for the tests.
 */
#include "cheng_native.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t rd64(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t rd32(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static inline uint64_t xround(uint64_t acc, uint64_t in) {
    acc += in * P2;
    return rotl(acc, 31) * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v) {
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

uint64_t cb_token_hash(const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = (uint64_t)0 - P1;
        do {
            v1 = xround(v1, rd64(p));
            v2 = xround(v2, rd64(p + 8));
            v3 = xround(v3, rd64(p + 16));
            v4 = xround(v4, rd64(p + 24));
            p += 32;
        } while (p + 32 <= end);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xmerge(h, v1);
        h = xmerge(h, v2);
        h = xmerge(h, v3);
        h = xmerge(h, v4);
    } else {
        h = P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) {
        h ^= xround(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
    }
    if (p + 4 <= end) {
        h ^= rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= (uint64_t)*p * P5;
        h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* Bit counting, eight counters per 64-bit word: acc[j] byte k counts bit 8k + j of the hashes.
 * A byte counter holds 255, so the words are flushed into 64 wide counters every 255 tokens. */
typedef struct {
    uint64_t acc[8];
    uint64_t count[64];
    uint64_t pending, total;
} bitsum;

static void bs_flush(bitsum *s) {
    for (int j = 0; j < 8; j++) {
        uint64_t a = s->acc[j];
        for (int k = 0; k < 8; k++) s->count[8 * k + j] += (a >> (8 * k)) & 0xff;
        s->acc[j] = 0;
    }
    s->pending = 0;
}

static inline void bs_add(bitsum *s, uint64_t h) {
    for (int j = 0; j < 8; j++) s->acc[j] += (h >> j) & 0x0101010101010101ull;
    s->total++;
    if (++s->pending == 255) bs_flush(s);
}

static uint64_t bs_result(bitsum *s) {
    bs_flush(s);
    uint64_t fp = 0;
    for (int b = 0; b < 64; b++)
        if (2 * s->count[b] > s->total) fp |= 1ull << b;
    return fp;
}

uint64_t cb_simhash64_from_hashes(const uint64_t *hashes, size_t n) {
    bitsum s;
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < n; i++) bs_add(&s, hashes[i]);
    return bs_result(&s);
}

int cb_simhash64_batch(const uint8_t *buf, const uint64_t *doc_off, const uint64_t *doc_len,
                       const uint64_t *doc_ntok, size_t ndocs, int sep, const uint64_t *tok_len,
                       uint64_t *out) {
    size_t ti = 0; /* index into tok_len across documents */
    bitsum s;
    for (size_t d = 0; d < ndocs; d++) {
        const uint8_t *p = buf + doc_off[d], *end = p + doc_len[d];
        uint64_t ntok = doc_ntok[d];
        memset(&s, 0, sizeof s);
        if (ntok == 0) {
            if (p != end) return -1;
            out[d] = 0;
            continue;
        }
        if (sep >= 0) {
            for (uint64_t t = 0; t + 1 < ntok; t++) {
                const uint8_t *q = (const uint8_t *)memchr(p, sep, (size_t)(end - p));
                if (!q) return -1;
                bs_add(&s, cb_token_hash(p, (size_t)(q - p)));
                p = q + 1;
            }
            if (memchr(p, sep, (size_t)(end - p))) return -1;
            bs_add(&s, cb_token_hash(p, (size_t)(end - p)));
        } else {
            for (uint64_t t = 0; t < ntok; t++, ti++) {
                if (tok_len[ti] > (uint64_t)(end - p)) return -1;
                bs_add(&s, cb_token_hash(p, (size_t)tok_len[ti]));
                p += tok_len[ti];
            }
            if (p != end) return -1;
        }
        out[d] = bs_result(&s);
    }
    return 0;
}

int cb_hamming64(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

size_t cb_pairs_within(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = fps[i];
        for (size_t j = i + 1; j < n; j++) {
            unsigned dist = (unsigned)__builtin_popcountll(a ^ fps[j]);
            if (dist <= d) {
                if (k < cap) {
                    out[3 * k] = i;
                    out[3 * k + 1] = j;
                    out[3 * k + 2] = dist;
                }
                k++;
            }
        }
    }
    return k;
}
