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

#include <stdlib.h>
#include <string.h>

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

#define HBUF 1024

struct cb_ctok {
    cb_simsum *sum;
    uint64_t hashes[HBUF];
    size_t nh;
    uint64_t ntok;
    bytebuf prev1, prev2; /* the last two tokens of the stream */
    bytebuf gram;         /* scratch for "a b" and "a b c" */
    /* per file */
    uint64_t *indents;
    size_t nind, capind;
    int failed;
};

cb_ctok *cb_ctok_new(void) {
    cb_ctok *s = (cb_ctok *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->sum = (cb_simsum *)malloc(cb_simsum_size());
    if (!s->sum) {
        free(s);
        return NULL;
    }
    cb_simsum_init(s->sum);
    return s;
}

void cb_ctok_free(cb_ctok *s) {
    if (!s) return;
    free(s->sum);
    free(s->prev1.p);
    free(s->prev2.p);
    free(s->gram.p);
    free(s->indents);
    free(s);
}

static void add_hash(cb_ctok *s, uint64_t h) {
    s->hashes[s->nh++] = h;
    if (s->nh == HBUF) {
        cb_simsum_add(s->sum, s->hashes, s->nh);
        s->nh = 0;
    }
}

/* One token of the stream: its unigram, and the bigram and trigram it ends. */
static void emit(cb_ctok *s, const char *tok, size_t n) {
    if (s->failed) return;
    const uint8_t *t = (const uint8_t *)tok;
    add_hash(s, cb_xxh64(t, n));
    if (s->ntok >= 1) {
        size_t need = s->prev2.len + s->prev1.len + n + 2;
        if (bb_reserve(&s->gram, need) != 0) {
            s->failed = 1;
            return;
        }
        uint8_t *g = s->gram.p;
        size_t k = 0;
        if (s->ntok >= 2) {
            memcpy(g, s->prev2.p, s->prev2.len);
            k = s->prev2.len;
            g[k++] = ' ';
        }
        size_t bi = k;
        memcpy(g + k, s->prev1.p, s->prev1.len);
        k += s->prev1.len;
        g[k++] = ' ';
        memcpy(g + k, t, n);
        k += n;
        add_hash(s, cb_xxh64(g + bi, k - bi));
        if (s->ntok >= 2) add_hash(s, cb_xxh64(g, k));
    }
    /* prev2 <- prev1 <- tok (swap buffers, then copy into the old prev2's storage) */
    bytebuf tmp = s->prev2;
    s->prev2 = s->prev1;
    s->prev1 = tmp;
    if (bb_set(&s->prev1, t, n) != 0) s->failed = 1;
    s->ntok++;
}

/* A string literal's token: its length is known here (strlen per token was 12% of a feed). */
#define emit_lit(s, lit) emit((s), (lit), sizeof(lit) - 1)

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

/* The keyword spelled p[0..n), or NULL. Lengths are stored and the first byte is compared
 * before memcmp: this runs for every identifier of the package. */
static const char *keyword(const uint8_t *p, size_t n) {
    if (n < 2 || n > 8) return NULL;
    for (size_t i = 0; i < sizeof KEYWORDS / sizeof KEYWORDS[0]; i++)
        if (KEYWORDS[i].n == n && (uint8_t)KEYWORDS[i].s[0] == p[0] &&
            memcmp(KEYWORDS[i].s, p, n) == 0)
            return KEYWORDS[i].s;
    return NULL;
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

int cb_ctok_feed(cb_ctok *s, const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls) {
    if (s->failed) return -1;
    uclass u = {ucls, nucls};
    const uint8_t *p = text, *end = text + len;
    s->nind = 0;
    if (push_indent(s, 0) != 0) return s->failed = 1, -1;
    int line_start = 1, any = 0;
    uint64_t pending = 0;
    emit_lit(s, "FILE");
    while (p < end) {
        uint8_t c = *p;
        const uint8_t *q;
        const char *tok = NULL; /* the abstract token, or NULL: the text p..q itself */
        size_t tokn = 0;        /* its length */
        size_t n;
        /* newlines, with the indentation after the last one */
        if (c == '\n' || (c == '\r' && p + 1 < end && p[1] == '\n')) {
            q = p;
            uint64_t col = 0;
            for (;;) {
                if (q < end && *q == '\n') q++;
                else if (q + 1 < end && q[0] == '\r' && q[1] == '\n') q += 2;
                else break;
                col = 0;
                while (q < end && (*q == ' ' || *q == '\t' || *q == '\f'))
                    col = *q++ == '\t' ? col + 8 - col % 8 : col + 1;
            }
            pending = col;
            if (!line_start && any) emit_lit(s, "NL");
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
        {
            const uint8_t *b = p + (is_pfx(c) ? 1 : 0);
            if (starts(b, end, "\"\"\"")) {
                q = find3(b + 3, end);
                tok = "STR";
                tokn = 3;
            } else if (b < end && *b == '"') {
                q = string_end(b + 1, end, '"', 1);
                tok = "STR";
                tokn = 3;
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
                tok = "CHR";
                tokn = 3;
            }
        }
        unsigned cl = 0;
        size_t cn = 1;
        if (!q) {
            cl = cls_at(&u, p, end, &cn);
            if (cl & CB_UC_DIGIT) {
                q = p + number(&u, p, end);
                tok = "NUM";
                tokn = 3;
            }
        }
        if (!q && c == '`') {
            const uint8_t *r = p + 1;
            while (r < end && *r != '`' && *r != '\n') r++;
            if (r < end && *r == '`') {
                q = r + 1;
                tok = "ID";
                tokn = 2;
            }
        }
        if (!q && (cl & CB_UC_WORD)) { /* (a digit was taken as a number above) */
            q = p + cn;
            while (q < end && (cls_at(&u, q, end, &n) & CB_UC_WORD)) q += n;
            tok = keyword(p, (size_t)(q - p));
            tokn = (size_t)(q - p);
            if (!tok) {
                tok = "ID";
                tokn = 2;
            }
        }
        if (!q && is_op(c)) {
            q = p + 1;
            while (q < end && is_op(*q)) q++;
        }
        if (!q && is_punct(c)) q = p + 1;
        if (!q) { /* blanks and anything else: skipped */
            if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
                while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v'))
                    p++;
            } else {
                p += cn;
            }
            continue;
        }
        if (line_start) {
            /* The indentation of a line's first token opens or closes blocks. */
            if (pending > s->indents[s->nind - 1]) {
                if (push_indent(s, pending) != 0) return s->failed = 1, -1;
                emit_lit(s, "INDENT");
            } else {
                while (pending < s->indents[s->nind - 1]) {
                    s->nind--;
                    emit_lit(s, "DEDENT");
                }
            }
            line_start = 0;
        }
        if (tok) emit(s, tok, tokn);
        else emit(s, (const char *)p, (size_t)(q - p));
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
    /* a copy of the sums with the pending hashes added: the stream stays usable */
    cb_simsum *tmp = (cb_simsum *)malloc(cb_simsum_size());
    if (!tmp) {
        *nfeatures = 0;
        return 0;
    }
    memcpy(tmp, s->sum, cb_simsum_size());
    cb_simsum_add(tmp, s->hashes, s->nh);
    uint64_t fp = cb_simsum_result(tmp);
    free(tmp);
    return fp;
}

/* ---- logical lines -------------------------------------------------------------------------- */

static inline int api_other(uint8_t c) {
    return !(c == '"' || c == '\'' || c == '#' || c == '(' || c == ')' || c == '[' || c == ']' ||
             c == '{' || c == '}' || c == '\n' || c == '`');
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
            q = p + 1;
            while (q < end && api_other(*q)) q++;
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
