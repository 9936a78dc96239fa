/* simhash.c: 64-bit SimHash over token streams (docs/chunker.md, "SimHash64").
 *
 * Token hash: XXH64 with seed 0 (a published, widely implemented hash: anyone can recompute a
 * fingerprint). Fingerprint bit b is set when more than half of the tokens have bit b set in
 * their hash (every token weighs 1; a tie clears the bit), the same rule as the PyPI `simhash`
 * package, so that package with our token hash is an oracle for the tests.
 */
#include "cheng_native.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cb_simsum_weighted.h"
#include "cb_xxh64.h"

/* Short names for the XXH64 pieces the 4-lane short-token path below reuses. */
#define P1 CB_XXH_P1
#define P2 CB_XXH_P2
#define P3 CB_XXH_P3
#define P4 CB_XXH_P4
#define P5 CB_XXH_P5
#define rotl cb_xxh_rotl
#define rd64 cb_xxh_rd64
#define rd32 cb_xxh_rd32
#define xround cb_xxh_round
#define xxh64 cb_xxh64

uint64_t cb_token_hash(const void *data, size_t len) { return xxh64(data, len); }

/* b ^ ((a ^ b) & -c): a when c is 1, b when c is 0, without a branch. */
#define SEL(c, a, b) ((b) ^ (((a) ^ (b)) & ((uint64_t)0 - (uint64_t)(c))))

/* XXH64 of four tokens shorter than 16 bytes each, when 16 bytes from each start may be read.
 * Same results as xxh64(). Every step is computed for every token and kept or dropped by SEL:
 * with tokens of random lengths, branching on the length mispredicts all the time. The four
 * independent chains of multiplies sit side by side, so the core overlaps them. */
#define SHORT_MAX 16
static uint64_t byte_p5[256]; /* b * P5: a load instead of a multiply in the tail steps */
static pthread_once_t byte_p5_once = PTHREAD_ONCE_INIT;
static void init_byte_p5(void) {
    for (int b = 0; b < 256; b++) byte_p5[b] = (uint64_t)b * P5;
}
static inline void xxh64_short4(const uint8_t *const p[4], const size_t len[4], uint64_t out[4]) {
    uint64_t h[4];
    const uint8_t *t[4];
    size_t r[4];
    for (int l = 0; l < 4; l++) {
        /* Shorter than 16 bytes: at most one 8-byte lane. */
        uint64_t h0 = P5 + (uint64_t)len[l];
        uint64_t hn = rotl(h0 ^ xround(0, rd64(p[l])), 27) * P1 + P4;
        h[l] = SEL(len[l] >= 8, hn, h0);
    }
    for (int l = 0; l < 4; l++) {
        t[l] = p[l] + 8 * (len[l] >> 3);
        r[l] = len[l] & 7;
        uint64_t hn = rotl(h[l] ^ rd32(t[l]) * P1, 23) * P2 + P3;
        h[l] = SEL(r[l] >= 4, hn, h[l]);
        t[l] += r[l] & 4;
    }
    for (int j = 0; j < 3; j++) {
        for (int l = 0; l < 4; l++) {
            uint64_t hn = rotl(h[l] ^ byte_p5[t[l][j]], 11) * P1;
            h[l] = SEL((size_t)j < (r[l] & 3), hn, h[l]);
        }
    }
    for (int l = 0; l < 4; l++) {
        uint64_t x = h[l];
        x ^= x >> 33;
        x *= P2;
        x ^= x >> 29;
        x *= P3;
        x ^= x >> 32;
        out[l] = x;
    }
}

/* Bit i set when blk[i] == sep, for i < n <= 64. */
static inline uint64_t sep_mask64(const uint8_t *blk, size_t n, uint8_t sep) {
    uint8_t tmp[64];
    if (n < 64) {
        memset(tmp, sep ^ 1, sizeof tmp); /* padding that is never a separator */
        memcpy(tmp, blk, n);
        blk = tmp;
    }
    uint64_t m = 0;
#if defined(__SSE2__)
    const __m128i pat = _mm_set1_epi8((char)sep);
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(blk + 16 * k));
        m |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, pat)) << (16 * k);
    }
#else
    for (int i = 0; i < 64; i++) m |= (uint64_t)(blk[i] == sep) << i;
#endif
    return m;
}

