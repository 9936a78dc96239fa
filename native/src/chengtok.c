/* chengtok.c: the Cheng source scanner (cb_chengtok.h; docs/chunker.md, section 6).
 *
 * Two scanners over the same text, each a hand-written form of a regular expression that
 * cheng_build/pkg/{originality,api}.py keep as the reference (and the tests' oracle):
 * - the fingerprint tokenizer, alternatives tried in the reference's order at each position
 *   (newlines, `import std/` lines, comments, strings, chars, numbers, backtick names, identifiers,
 *   operators, brackets, blanks, anything else), feeding unigrams, bigrams and trigrams into the
 *   SimHash sums of simhash.c;
 * - the logical-line splitter of the API table.
 * Positions are bytes; where a rule speaks of "one character", one UTF-8 code point is consumed.
 * Plain C11, no malloc per token: the stream state grows its buffers geometrically.
 */
#include "cb_chengtok.h"
#include "cheng_native.h"
#include "cb_xxh64.h"
#include "cb_uclass.h"
#include "cb_simsum_weighted.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- code points and classes --------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p (1 for a stray byte), its code point in *cp. Lenient: the
 * caller passes text Python already decoded (or encoded with surrogatepass). */
static inline size_t u8_next(const uint8_t *p, const uint8_t *end, uint32_t *cp) {
    uint8_t c = p[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xF0) {
        n = 4;
        v = c & 0x07;
    } else if (c >= 0xE0) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xC0) {
        n = 2;
        v = c & 0x1F;
    } else {
        *cp = c;
        return 1;
    }
    if ((size_t)(end - p) < n) {
        *cp = c;
        return 1;
    }
    for (size_t i = 1; i < n; i++) v = (v << 6) | (p[i] & 0x3F);
    *cp = v;
    return n;
}

typedef struct {
    const uint32_t *ucls;
    size_t n;
} uclass;

static unsigned uc_lookup(const uclass *u, uint32_t cp) {
    return cb_uclass_find(u->ucls, u->n, cp);
}

static inline unsigned cls_of(const uclass *u, uint32_t cp) {
    if (cp < 0x80) {
        unsigned r = 0;
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_') r |= CB_UC_WORD;
        if (cp >= '0' && cp <= '9') r |= CB_UC_WORD | CB_UC_DIGIT;
        if ((cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20)) r |= CB_UC_SPACE;
        return r;
    }
    return uc_lookup(u, cp);
}

/* Class of the code point at p (and its length in *n). */
static inline unsigned cls_at(const uclass *u, const uint8_t *p, const uint8_t *end, size_t *n) {
    uint32_t cp;
    *n = u8_next(p, end, &cp);
    return cls_of(u, cp);
}

/* ---- the fingerprint stream ----------------------------------------------------------------- */

/* Tokens as small ids, n-grams as counts. The abstract vocabulary is tiny (identifiers all read
 * ID): a 5.6 MB package has ~80 distinct tokens, ~560 bigrams and ~2,200 trigrams among its
 * 2.8 million features. The SimHash sums depend only on how often each distinct feature occurs
 * (cb_simsum_weighted.h), so each token costs one array increment and two probes of a small
 * table; a distinct n-gram is spelled and hashed once, when the sums are read. A token with no
 * id (an operator run longer than 8 bytes, or any new one after MAXID) and the n-grams around it
 * are hashed one by one as before: the sums are the same either way. */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytebuf;

static int bb_reserve(bytebuf *b, size_t n) {
    if (n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < n) cap *= 2;
        uint8_t *q = (uint8_t *)realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    return 0;
}

static int bb_set(bytebuf *b, const uint8_t *s, size_t n) {
    if (bb_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p, s, n);
    b->len = n;
    return 0;
}

typedef struct {
    const char *s;
    size_t n;
} kwent;
#define KW(lit) {lit, sizeof(lit) - 1}
static const kwent KEYWORDS[] = {
    KW("fn"), KW("if"), KW("as"), KW("in"), KW("of"), KW("is"), KW("let"), KW("var"),
    KW("mut"), KW("for"), KW("nil"), KW("ref"), KW("set"), KW("str"), KW("type"), KW("elif"),
    KW("else"), KW("when"), KW("case"), KW("true"), KW("enum"), KW("const"), KW("trait"),
    KW("macro"), KW("async"), KW("while"), KW("break"), KW("yield"), KW("defer"), KW("await"),
    KW("block"), KW("where"), KW("false"), KW("tuple"), KW("notin"), KW("module"), KW("return"),
    KW("import"), KW("concept"), KW("iterator"), KW("template"), KW("continue")};
