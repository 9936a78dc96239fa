/* chengapi.c: the declarations pass of the API table (cb_chengtok.h; cheng_build/pkg/api.py).
 *
 * cb_api_decls runs cb_api_lines, then the rules of api.py's _decls/_entry/_body_eq/_normalise
 * over the logical lines: every exported top-level declaration as (kind, name, signature).
 * api.py stays the reference and the tests' oracle; each helper below names the Python rule (a
 * regular expression) it is a hand-written form of, including that expression's backtracking.
 * Positions are bytes; only ASCII bytes are ever compared, and whitespace is classed by the
 * caller's ucls table for non-ASCII code points (Python's str.isspace / \s / \w).
 */
#include "cb_chengtok.h"
#include "cb_uclass.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
    const uint32_t *ucls;
    size_t n;
} ucl;

static unsigned ucl_class(const ucl *u, const uint8_t *p, const uint8_t *end, size_t *len) {
    uint8_t c = p[0];
    size_t n = 1;
    uint32_t v = c;
    if (c < 0x80) {
        unsigned r = 0;
        *len = 1;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9'))
            r |= CB_UC_WORD;
        if ((c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20)) r |= CB_UC_SPACE;
        return r;
    }
    if (c >= 0xF0) n = 4, v = c & 0x07;
    else if (c >= 0xE0) n = 3, v = c & 0x0F;
    else if (c >= 0xC0) n = 2, v = c & 0x1F;
    if (n == 1 || (size_t)(end - p) < n) {
        *len = 1;
        v = c;
    } else {
        for (size_t i = 1; i < n; i++) v = (v << 6) | (p[i] & 0x3F);
        *len = n;
    }
    return cb_uclass_find(u->ucls, u->n, v);
}

/* Skip Unicode whitespace (regex \s*) from s[i], before e. */
static size_t skip_ws(const ucl *u, const uint8_t *s, size_t i, size_t e) {
    size_t n;
    while (i < e && (ucl_class(u, s + i, s + e, &n) & CB_UC_SPACE)) i += n;
    return i;
}

static int in_set(uint8_t c, const char *set) {
    for (; *set; set++)
        if ((uint8_t)*set == c) return 1;
    return 0;
}