/* Finds separators 64 bytes at a time: one mask per block, one bit per separator, so the loop
 * over tokens has no branch that depends on a token's length. */
typedef struct {
    const uint8_t *buf;
    size_t len, blk; /* blk: offset of the block `mask` describes */
    uint64_t mask;
    uint8_t sep;
} sepscan;

static inline void ss_init(sepscan *s, const uint8_t *buf, size_t len, uint8_t sep) {
    s->buf = buf;
    s->len = len;
    s->blk = 0;
    s->sep = sep;
    s->mask = len ? sep_mask64(buf, len < 64 ? len : 64, sep) : 0;
}

/* Offset of the next separator, or len when there is none. */
static inline size_t ss_next(sepscan *s) {
    while (!s->mask) {
        if (s->len - s->blk <= 64) return s->len;
        s->blk += 64;
        size_t n = s->len - s->blk;
        s->mask = sep_mask64(s->buf + s->blk, n < 64 ? n : 64, s->sep);
    }
    size_t q = s->blk + (size_t)__builtin_ctzll(s->mask);
    s->mask &= s->mask - 1;
    return q;
}

/* Bit counting in three tiers, so the per-token work is small: nibble counters (sixteen per
 * word, acc4[j] nibble n counts bit 4n + j of the hashes; a nibble holds 15) are folded every 15
 * tokens into byte counters (acc[j] byte k counts bit 8k + j; a byte holds 255 = 17 * 15), which
 * are folded into 64 wide counters every 255 tokens. */
typedef struct {
    uint64_t acc4[4];
    uint64_t acc[8];
    uint64_t count[64];
    uint64_t total;
    unsigned p4, p8;
} bitsum;

static void bs_flush(bitsum *s) {
    for (int j = 0; j < 8; j++) {
        uint64_t a = s->acc[j];
        for (int k = 0; k < 8; k++) s->count[8 * k + j] += (a >> (8 * k)) & 0xff;
        s->acc[j] = 0;
    }
    s->p8 = 0;
}

static inline void bs_fold4(bitsum *s) {
    const uint64_t lo = 0x0F0F0F0F0F0F0F0Full;
    for (int j = 0; j < 4; j++) {
        s->acc[j] += s->acc4[j] & lo;            /* nibble 2k -> byte k: bit 8k + j */
        s->acc[j + 4] += (s->acc4[j] >> 4) & lo; /* nibble 2k+1 -> byte k: bit 8k + 4 + j */
        s->acc4[j] = 0;
    }
    s->p4 = 0;
    if (++s->p8 == 17) bs_flush(s);
}

static inline void bs_add(bitsum *s, uint64_t h) {
    for (int j = 0; j < 4; j++) s->acc4[j] += (h >> j) & 0x1111111111111111ull;
    s->total++;
    if (++s->p4 == 15) bs_fold4(s);
}

static uint64_t bs_result(bitsum *s) {
    bs_fold4(s);
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

struct cb_simsum {
    bitsum b;
};
size_t cb_simsum_size(void) { return sizeof(cb_simsum); }
void cb_simsum_init(cb_simsum *s) { memset(s, 0, sizeof *s); }
void cb_simsum_add(cb_simsum *s, const uint64_t *hashes, size_t n) {
    for (size_t i = 0; i < n; i++) bs_add(&s->b, hashes[i]);
}
void cb_simsum_add_weighted(cb_simsum *s, uint64_t hash, uint64_t weight) {
    /* Straight into the wide counters: the nibble and byte tiers count single tokens only. */
    for (int b = 0; b < 64; b++) s->b.count[b] += ((hash >> b) & 1u) * weight;
    s->b.total += weight;
}
uint64_t cb_simsum_result(const cb_simsum *s) {
    bitsum copy = s->b; /* bs_result folds the partial counters: work on a copy */
    return bs_result(&copy);
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
                bs_add(&s, xxh64(p, (size_t)(q - p)));
                p = q + 1;
            }
            if (memchr(p, sep, (size_t)(end - p))) return -1;
            bs_add(&s, xxh64(p, (size_t)(end - p)));
        } else {
            for (uint64_t t = 0; t < ntok; t++, ti++) {
                if (tok_len[ti] > (uint64_t)(end - p)) return -1;
                bs_add(&s, xxh64(p, (size_t)tok_len[ti]));
                p += tok_len[ti];
            }
            if (p != end) return -1;
        }
        out[d] = bs_result(&s);
    }
    return 0;
}