#undef KW
#define NKW (sizeof KEYWORDS / sizeof KEYWORDS[0])

/* Fixed ids; keyword i is T_KW0 + i; operator runs and brackets get ids as they first occur. */
enum { T_FILE, T_NL, T_INDENT, T_DEDENT, T_ID, T_NUM, T_STR, T_CHR, T_KW0 };
static const char *const FIXED[T_KW0] = {"FILE", "NL", "INDENT", "DEDENT", "ID", "NUM", "STR", "CHR"};
#define MAXID 1024u        /* ids fit 10 bits: an n-gram key packs three in 32 */
#define NOID 0xFFFFu
#define IDMAX_LEN 8        /* every id's text fits 8 bytes (keywords included) */
#define OPMAP_BITS 11      /* open-addressing map: operator run (packed) -> id; 2 * MAXID slots */
#define OPMAP (1u << OPMAP_BITS)
#define KWMAP_BITS 7       /* keyword (packed) -> index + 1 */
#define KWMAP (1u << KWMAP_BITS)
#define GRAM_BITS 10       /* n-gram table: 1 << GRAM_BITS slots at first, GRAM_MAX at most */
#define GRAM_MIN (1u << GRAM_BITS)
#define GRAM_MAX (1u << 17)
#define HBUF 1024

/* 8 bytes a slot, so the table of a real package (~2,800 n-grams) stays in L1/L2: each token
 * probes it twice. A count about to overflow is folded into the sums first. */
typedef struct {
    uint32_t key; /* n << 30 | a << 20 | b << 10 | c; 0: empty */
    uint32_t count;
} gslot;

struct cb_ctok {
    cb_simsum *sum;
    uint64_t hashes[HBUF]; /* features hashed one by one, not yet in the sums */
    size_t nh;
    uint64_t ntok;
    /* ids of the last two tokens of the stream (NOID: see prev1/prev2). Ids are stored as
     * uint16_t and the table's shift as size_t: a type a count store (uint32_t) cannot alias,
     * so the compiler keeps them in registers across a token. */
    uint16_t id1, id2;
    bytebuf prev1, prev2; /* their text, kept only when they have no id */
    bytebuf gram;         /* scratch for "a b" and "a b c" */
    /* ids */
    uint32_t nids;
    uint8_t idlen[MAXID];
    uint8_t idstr[MAXID][IDMAX_LEN];
    uint16_t charid[256]; /* one-byte operators and brackets: id + 1, 0 when not seen yet */
    uint64_t opkey[OPMAP];
    uint16_t opid[OPMAP];
    uint64_t kwkey[KWMAP];
    uint8_t kwidx[KWMAP];
    uint32_t kwfirst[IDMAX_LEN + 1]; /* bit c - 'a': some keyword of that length starts with c */
    /* counts */
    uint64_t uni[MAXID];
    gslot *gram_t;
    size_t gcap, gn;
    size_t gshift;
    /* per file */
    uint64_t *indents;
    size_t nind, capind;
    int failed;
};

static inline uint64_t pack8(const uint8_t *p, size_t n) {
    uint64_t k = 0;
    memcpy(&k, p, n); /* n <= 8; the bytes read are never NUL, so the packing is unique */
    return k;
}

static inline size_t mix(uint64_t k, unsigned shift) {
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> shift);
}

static inline size_t mix32(uint32_t k, size_t shift) {
    return (size_t)((uint32_t)(k * 0x9E3779B1u) >> shift);
}

static uint32_t new_id(cb_ctok *s, const uint8_t *t, size_t n) {
    if (s->nids == MAXID) return NOID;
    uint32_t id = s->nids++;
    memcpy(s->idstr[id], t, n);
    s->idlen[id] = (uint8_t)n;
    return id;
}