static int is_ident0(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_ident1(uint8_t c) { return is_ident0(c) || (c >= '0' && c <= '9'); }

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

/* Room for n more bytes after b->n. */
static int buf_reserve(buf *b, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    return 0;
}

static int buf_put(buf *b, const uint8_t *s, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

#define PUT(b, s, n)                                                                               \
    do {                                                                                           \
        if (buf_put((b), (const uint8_t *)(s), (n))) return -1;                                    \
    } while (0)

static size_t spaces(const uint8_t *s, size_t i, size_t n) {
    while (i < n && s[i] == ' ') i++;
    return i;
}

/* The passes of _normalise after the first: s[0..n) holds only ' ' as whitespace. */
enum { P_SEMI, P_COMMA, P_COLON, P_OPEN, P_CLOSE, P_EQ, P_OPEQ };

/* Room for one pass's output, reserved up front: a pass at most triples its input ("=" ->
 * " = "), so the loop writes without checks. */
#define EMIT(src, len)                                                                             \
    do {                                                                                           \
        memcpy(o + w, (src), (len));                                                               \
        w += (len);                                                                                \
    } while (0)

static int pass(int which, const uint8_t *s, size_t n, buf *d) {
    size_t i = 0, w = 0;
    d->n = 0;
    if (buf_reserve(d, 3 * n + 3)) return -1;
    uint8_t *o = d->p;
    while (i < n) {
        size_t k = spaces(s, i, n), m;
        switch (which) {
        case P_SEMI: /* \s*;\s* -> ", " */
        case P_COMMA: /* \s*,\s* -> ", " */
            if (k < n && s[k] == (which == P_SEMI ? ';' : ',')) {
                EMIT(", ", 2);
                i = spaces(s, k + 1, n);
                continue;
            }
            break;
        case P_COLON: /* \s*(?<![:=<>!])\s*:\s*(?!=) -> ": " */
            if (k < n && s[k] == ':' && (k > i || i == 0 || !in_set(s[i - 1], ":=<>!"))) {
                m = spaces(s, k + 1, n);
                if (m < n && s[m] == '=') {
                    if (m == k + 1) break;
                    m--;
                }
                EMIT(": ", 2);
                i = m;
                continue;
            }
            break;
        case P_OPEN: /* ([(\[{])\s+ -> \1 */
            if (in_set(s[i], "([{") && i + 1 < n && s[i + 1] == ' ') {
                EMIT(s + i, 1);
                i = spaces(s, i + 1, n);
                continue;
            }
            break;
        case P_CLOSE: /* \s+([)\]}]) -> \1 */
            if (k > i && k < n && in_set(s[k], ")]}")) {
                EMIT(s + k, 1);
                i = k + 1;
                continue;
            }
            break;
        case P_EQ: /* \s*=\s*(?![=>]) -> " = " */
            if (k < n && s[k] == '=') {
                m = spaces(s, k + 1, n);
                if (m < n && (s[m] == '=' || s[m] == '>')) {
                    if (m == k + 1) break;
                    m--;
                }
                EMIT(" = ", 3);
                i = m;
                continue;
            }
            break;
        default: /* P_OPEQ: ([<>!=:]) = -> \1= */
            if (in_set(s[i], "<>!=:") && i + 3 < n && s[i + 1] == ' ' && s[i + 2] == '=' &&
                s[i + 3] == ' ') {
                EMIT(s + i, 1);
                EMIT("= ", 2);
                i += 4;
                continue;
            }
            break;
        }
        o[w++] = s[i++];
    }
    d->n = w;
    return 0;
}
#undef EMIT

/* _normalise(s[0..n)) appended to out; t1, t2 are scratch. */
static int normalise(const ucl *u, const uint8_t *s, size_t n, buf *out, buf *t1, buf *t2) {
    size_t i = 0, len, w = 0;
    int pending = 0;
    t1->n = 0;
    if (buf_reserve(t1, n)) return -1; /* the result is never longer than s */
    uint8_t *o = t1->p;
    while (i < n) { /* " ".join(s.split()); ASCII classed inline, as ucl_class does */
        uint8_t c = s[i];
        int blank;
        if (c < 0x80) {
            len = 1;
            blank = (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);
        } else {
            blank = (ucl_class(u, s + i, s + n, &len) & CB_UC_SPACE) != 0;
        }
        if (blank) {
            pending = w > 0;
        } else {
            if (pending) o[w++] = ' ';
            pending = 0;
            for (size_t k = 0; k < len; k++) o[w++] = s[i + k];
        }
        i += len;
    }
    t1->n = w;
    /* A pass runs only when its character occurs (as in Python); the passes before add none
     * but SEMI's ','. */
    unsigned has = 0;
    for (size_t k = 0; k < t1->n; k++) {
        uint8_t ch = t1->p[k];
        if (ch == ';') has |= 1u << P_SEMI | 1u << P_COMMA;
        else if (ch == ',') has |= 1u << P_COMMA;
        else if (ch == ':') has |= 1u << P_COLON;
        else if (ch == '(' || ch == '[' || ch == '{') has |= 1u << P_OPEN;
        else if (ch == ')' || ch == ']' || ch == '}') has |= 1u << P_CLOSE;
        else if (ch == '=') has |= 1u << P_EQ | 1u << P_OPEQ;
    }
    buf *a = t1, *b = t2, *t;
    for (int w = P_SEMI; w <= P_OPEQ; w++) {
        if (!(has >> w & 1u)) continue;
        if (pass(w, a->p, a->n, b)) return -1;
        t = a, a = b, b = t;
    }
    size_t s0 = 0, e = a->n;
    while (s0 < e && a->p[s0] == ' ') s0++;
    while (e > s0 && a->p[e - 1] == ' ') e--;
    PUT(out, a->p + s0, e - s0);
    return 0;
}

/* _body_eq: index of the '=' ending a declaration head at bracket depth 0, or n. */
static size_t body_eq(const uint8_t *s, size_t n) {
    long depth = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == '"' || c == '\'') {
            if (c == '"' && i + 2 < n && s[i + 1] == '"' && s[i + 2] == '"') {
                size_t j = i + 3;
                while (j + 2 < n && !(s[j] == '"' && s[j + 1] == '"' && s[j + 2] == '"')) j++;
                i = j + 2 < n ? j + 3 : n;
                continue;
            }
            size_t q = i + 1;
            while (q < n) {
                if (s[q] == '\\' && q + 1 < n && s[q + 1] != '\n') q += 2;
                else if (s[q] != c && s[q] != '\\' && s[q] != '\n') q++;
                else break;
            }
            if (q < n && s[q] == c) q++;
            i = q;
            continue;
        }
        if (c == '`') {
            size_t j = i + 1;
            while (j < n && s[j] != '`') j++;
            i = j < n ? j + 1 : n;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') depth++;
        else if (c == ')' || c == ']' || c == '}') depth--;
        else if (c == '=' && depth == 0) {
            int bad_prev = i > 0 && in_set(s[i - 1], "=<>!:");
            int bad_next = i + 1 < n && (s[i + 1] == '=' || s[i + 1] == '>');
            if (!bad_prev && !bad_next) return i;
        }
        i++;
    }
    return n;
}

/* _ANNOTATION stripped repeatedly from the start of s[a..b). */
static size_t skip_annotations(const ucl *u, const uint8_t *s, size_t a, size_t b) {
    while (a < b && s[a] == '@') {
        size_t p = a + 1;
        if (!(p < b && is_ident0(s[p]))) break;
        while (p < b && is_ident1(s[p])) p++;
        if (p < b && s[p] == '(') {
            size_t q = p + 1;
            while (q < b && s[q] != ')') q++;
            if (q < b) p = q + 1;
        }
        a = skip_ws(u, s, p, b);
    }
    return a;
}

static const char *const KIND[] = {"fn", "iterator", "template", "macro", "type", "const"};

static int kw_at(const ucl *u, const uint8_t *s, size_t p, size_t b, size_t *end) {
    for (int k = 0; k < 6; k++) {
        size_t L = strlen(KIND[k]), n;
        if (b - p < L || memcmp(s + p, KIND[k], L) != 0) continue;
        if (p + L < b && (ucl_class(u, s + p + L, s + b, &n) & CB_UC_WORD)) continue;
        *end = skip_ws(u, s, p + L, b);
        return k;
    }
    return -1;
}

/* _DECL.match: the kind index and the end of the match in *end, or -1. */
static int decl_match(const ucl *u, const uint8_t *s, size_t a, size_t b, size_t *end) {
    if (b - a >= 5 && memcmp(s + a, "async", 5) == 0) {
        size_t r = skip_ws(u, s, a + 5, b);
        if (r > a + 5) {
            int k = kw_at(u, s, r, b, end);
            if (k >= 0) return k;
        }
    }
    return kw_at(u, s, a, b, end);
}

typedef struct {
    const ucl *u;
    const uint8_t *s;
    buf out, t1, t2, join;
    uint64_t *rec;
    size_t nrec, rec_cap;
} ctx;

/* _entry: on an exported name, append (kind, name, signature) to the records. body: lines
 * [b0, b1) (their texts are joined per the kind's rule). Returns -1 on allocation failure or
 * when the record array is full (-2). */
static int entry(ctx *c, int kind, size_t a, size_t b, const uint64_t *st, const uint64_t *en,
                 size_t b0, size_t b1) {
    const uint8_t *s = c->s;
    size_t na, nb, ra;
    if (a < b && s[a] == '`') {
        size_t j = a + 1;
        while (j < b && s[j] != '`') j++;
        if (j >= b) return 0;
        na = a + 1, nb = j, ra = j + 1;
    } else {
        if (!(a < b && is_ident0(s[a]))) return 0;
        size_t j = a + 1;
        while (j < b && is_ident1(s[j])) j++;
        na = a, nb = j, ra = j;
    }
    if (!(nb > na && s[na] >= 'A' && s[na] <= 'Z')) return 0;
    if (c->nrec == c->rec_cap) return -2;
    uint64_t *r = c->rec + 5 * c->nrec;
    r[0] = (uint64_t)kind;
    r[1] = c->out.n;
    r[2] = nb - na;
    PUT(&c->out, s + na, nb - na);
    r[3] = c->out.n;
    if (kind <= 3) {
        size_t eq = body_eq(s + ra, b - ra);
        if (normalise(c->u, s + ra, eq, &c->out, &c->t1, &c->t2)) return -1;
    } else if (kind == 4) {
        if (normalise(c->u, s + ra, b - ra, &c->out, &c->t1, &c->t2)) return -1;
        if (b1 > b0) {
            PUT(&c->out, " {", 2);
            for (size_t k = b0; k < b1; k++) {
                if (k > b0) PUT(&c->out, "; ", 2);
                if (normalise(c->u, s + st[k], en[k] - st[k], &c->out, &c->t1, &c->t2)) return -1;
            }
            PUT(&c->out, "}", 1);
        }
    } else {
        c->join.n = 0;
        PUT(&c->join, s + ra, b - ra);
        for (size_t k = b0; k < b1; k++) {
            PUT(&c->join, " ", 1);
            PUT(&c->join, s + st[k], en[k] - st[k]);
        }
        if (normalise(c->u, c->join.p, c->join.n, &c->out, &c->t1, &c->t2)) return -1;
    }
    r[4] = c->out.n - r[3];
    c->nrec++;
    return 0;
}

static size_t next_top(const uint32_t *ind, size_t i, size_t n) {
    while (i < n && ind[i] != 0) i++;
    return i;
}

/* _decls over the logical lines. */
static int decls(ctx *c, const uint32_t *ind, const uint64_t *st, const uint64_t *en, size_t n) {
    const ucl *u = c->u;
    const uint8_t *s = c->s;
    size_t i = 0, end;
    int rc;
    while (i < n) {
        i = next_top(ind, i, n);
        if (i >= n) break;
        size_t a = st[i], b = en[i];
        i++;
        a = skip_annotations(u, s, a, b);
        int kind = decl_match(u, s, a, b, &end);
        if (kind < 0) continue;
        size_t body0 = i;
        i = next_top(ind, i, n);
        if (end < b) {
            size_t b1 = kind == 0 ? body0 : i;
            if ((rc = entry(c, kind, end, b, st, en, body0, b1)) != 0) return rc;
            continue;
        }
        if (body0 == i) continue;
        uint32_t ei = ind[body0];
        size_t j = body0;
        while (j < i) {
            size_t head = j++;
            size_t c0 = j;
            while (j < i && ind[j] > ei) j++;
            if (ind[head] != ei) continue;
            size_t ea = skip_annotations(u, s, st[head], en[head]), eb = en[head];
            if (kind == 0) { /* re.sub(r"^(?:async\s+)?(?:fn\s+)?", "", etext) */
                size_t r;
                if (eb - ea >= 5 && memcmp(s + ea, "async", 5) == 0 &&
                    (r = skip_ws(u, s, ea + 5, eb)) > ea + 5)
                    ea = r;
                if (eb - ea >= 2 && memcmp(s + ea, "fn", 2) == 0 &&
                    (r = skip_ws(u, s, ea + 2, eb)) > ea + 2)
                    ea = r;
            }
            size_t b1 = (kind == 4 || kind == 5) ? j : c0;
            if ((rc = entry(c, kind, ea, eb, st, en, c0, b1)) != 0) return rc;
        }
    }
    return 0;
}

/* Newlines in text: 16 bytes a step with SSE2 (part of every x86-64: no dispatch needed). A
 * memchr per line cost more than the bytes (lines are short). Matches are counted in byte lanes
 * (a compare gives -1 per match) and summed every 255 steps, before a lane can overflow: no
 * popcount, which without -mpopcnt is a libgcc call per step. */
static size_t count_newlines(const uint8_t *text, size_t len) {
    size_t n = 0, i = 0;
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    while (i + 16 <= len) {
        __m128i acc = zero;
        for (int k = 0; k < 255 && i + 16 <= len; k++, i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(text + i));
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(v, nl));
        }
        __m128i sums = _mm_sad_epu8(acc, zero); /* two 64-bit lanes: the byte sums of each half */
        n += (size_t)_mm_cvtsi128_si32(sums) + (size_t)_mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
#endif
    for (; i < len; i++) n += text[i] == '\n';
    return n;
}