int cb_simhash64_joined(const uint8_t *buf, size_t len, int sep, const uint64_t *doc_ntok,
                        size_t ndocs, uint64_t *out) {
    size_t left = 0; /* tokens still to read, over all documents */
    for (size_t d = 0; d < ndocs; d++) left += (size_t)doc_ntok[d];
    if (left == 0 && len != 0) return -1;
    pthread_once(&byte_p5_once, init_byte_p5);
    sepscan ss;
    ss_init(&ss, buf, len, (uint8_t)sep);
    size_t pos = 0;
    bitsum s;
    for (size_t d = 0; d < ndocs; d++) {
        memset(&s, 0, sizeof s);
        for (uint64_t todo = doc_ntok[d]; todo > 0;) {
            /* Up to eight tokens: find them, then hash them four at a time. */
            const uint8_t *tp[8];
            size_t tl[8];
            uint64_t th[8];
            size_t k = todo < 8 ? (size_t)todo : 8;
            int all_short = 1;
            for (size_t i = 0; i < k; i++) {
                size_t q = ss_next(&ss);
                if (--left == 0 ? q != len : q == len) return -1; /* separators != tokens - 1 */
                tp[i] = buf + pos;
                tl[i] = q - pos;
                all_short &= tl[i] < SHORT_MAX && len - pos >= SHORT_MAX;
                pos = q + (q < len);
            }
            if (all_short && k == 8) {
                xxh64_short4(tp, tl, th);
                xxh64_short4(tp + 4, tl + 4, th + 4);
            } else {
                for (size_t i = 0; i < k; i++) th[i] = xxh64(tp[i], tl[i]);
            }
            for (size_t i = 0; i < k; i++) bs_add(&s, th[i]);
            todo -= k;
        }
        out[d] = doc_ntok[d] ? bs_result(&s) : 0;
    }
    return 0;
}

/* Tokens read straight from the caller's Python lists (cheng_native.h, cb_simhash64_pylists):
 * no joined copy of the batch is built. Short tokens are copied into 32-byte slots of `stage`
 * first, so xxh64_short4 may read 16 bytes from each start (a Python string only promises its
 * bytes and a NUL terminator). */
/* Tokens are fetched PF_AHEAD list slots before they are hashed and their string objects
 * prefetched: the strings of a document lie all over the heap, and the first touch of each
 * (PyUnicode_AsUTF8AndSize reading its header) was a cache miss that cost as much as hashing
 * and summing together (perf, 20,000-word vocabulary). */
#define PF_AHEAD 16
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_OBJ(p)                                                                            \
    do {                                                                                           \
        __builtin_prefetch((const char *)(p));                                                     \
        __builtin_prefetch((const char *)(p) + 64);                                                \
    } while (0)
#else
#define PREFETCH_OBJ(p) ((void)(p))
#endif

/* memcpy of n < SHORT_MAX bytes as at most two fixed-size overlapping moves (inlined, where a
 * variable-length memcpy is a libc call per token). Bytes of dst past n are left as they were:
 * xxh64_short4 never uses them. */