cb_ctok *cb_ctok_new(void) {
    cb_ctok *s = (cb_ctok *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->sum = (cb_simsum *)malloc(cb_simsum_size());
    s->gram_t = (gslot *)calloc(GRAM_MIN, sizeof(gslot));
    if (!s->sum || !s->gram_t) {
        free(s->sum);
        free(s->gram_t);
        free(s);
        return NULL;
    }
    cb_simsum_init(s->sum);
    s->gcap = GRAM_MIN;
    s->gshift = 32 - GRAM_BITS;
    for (unsigned i = 0; i < T_KW0; i++) (void)new_id(s, (const uint8_t *)FIXED[i], strlen(FIXED[i]));
    for (unsigned i = 0; i < NKW; i++) {
        (void)new_id(s, (const uint8_t *)KEYWORDS[i].s, KEYWORDS[i].n);
        uint64_t k = pack8((const uint8_t *)KEYWORDS[i].s, KEYWORDS[i].n);
        size_t j = mix(k, 64 - KWMAP_BITS);
        while (s->kwkey[j]) j = (j + 1) & (KWMAP - 1);
        s->kwkey[j] = k;
        s->kwidx[j] = (uint8_t)(i + 1);
        s->kwfirst[KEYWORDS[i].n] |= 1u << (KEYWORDS[i].s[0] - 'a');
    }
    s->id1 = s->id2 = (uint16_t)NOID;
    return s;
}

void cb_ctok_free(cb_ctok *s) {
    if (!s) return;
    free(s->sum);
    free(s->gram_t);
    free(s->prev1.p);
    free(s->prev2.p);
    free(s->gram.p);
    free(s->indents);
    free(s);
}

/* The keyword index of identifier p[0..n), or -1: one probe of a small map for the
 * identifiers that could be one (2 to 8 bytes, a lowercase first letter). */
static inline int keyword(const cb_ctok *s, const uint8_t *p, size_t n) {
    if (n < 2 || n > 8 || p[0] < 'a' || p[0] > 'z') return -1;
    if (!(s->kwfirst[n] >> (p[0] - 'a') & 1u)) return -1; /* no keyword of this length and letter */
    uint64_t k = pack8(p, n);
    for (size_t j = mix(k, 64 - KWMAP_BITS);; j = (j + 1) & (KWMAP - 1)) {
        if (s->kwkey[j] == k) return s->kwidx[j] - 1;
        if (!s->kwkey[j]) return -1;
    }
}

/* The id of an operator run or bracket p[0..n) (a new one when first seen), or NOID. */
static inline uint32_t op_id(cb_ctok *s, const uint8_t *p, size_t n) {
    if (n == 1) {
        uint32_t v = s->charid[p[0]];
        if (v) return v - 1;
        uint32_t id = new_id(s, p, 1);
        if (id != NOID) s->charid[p[0]] = (uint16_t)(id + 1);
        return id;
    }
    if (n > IDMAX_LEN) return NOID;
    uint64_t k = pack8(p, n);
    size_t j = mix(k, 64 - OPMAP_BITS);
    for (; s->opkey[j]; j = (j + 1) & (OPMAP - 1))
        if (s->opkey[j] == k) return s->opid[j];
    uint32_t id = new_id(s, p, n);
    if (id != NOID) { /* the map has twice the slots of all ids: never full */
        s->opkey[j] = k;
        s->opid[j] = (uint16_t)id;
    }
    return id;
}

/* Spell n-gram `key` into g (at least 3 * (IDMAX_LEN + 1) bytes); its length. */
static size_t spell(const cb_ctok *s, uint32_t key, uint8_t *g) {
    unsigned n = key >> 30;
    uint32_t ids[3] = {(key >> 20) & 0x3FF, (key >> 10) & 0x3FF, key & 0x3FF};
    size_t k = 0;
    for (unsigned i = 3 - n; i < 3; i++) {
        if (k) g[k++] = ' ';
        memcpy(g + k, s->idstr[ids[i]], s->idlen[ids[i]]);
        k += s->idlen[ids[i]];
    }
    return k;
}

/* Trigram `key` seen w times: it, the bigram and the unigram it ends, each w times. */
static void fold_entry(const cb_ctok *s, cb_simsum *sum, uint32_t key, uint64_t w) {
    uint8_t g[3 * (IDMAX_LEN + 1)];
    cb_simsum_add_weighted(sum, cb_xxh64(g, spell(s, key, g)), w);
    cb_simsum_add_weighted(sum, cb_xxh64(g, spell(s, 2u << 30 | (key & 0xFFFFF), g)), w);
    cb_simsum_add_weighted(sum, cb_xxh64(g, spell(s, 1u << 30 | (key & 0x3FF), g)), w);
}

/* Add the counted trigrams (and the unigrams counted alone when `uni`) to `sum`. */
static void fold_counts(const cb_ctok *s, cb_simsum *sum, int uni) {
    for (size_t i = 0; i < s->gcap; i++)
        if (s->gram_t[i].key) fold_entry(s, sum, s->gram_t[i].key, s->gram_t[i].count);
    if (uni)
        for (uint32_t id = 0; id < s->nids; id++)
            if (s->uni[id]) cb_simsum_add_weighted(sum, cb_xxh64(s->idstr[id], s->idlen[id]), s->uni[id]);
}

/* Make room for one more n-gram: double the table, or at its largest fold it into the sums and
 * empty it (memory stays bounded whatever the input). */
static void gram_room(cb_ctok *s) {
    if (s->gcap < GRAM_MAX) {
        size_t cap = 2 * s->gcap;
        gslot *t = (gslot *)calloc(cap, sizeof *t);
        if (t) {
            size_t shift = s->gshift - 1;
            for (size_t i = 0; i < s->gcap; i++) {
                if (!s->gram_t[i].key) continue;
                size_t j = mix32(s->gram_t[i].key, shift);
                while (t[j].key) j = (j + 1) & (cap - 1);
                t[j] = s->gram_t[i];
            }
            free(s->gram_t);
            s->gram_t = t;
            s->gcap = cap;
            s->gshift = shift;
            return;
        }
    }
    fold_counts(s, s->sum, 0);
    memset(s->gram_t, 0, s->gcap * sizeof *s->gram_t);
    s->gn = 0;
}

static void count_overflow(cb_ctok *s, gslot *g) {
    fold_entry(s, s->sum, g->key, g->count);
    g->count = 0;
}

static inline void count_gram(cb_ctok *s, uint32_t key) {
    for (;;) {
        size_t mask = s->gcap - 1, j = mix32(key, s->gshift);
        for (; s->gram_t[j].key; j = (j + 1) & mask) {
            if (s->gram_t[j].key == key) {
                if (++s->gram_t[j].count == UINT32_MAX) count_overflow(s, &s->gram_t[j]);
                return;
            }
        }
        if (4 * (s->gn + 1) <= 3 * s->gcap) {
            s->gram_t[j].key = key;
            s->gram_t[j].count = 1;
            s->gn++;
            return;
        }
        gram_room(s);
    }
}

static void add_hash(cb_ctok *s, uint64_t h) {
    s->hashes[s->nh++] = h;
    if (s->nh == HBUF) {
        cb_simsum_add(s->sum, s->hashes, s->nh);
        s->nh = 0;
    }
}

/* The text of one of the last two tokens. */
static inline const uint8_t *prev_text(const cb_ctok *s, uint32_t id, const bytebuf *b, size_t *n) {
    if (id != NOID) {
        *n = s->idlen[id];
        return s->idstr[id];
    }
    *n = b->len;
    return b->p;
}

/* An n-gram with a token that has no id: spelled and hashed now. */
static void hash_gram(cb_ctok *s, int tri, const uint8_t *t, size_t n) {
    size_t n1, n2 = 0;
    const uint8_t *p1 = prev_text(s, s->id1, &s->prev1, &n1);
    const uint8_t *p2 = tri ? prev_text(s, s->id2, &s->prev2, &n2) : NULL;
    if (bb_reserve(&s->gram, n2 + n1 + n + 2) != 0) {
        s->failed = 1;
        return;
    }
    uint8_t *g = s->gram.p;
    size_t k = 0;
    if (tri) {
        if (n2) memcpy(g, p2, n2);
        k = n2;
        g[k++] = ' ';
    }
    memcpy(g + k, p1, n1);
    k += n1;
    g[k++] = ' ';
    memcpy(g + k, t, n);
    add_hash(s, cb_xxh64(g, k + n));
}

/* One token of the stream (`id`, or NOID and its text t[0..n)): its unigram, and the bigram and
 * trigram it ends. */
static void emit(cb_ctok *s, uint32_t id, const uint8_t *t, size_t n) {
    if (s->failed) return;
    if (id != NOID && s->id1 != NOID && s->id2 != NOID && s->ntok >= 2) {
        /* The common case: one count stands for the trigram, the bigram and the unigram. */
        count_gram(s, 3u << 30 | (uint32_t)s->id2 << 20 | (uint32_t)s->id1 << 10 | id);
    } else {
        if (id != NOID) {
            t = s->idstr[id];
            n = s->idlen[id];
            s->uni[id]++;
        } else {
            add_hash(s, cb_xxh64(t, n));
        }
        if (s->ntok >= 1) hash_gram(s, 0, t, n);
        if (s->ntok >= 2) hash_gram(s, 1, t, n);
    }
    /* prev2 <- prev1 <- this token (buffers swap; text is copied only for a token with no id) */
    bytebuf tmp = s->prev2;
    s->prev2 = s->prev1;
    s->prev1 = tmp;
    s->id2 = s->id1;
    s->id1 = (uint16_t)id;
    if (id == NOID && bb_set(&s->prev1, t, n) != 0) s->failed = 1;
    s->ntok++;
}

#define emit_fixed(s, id) emit((s), (id), NULL, 0)

static int push_indent(cb_ctok *s, uint64_t v) {
    if (s->nind == s->capind) {
        size_t cap = s->capind ? s->capind * 2 : 64;
        uint64_t *q = (uint64_t *)realloc(s->indents, cap * sizeof *q);
        if (!q) return -1;
        s->indents = q;
        s->capind = cap;
    }
    s->indents[s->nind++] = v;
    return 0;
}

/* Character classes by switch, not strchr: they run for every byte of the package. */
static inline int is_op(uint8_t c) {
    switch (c) {
    case '=': case '+': case '-': case '*': case '/': case '<': case '>': case '@': case '$':
    case '~': case '&': case '%': case '|': case '!': case '?': case '^': case '.': case ':':
    case '\\':
        return 1;
    default:
        return 0;
    }
}
static inline int is_punct(uint8_t c) {
    switch (c) {
    case '(': case ')': case '[': case ']': case '{': case '}': case ',': case ';':
        return 1;
    default:
        return 0;
    }
}
static inline int is_hex(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '_';
}
static inline int is_sfx(uint8_t c) {
    return c == 'i' || c == 'I' || c == 'u' || c == 'U' || c == 'f' || c == 'F';
}
static inline int is_pfx(uint8_t c) { return c == 'r' || c == 'R' || c == 'f' || c == 'F'; }

/* Length of the digit run [\d_]* (underscore too when `under`) at p. */
static size_t digits(const uclass *u, const uint8_t *p, const uint8_t *end, int under) {
    const uint8_t *q = p;
    while (q < end) {
        if (under && *q == '_') {
            q++;
            continue;
        }
        size_t n;
        if (!(cls_at(u, q, end, &n) & CB_UC_DIGIT)) break;
        q += n;
    }
    return (size_t)(q - p);
}

/* A number at p (p holds a digit); returns its length. */
static size_t number(const uclass *u, const uint8_t *p, const uint8_t *end) {
    const uint8_t *q = p;
    size_t n;
    if (*p == '0' && end - p >= 3) {
        uint8_t x = p[1];
        int (*ok)(uint8_t) = NULL;
        if (x == 'x' || x == 'X') ok = is_hex;
        if (ok && ok(p[2])) {
            q = p + 2;
            while (q < end && ok(*q)) q++;
            goto suffix;
        }
        if (x == 'b' || x == 'B' || x == 'o' || x == 'O') {
            const char *set = (x == 'b' || x == 'B') ? "01_" : "01234567_";
            if (p[2] && strchr(set, p[2])) {
                q = p + 2;
                while (q < end && *q && strchr(set, *q)) q++;
                goto suffix;
            }
        }
    }
    (void)cls_at(u, q, end, &n);
    q += n;
    q += digits(u, q, end, 1);
    if (q + 1 < end && *q == '.') {
        size_t m;
        if (cls_at(u, q + 1, end, &m) & CB_UC_DIGIT) {
            q += 1 + m;
            q += digits(u, q, end, 1);
        }
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        const uint8_t *r = q + 1;
        if (r < end && (*r == '+' || *r == '-')) r++;
        size_t d = r < end ? digits(u, r, end, 0) : 0;
        if (d) q = r + d;
    }
suffix:
    if (q < end && *q == '\'' && q + 1 < end && is_sfx(q[1])) q += 2;
    else if (q < end && is_sfx(*q)) q += 1;
    else return (size_t)(q - p);
    return (size_t)(q - p) + digits(u, q, end, 0);
}

/* `"` string body from p (just after the opening quote) with the given quote, the fingerprint
 * rule (a backslash escapes any character, newline included); returns the end. */
static const uint8_t *string_end(const uint8_t *p, const uint8_t *end, uint8_t quote, int dotall) {
    uint32_t cp;
    while (p < end) {
        if (*p == '\\') {
            if (p + 1 >= end || (!dotall && p[1] == '\n')) return p;
            p += 1 + u8_next(p + 1, end, &cp);
            continue;
        }
        if (*p == quote || *p == '\n') break;
        p += u8_next(p, end, &cp);
    }
    if (p < end && *p == quote) p++;
    return p;
}

static const uint8_t *find3(const uint8_t *p, const uint8_t *end) {
    for (; p + 3 <= end; p++)
        if (p[0] == '"' && p[1] == '"' && p[2] == '"') return p + 3;
    return end;
}

static int starts(const uint8_t *p, const uint8_t *end, const char *lit) {
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

/* `(import|from)[ \t]+std/` at p: the line to skip. */
static int std_import(const uint8_t *p, const uint8_t *end) {
    const uint8_t *q;
    if (starts(p, end, "import")) q = p + 6;
    else if (starts(p, end, "from")) q = p + 4;
    else return 0;
    const uint8_t *r = q;
    while (r < end && (*r == ' ' || *r == '\t')) r++;
    return r > q && starts(r, end, "std/");
}

static const uint8_t *line_end(const uint8_t *p, const uint8_t *end) {
    const uint8_t *q = memchr(p, '\n', (size_t)(end - p));
    return q ? q : end;
}

/* [A-Za-z0-9_]: ASCII word bytes (a load per byte of an identifier, no compare chain). */
static const uint8_t WORD_ASCII[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline int is_word_ascii(uint8_t c) { return WORD_ASCII[c]; }

/* End of the identifier run [\w]* from q: ASCII bytes by comparison, others by class. */
static inline const uint8_t *word_end(const uclass *u, const uint8_t *q, const uint8_t *end) {
    for (;;) {
        while (q < end && is_word_ascii(*q)) q++;
        size_t n;
        if (q < end && *q >= 0x80 && (cls_at(u, q, end, &n) & CB_UC_WORD)) {
            q += n;
            continue;
        }
        return q;
    }
}

int cb_ctok_feed(cb_ctok *s, const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls) {
    if (s->failed) return -1;
    uclass u = {ucls, nucls};
    const uint8_t *p = text, *end = text + len;
    s->nind = 0;
    if (push_indent(s, 0) != 0) return s->failed = 1, -1;
    int line_start = 1, any = 0;
    uint64_t pending = 0;
    emit_fixed(s, T_FILE);
    while (p < end) {
        uint8_t c = *p;
        const uint8_t *q;
        uint32_t tid; /* the token's id (NOID: its text p..q, an operator run with no id) */
        /* Fast paths for the commonest starts: blanks, ASCII identifiers, brackets, operators.
         * For each, none of the alternatives tried before it below can match at p (the guards
         * say why where one could), so the outcome is the ordered rule's. */
        if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
            for (p++; p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v');)
                p++;
            continue;
        }
        if ((uint8_t)((c | 0x20) - 'a') < 26 || c == '_') {
            if (!(is_pfx(c) && p + 1 < end && p[1] == '"') && /* r"..", f"..": a string */
                !((c == 'i' || c == 'f') && std_import(p, end))) {
                q = word_end(&u, p + 1, end);
                int kw = keyword(s, p, (size_t)(q - p));
                tid = kw < 0 ? T_ID : T_KW0 + (uint32_t)kw;
                goto token;
            }
        } else if (is_punct(c)) {
            q = p + 1;
            tid = op_id(s, p, 1);
            goto token;
        } else if (is_op(c) && !(c == '/' && p + 1 < end && p[1] == '/')) { /* "//": a comment */
            for (q = p + 1; q < end && is_op(*q);) q++;
            tid = op_id(s, p, (size_t)(q - p));
            goto token;
        }
        /* newlines, with the indentation after the last one */
        if (c == '\n' || (c == '\r' && p + 1 < end && p[1] == '\n')) {
            q = p;
            uint64_t col = 0;
            for (;;) {
                if (q < end && *q == '\n') q++;
                else if (q + 1 < end && q[0] == '\r' && q[1] == '\n') q += 2;
                else break;
                col = 0;
                /* Indentation is mostly spaces: 8 at a time, then byte by byte. */
                while (end - q >= 8 && memcmp(q, "        ", 8) == 0) {
                    q += 8;
                    col += 8;
                }
                while (q < end && (*q == ' ' || *q == '\t' || *q == '\f'))
                    col = *q++ == '\t' ? col + 8 - col % 8 : col + 1;
            }
            pending = col;
            if (!line_start && any) emit_fixed(s, T_NL);
            line_start = 1;
            p = q;
            continue;
        }
        if ((c == 'i' || c == 'f') && std_import(p, end)) {
            p = line_end(p, end);
            continue;
        }
        if (c == '#' || (c == '/' && p + 1 < end && p[1] == '/')) {
            p = line_end(p, end);
            continue;
        }
        q = NULL;
        tid = NOID;
        {
            const uint8_t *b = p + (is_pfx(c) ? 1 : 0);
            if (starts(b, end, "\"\"\"")) {
                q = find3(b + 3, end);
                tid = T_STR;
            } else if (b < end && *b == '"') {
                q = string_end(b + 1, end, '"', 1);
                tid = T_STR;
            }
        }
        if (!q && c == '\'' && p + 1 < end) {
            const uint8_t *r = p + 1;
            uint32_t cp;
            if (*r == '\\') {
                r = r + 1 < end ? r + 1 + u8_next(r + 1, end, &cp) : NULL;
            } else if (*r != '\'' && *r != '\n') {
                r += u8_next(r, end, &cp);
            } else {
                r = NULL;
            }
            if (r && r < end && *r == '\'') {
                q = r + 1;
                tid = T_CHR;
            }
        }
        unsigned cl = 0;
        size_t cn = 1;
        if (!q) {
            cl = cls_at(&u, p, end, &cn);
            if (cl & CB_UC_DIGIT) {
                q = p + number(&u, p, end);
                tid = T_NUM;
            }
        }
        if (!q && c == '`') {
            const uint8_t *r = p + 1;
            while (r < end && *r != '`' && *r != '\n') r++;
            if (r < end && *r == '`') {
                q = r + 1;
                tid = T_ID;
            }
        }
        if (!q && (cl & CB_UC_WORD)) { /* (a digit was taken as a number above) */
            q = word_end(&u, p + cn, end);
            int kw = keyword(s, p, (size_t)(q - p));
            tid = kw < 0 ? T_ID : T_KW0 + (uint32_t)kw;
        }
        if (!q && is_op(c)) {
            q = p + 1;
            while (q < end && is_op(*q)) q++;
            tid = op_id(s, p, (size_t)(q - p));
        }
        if (!q && is_punct(c)) {
            q = p + 1;
            tid = op_id(s, p, 1);
        }
        if (!q) { /* blanks and anything else: skipped */
            if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
                while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v'))
                    p++;
            } else {
                p += cn;
            }
            continue;
        }
    token:
        if (line_start) {
            /* The indentation of a line's first token opens or closes blocks. */
            if (pending > s->indents[s->nind - 1]) {
                if (push_indent(s, pending) != 0) return s->failed = 1, -1;
                emit_fixed(s, T_INDENT);
            } else {
                while (pending < s->indents[s->nind - 1]) {
                    s->nind--;
                    emit_fixed(s, T_DEDENT);
                }
            }
            line_start = 0;
        }
        emit(s, tid, p, (size_t)(q - p));
        any = 1;
        p = q;
    }
    return s->failed ? -1 : 0;
}

uint64_t cb_ctok_ntokens(const cb_ctok *s) { return s->ntok; }

uint64_t cb_ctok_result(const cb_ctok *s, uint64_t *nfeatures) {
    uint64_t n = s->ntok;
    if (n < 2) {
        *nfeatures = 0;
        return 0;
    }
    *nfeatures = 3 * n - 3;
    /* a copy of the sums with the pending hashes and the counts added: the stream stays usable */
    cb_simsum *tmp = (cb_simsum *)malloc(cb_simsum_size());
    if (!tmp) {
        *nfeatures = 0;
        return 0;
    }
    memcpy(tmp, s->sum, cb_simsum_size());
    cb_simsum_add(tmp, s->hashes, s->nh);
    fold_counts(s, tmp, 1);
    uint64_t fp = cb_simsum_result(tmp);
    free(tmp);
    return fp;
}

/* ---- logical lines -------------------------------------------------------------------------- */

/* Bytes of an "other" run of the API lexer: all but " ' # ( ) [ ] { } newline and backtick. A
 * load per byte: these runs are most of a source's bytes. */
static const uint8_t API_OTHER[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
static inline int api_other(uint8_t c) { return API_OTHER[c]; }

/* End of the "other" run from q: 16 bytes a step with SSE2 (part of every x86-64, so no
 * runtime dispatch is needed), the table for the rest. */
static inline const uint8_t *other_end(const uint8_t *q, const uint8_t *end) {
#if defined(__SSE2__)
    while (end - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i m = _mm_or_si128(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\''))),
                         _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('#')),
                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')))),
            _mm_or_si128(
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('(')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8(')'))),
                             _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('[')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8(']')))),
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('{')),
                                          _mm_cmpeq_epi8(v, _mm_set1_epi8('}'))),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('`')))));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask) return q + __builtin_ctz(mask);
        q += 16;
    }