size_t cb_api_decls(const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls,
                    uint8_t *out, size_t out_cap, uint64_t *rec, size_t rec_cap) {
    size_t cap = 1 + count_newlines(text, len), nl;
    ucl u = {ucls, nucls};
    uint8_t *lines = malloc(2 * len + 1);
    uint32_t *ind = malloc(cap * sizeof *ind);
    uint64_t *st = malloc(cap * sizeof *st), *en = malloc(cap * sizeof *en);
    ctx c = {&u, lines, {0}, {0}, {0}, {0}, rec, 0, rec_cap};
    size_t ret = CB_API_NOMEM;
    if (lines && ind && st && en) {
        nl = cb_api_lines(text, len, ucls, nucls, lines, 2 * len + 1, ind, st, en, cap);
        int rc = nl == (size_t)-1 ? -1 : decls(&c, ind, st, en, nl);
        if (rc == 0 && c.out.n > out_cap) rc = -2;
        if (rc == 0) {
            if (c.out.n) memcpy(out, c.out.p, c.out.n);
            ret = c.nrec;
        } else if (rc == -2) {
            ret = CB_API_SMALL;
        }
    }
    free(lines), free(ind), free(st), free(en);
    free(c.out.p), free(c.t1.p), free(c.t2.p), free(c.join.p);
    return ret;
}