static inline void copy_short(uint8_t *dst, const uint8_t *src, size_t n) {
    if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif
/* Reads of the interpreter's objects at the offsets the caller checked (cb_pyapi). */
#define AT(obj, off, type) (*(type const *)(const void *)((const char *)(obj) + (off)))

/* One token's UTF-8 bytes: read in place when it is a compact ASCII str and the layout is
 * known (`direct`; *inside is then set: the 16 bytes before the terminating NUL may be read, as
 * the object's header lies before its bytes), else through the API call (which also raises for a
 * token that is not a str). */
static ALWAYS_INLINE const uint8_t *token_utf8(const cb_pyapi *api, int direct, void *tok, size_t *len,
                                               int *inside) {
    if (direct && tok && AT(tok, api->type_off, const void *) == api->str_type &&
        (AT(tok, api->str_state_off, uint32_t) & api->str_ascii_bits) == api->str_ascii_bits) {
        *len = (size_t)AT(tok, api->str_len_off, intptr_t);
        *inside = 1;
        return (const uint8_t *)tok + api->str_ascii_data_off;
    }
    *inside = 0;
    intptr_t n = -1;
    const char *u = tok ? api->utf8(tok, &n) : NULL;
    if (!u || n < 0) return NULL;
    *len = (size_t)n;
    return (const uint8_t *)u;
}

/* Item t of a list: in place (`direct`: the caller checked the layout and that it is a list)
 * or through the call. */
static ALWAYS_INLINE void *list_at(const cb_pyapi *api, int direct, void *const *items, void *list, intptr_t t) {
    return direct ? items[t] : api->list_item(list, t);
}

/* The kernel, written once; called with `direct` a constant and inlined (forced: the compiler
 * otherwise keeps one copy that tests `direct` per token) so each variant is compiled on its own. */
static ALWAYS_INLINE int pylists_kernel(const cb_pyapi *api, const int direct, void *docs, uint64_t *out) {
    intptr_t ndocs = direct ? AT(docs, api->list_size_off, intptr_t) : api->list_size(docs);
    if (ndocs < 0) return -1;
    void *const *doc_items = direct ? AT(docs, api->list_items_off, void *const *) : NULL;
    uint8_t stage[8][32];
    memset(stage, 0, sizeof stage);
    bitsum s;
    void *ring[PF_AHEAD]; /* ring[t % PF_AHEAD]: token t's object, fetched ahead */
    for (intptr_t d = 0; d < ndocs; d++) {
        void *doc = list_at(api, direct, doc_items, docs, d);
        if (!doc) return -1;
        intptr_t ntok = direct ? AT(doc, api->list_size_off, intptr_t) : api->list_size(doc);
        if (ntok < 0) return -1;
        void *const *items = direct ? AT(doc, api->list_items_off, void *const *) : NULL;
        memset(&s, 0, sizeof s);
        for (intptr_t t = 0; t < ntok && t < PF_AHEAD; t++) {
            ring[t] = list_at(api, direct, items, doc, t);
            if (ring[t]) PREFETCH_OBJ(ring[t]);
        }
        for (intptr_t i = 0; i < ntok;) {
            const uint8_t *tp[8];
            size_t tl[8];
            uint64_t th[8];
            size_t k = ntok - i < 8 ? (size_t)(ntok - i) : 8;
            int all_short = 1, all_inside = 1;
            for (size_t j = 0; j < k; j++) {
                intptr_t t = i + (intptr_t)j;
                void *tok = ring[t % PF_AHEAD];
                if (t + PF_AHEAD < ntok) {
                    void *ahead = list_at(api, direct, items, doc, t + PF_AHEAD);
                    if (ahead) PREFETCH_OBJ(ahead);
                    ring[t % PF_AHEAD] = ahead;
                }
                int inside = 0;
                tp[j] = token_utf8(api, direct, tok, &tl[j], &inside);
                if (!tp[j]) return -1;
                all_short &= tl[j] < SHORT_MAX;
                all_inside &= inside;
            }
            if (all_short && k == 8) {
                const uint8_t *sp[8];
                if (direct && all_inside) {
                    /* Branch-free staging: the 16 bytes that end at each token's NUL, copied
                     * whole; the token starts 15 - len bytes in (copy_short branches on the
                     * length, which random token lengths mispredict). */
                    for (size_t j = 0; j < 8; j++) {
                        memcpy(stage[j], tp[j] + tl[j] - (SHORT_MAX - 1), SHORT_MAX);
                        sp[j] = stage[j] + (SHORT_MAX - 1) - tl[j];
                    }
                } else {
                    for (size_t j = 0; j < 8; j++) {
                        copy_short(stage[j], tp[j], tl[j]);
                        sp[j] = stage[j];
                    }
                }
                xxh64_short4(sp, tl, th);
                xxh64_short4(sp + 4, tl + 4, th + 4);
            } else {
                for (size_t j = 0; j < k; j++) th[j] = xxh64(tp[j], tl[j]);
            }
            for (size_t j = 0; j < k; j++) bs_add(&s, th[j]);
            i += (intptr_t)k;
        }
        out[d] = ntok ? bs_result(&s) : 0;
    }
    return 0;
}

int cb_simhash64_pylists(const cb_pyapi *api, void *docs, uint64_t *out) {
    pthread_once(&byte_p5_once, init_byte_p5);
    /* Reading in place skips two calls per token (PyList_GetItem, PyUnicode_AsUTF8AndSize,
     * each with its own type checks): about a fifth of the time per token (perf). */
    if (api->list_items_off != 0 && api->str_type != NULL && api->str_ascii_bits != 0 &&
        api->str_ascii_data_off >= SHORT_MAX)
        return pylists_kernel(api, 1, docs, out);
    return pylists_kernel(api, 0, docs, out);
}

int cb_hamming64(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

size_t cb_pairs_within_brute(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap) {
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

/* ---- all pairs within d, indexed ----------------------------------------------------------
 * Pigeonhole: cut the 64 bits into d+1 blocks; two fingerprints within distance d agree on at
 * least one whole block. For each block, sort (block value, index) and compare only within runs
 * of equal values; a pair is reported under the first block it agrees on, so once. Then sort the
 * pairs by (i, j). For random fingerprints the runs are short, so this is about
 * (d+1) n log n instead of n^2 / 2. */
typedef struct {
    uint64_t key;
    uint64_t idx;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = (const keyed *)a, *y = (const keyed *)b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_triple(const void *a, const void *b) {
    const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Bits [lo, hi) of x. */
static inline uint64_t block_of(uint64_t x, unsigned lo, unsigned hi) {
    unsigned w = hi - lo;
    return w >= 64 ? x : (x >> lo) & ((1ull << w) - 1);
}

size_t cb_pairs_within_indexed(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap) {
    unsigned nb = d + 1;
    if (nb > 64 || n < 2) return cb_pairs_within_brute(fps, n, d, out, cap);
    keyed *k = (keyed *)malloc(n * sizeof *k);
    size_t pcap = 1024, np = 0;
    uint64_t *pairs = (uint64_t *)malloc(3 * pcap * sizeof *pairs);
    if (!k || !pairs) {
        free(k);
        free(pairs);
        return cb_pairs_within_brute(fps, n, d, out, cap);
    }
    unsigned lo[65];
    for (unsigned b = 0; b <= nb; b++) lo[b] = (64 * b) / nb;
    for (unsigned b = 0; b < nb; b++) {
        for (size_t i = 0; i < n; i++) k[i] = (keyed){block_of(fps[i], lo[b], lo[b + 1]), i};
        qsort(k, n, sizeof *k, cmp_keyed);
        for (size_t s = 0, e; s < n; s = e) {
            for (e = s + 1; e < n && k[e].key == k[s].key; e++) {
            }
            for (size_t x = s; x < e; x++) {
                for (size_t y = x + 1; y < e; y++) {
                    uint64_t a = fps[k[x].idx], c = fps[k[y].idx];
                    unsigned dist = (unsigned)__builtin_popcountll(a ^ c);
                    if (dist > d) continue;
                    /* Reported under an earlier block already? */
                    int earlier = 0;
                    for (unsigned b2 = 0; b2 < b && !earlier; b2++)
                        earlier = block_of(a, lo[b2], lo[b2 + 1]) == block_of(c, lo[b2], lo[b2 + 1]);
                    if (earlier) continue;
                    if (np == pcap) {
                        uint64_t *grown = (uint64_t *)realloc(pairs, 6 * pcap * sizeof *pairs);
                        if (!grown) {
                            free(k);
                            free(pairs);
                            return cb_pairs_within_brute(fps, n, d, out, cap);
                        }
                        pairs = grown;
                        pcap *= 2;
                    }
                    pairs[3 * np] = k[x].idx; /* x < y in a run sorted by index: idx(x) < idx(y) */
                    pairs[3 * np + 1] = k[y].idx;
                    pairs[3 * np + 2] = dist;
                    np++;
                }
            }
        }
    }
    qsort(pairs, np, 3 * sizeof *pairs, cmp_triple);
    if (np && cap) memcpy(out, pairs, (np < cap ? np : cap) * 3 * sizeof *pairs);
    free(k);
    free(pairs);
    return np;
}

size_t cb_pairs_within(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap) {
    /* The index pays off when there are many fingerprints and the blocks stay wide enough
     * (64 / (d + 1) >= 5 bits) to split them into short runs. */
    if (n < 2048 || d > 10) return cb_pairs_within_brute(fps, n, d, out, cap);
    return cb_pairs_within_indexed(fps, n, d, out, cap);
}