#endif
    while (q < end && api_other(*q)) q++;
    return q;
}

/* Strip Unicode whitespace from both ends of out[a..b); the stripped bounds in *a, *b. */
static void strip_ws(const uclass *u, const uint8_t *out, size_t *a, size_t *b) {
    size_t s = *a, e = *b, n;
    while (s < e && (cls_at(u, out + s, out + e, &n) & CB_UC_SPACE)) s += n;
    while (e > s) {
        size_t k = e - 1;
        while (k > s && (out[k] & 0xC0) == 0x80) k--;
        if (!(cls_at(u, out + k, out + e, &n) & CB_UC_SPACE) || k + n != e) break;
        e = k;
    }
    *a = s;
    *b = e;
}

size_t cb_api_lines(const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls,
                    uint8_t *out, size_t out_cap, uint32_t *indent, uint64_t *start,
                    uint64_t *end_, size_t cap) {
    uclass u = {ucls, nucls};
    const uint8_t *p = text, *end = text + len;
    size_t w = 0, line0 = 0, nlines = 0, depth = 0;
    int at_start = 1;
    uint32_t ind = 0;
    if (out_cap < 2 * len + 1) return (size_t)-1;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        size_t a_ = line0, b_ = w;                                                                 \
        strip_ws(&u, out, &a_, &b_);                                                               \
        if (b_ > a_) {                                                                             \
            if (nlines == cap) return (size_t)-1;                                                  \
            indent[nlines] = ind;                                                                  \
            start[nlines] = a_;                                                                    \
            end_[nlines] = b_;                                                                     \
            nlines++;                                                                              \
        }                                                                                          \
        line0 = w;                                                                                 \
    } while (0)
    while (p < end) {
        uint8_t c = *p;
        const uint8_t *q;
        if (c == '\n') {
            p++;
            if (depth > 0) {
                out[w++] = ' ';
                continue;
            }
            FLUSH();
            at_start = 1;
            ind = 0;
            continue;
        }
        if (c == '#') {
            p = line_end(p, end);
            continue;
        }
        int is_str3 = 0;
        if (c == '"' && starts(p, end, "\"\"\"")) {
            q = find3(p + 3, end);
            is_str3 = 1;
        } else if (c == '"' || c == '\'') {
            q = string_end(p + 1, end, c, 0);
        } else if (c == '`') {
            q = p + 1;
            while (q < end && *q != '`' && *q != '\n') q++;
            if (q < end && *q == '`') q++;
        } else if (c == '(' || c == '[' || c == '{' || c == ')' || c == ']' || c == '}') {
            q = p + 1;
        } else {
            q = other_end(p + 1, end);
        }
        if (at_start) {
            if (!(c == '"' || c == '\'' || c == '`' || c == '(' || c == '[' || c == '{' ||
                  c == ')' || c == ']' || c == '}')) {
                /* an "other" run: all blank keeps the line start, else its leading [ \t] */
                const uint8_t *r = p;
                uint32_t cps = 0, tabs = 0;
                size_t n;
                int blank = 1;
                while (r < q) {
                    if (!(cls_at(&u, r, q, &n) & CB_UC_SPACE)) {
                        blank = 0;
                        break;
                    }
                    cps++;
                    tabs += *r == '\t';
                    r += n;
                }
                if (blank) {
                    ind = cps + 3 * tabs;
                    p = q;
                    continue;
                }
                r = p;
                ind = 0;
                while (r < q && (*r == ' ' || *r == '\t')) ind += *r++ == '\t' ? 4 : 1;
                p = r;
            }
            at_start = 0;
        }
        if (c == '(' || c == '[' || c == '{') depth++;
        else if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        if (is_str3) {
            for (; p < q; p++) {
                if (*p == '\n') {
                    out[w++] = '\\';
                    out[w++] = 'n';
                } else {
                    out[w++] = *p;
                }
            }
        } else {
            memcpy(out + w, p, (size_t)(q - p));
            w += (size_t)(q - p);
            p = q;
        }
    }
    FLUSH();
#undef FLUSH
    return nlines;
}
