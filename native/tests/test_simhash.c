/* SimHash64 vectors (from tests/helpers_native.py's reference) and batch/joined agreement. */
#include "check.h"
#include "cheng_native.h"

#include <stddef.h>
#include <string.h>

/* A stand-in for Python's lists and strings, to drive cb_simhash64_pylists without Python. */
typedef struct fake {
    int is_list;
    intptr_t n;
    const struct fake *const *items; /* a list's items */
    const char *str;                 /* a string's bytes (n of them) */
} fake;
static intptr_t fake_size(void *o) {
    const fake *f = (const fake *)o;
    return f->is_list ? f->n : -1;
}
static void *fake_item(void *o, intptr_t i) {
    const fake *f = (const fake *)o;
    return f->is_list && i >= 0 && i < f->n ? (void *)f->items[i] : NULL;
}
static const char *fake_utf8(void *o, intptr_t *size) {
    const fake *f = (const fake *)o;
    if (f->is_list) return NULL;
    *size = f->n;
    return f->str;
}

static void test_pylists(void) {
    /* The vectors above, plus a 9-token document of short and long tokens (the 8-token batch
     * and the tail), checked against cb_simhash64_from_hashes. */
    static const char *words[] = {"a", "b", "c", "cheng", "build", "simhash", "cheng"};
    static const char *nine[] = {"x", "0123456789abcde", "0123456789abcdef", "", "12345678",
                                 "1234567", "a longer token than sixteen bytes", "q", "zz"};
    fake w[7], n9[9];
    const fake *pw[7], *p9[9];
    for (int i = 0; i < 7; i++) {
        w[i] = (fake){0, (intptr_t)strlen(words[i]), NULL, words[i]};
        pw[i] = &w[i];
    }
    uint64_t hs[9];
    for (int i = 0; i < 9; i++) {
        n9[i] = (fake){0, (intptr_t)strlen(nine[i]), NULL, nine[i]};
        p9[i] = &n9[i];
        hs[i] = cb_token_hash(nine[i], strlen(nine[i]));
    }
    fake d0 = {1, 3, pw, NULL}, d1 = {1, 0, NULL, NULL}, d2 = {1, 4, pw + 3, NULL}, d3 = {1, 9, p9, NULL};
    const fake *pd[4] = {&d0, &d1, &d2, &d3};
    fake docs = {1, 4, pd, NULL};
    cb_pyapi api = {fake_size, fake_item, fake_utf8, 0, 0, 0, NULL, 0, 0, 0, 0}; /* calls only */
    uint64_t out[4] = {1, 1, 1, 1};
    CHECK(cb_simhash64_pylists(&api, &docs, out) == 0);
    CHECK(out[0] == 0xf24ec0e188865fdbull && out[1] == 0 && out[2] == 0x11c08caac98e208ull);
    CHECK(out[3] == cb_simhash64_from_hashes(hs, 9));
    /* A failed API call (here: a list where a string should be) is reported. */
    const fake *bad_items[2] = {&w[0], &d0};
    fake bad = {1, 2, bad_items, NULL};
    const fake *pb[1] = {&bad};
    fake bad_docs = {1, 1, pb, NULL};
    CHECK(cb_simhash64_pylists(&api, &bad_docs, out) == -1);
}

/* The same vectors read in place (cb_pyapi's layout fields): fake objects laid out at the
 * offsets handed over, one type tag for str; a str without the ASCII bits, and a token of
 * another type, go through the utf8() call, as in the interpreter. */
typedef struct fobj {
    const void *type;
    intptr_t n;            /* a list's size, a string's length */
    struct fobj **items;   /* a list's items */
    uint32_t state;
    char data[40];         /* a string's bytes */
} fobj;
static const int STR_TAG = 1, LIST_TAG = 2, INT_TAG = 3;
static intptr_t fo_size(void *o) {
    const fobj *f = (const fobj *)o;
    return f->type == &LIST_TAG ? f->n : -1;
}
static void *fo_item(void *o, intptr_t i) {
    const fobj *f = (const fobj *)o;
    return f->type == &LIST_TAG && i >= 0 && i < f->n ? f->items[i] : NULL;
}
static int fo_utf8_calls;
static const char *fo_utf8(void *o, intptr_t *size) {
    const fobj *f = (const fobj *)o;
    fo_utf8_calls++;
    if (f->type != &STR_TAG) return NULL;
    *size = f->n;
    return f->data;
}
static fobj fo_str(const char *s, uint32_t state) {
    fobj f = {&STR_TAG, (intptr_t)strlen(s), NULL, state, {0}};
    memcpy(f.data, s, strlen(s));
    return f;
}

static void test_pylists_direct(void) {
    static const char *words[] = {"a", "b", "c", "cheng", "build", "simhash", "cheng"};
    static const char *nine[] = {"x", "0123456789abcde", "0123456789abcdef", "", "12345678",
                                 "1234567", "a longer token than sixteen bytes", "q", "zz"};
    fobj w[7], n9[9];
    fobj *pw[7], *p9[9];
    uint64_t hs[9];
    for (int i = 0; i < 7; i++) {
        w[i] = fo_str(words[i], 0x60);
        pw[i] = &w[i];
    }
    for (int i = 0; i < 9; i++) {
        n9[i] = fo_str(nine[i], i == 4 ? 0x20 : 0x60); /* "12345678": not ASCII-flagged */
        p9[i] = &n9[i];
        hs[i] = cb_token_hash(nine[i], strlen(nine[i]));
    }
    fobj d0 = {&LIST_TAG, 3, pw, 0, {0}}, d1 = {&LIST_TAG, 0, NULL, 0, {0}};
    fobj d2 = {&LIST_TAG, 4, pw + 3, 0, {0}}, d3 = {&LIST_TAG, 9, p9, 0, {0}};
    fobj *pd[4] = {&d0, &d1, &d2, &d3};
    fobj docs = {&LIST_TAG, 4, pd, 0, {0}};
    cb_pyapi api = {fo_size, fo_item, fo_utf8, offsetof(fobj, type), offsetof(fobj, n),
                    offsetof(fobj, items), &STR_TAG, offsetof(fobj, n), offsetof(fobj, state),
                    offsetof(fobj, data), 0x60};
    uint64_t out[4] = {1, 1, 1, 1}, via_calls[4] = {2, 2, 2, 2};
    fo_utf8_calls = 0;
    CHECK(cb_simhash64_pylists(&api, &docs, out) == 0);
    CHECK(fo_utf8_calls == 1); /* only the token without the ASCII bits */
    CHECK(out[0] == 0xf24ec0e188865fdbull && out[1] == 0 && out[2] == 0x11c08caac98e208ull);
    CHECK(out[3] == cb_simhash64_from_hashes(hs, 9));
    cb_pyapi calls = {fo_size, fo_item, fo_utf8, 0, 0, 0, NULL, 0, 0, 0, 0};
    CHECK(cb_simhash64_pylists(&calls, &docs, via_calls) == 0);
    CHECK(memcmp(out, via_calls, sizeof out) == 0);
    /* A token that is not a str: the call fails and so does the batch. */
    fobj num = {&INT_TAG, 7, NULL, 0x60, {0}};
    fobj *bad_items[2] = {&w[0], &num};
    fobj bad = {&LIST_TAG, 2, bad_items, 0, {0}};
    fobj *pb[1] = {&bad};
    fobj bad_docs = {&LIST_TAG, 1, pb, 0, {0}};
    CHECK(cb_simhash64_pylists(&api, &bad_docs, out) == -1);
}

int main(void) {
    test_pylists();
    test_pylists_direct();
    CHECK(cb_token_hash("", 0) == 0xEF46DB3751D8E999ull);
    CHECK(cb_token_hash("abc", 3) == 0x44BC2CF5AD770999ull);

    /* ["a","b","c"] and ["cheng","build","simhash","cheng"], joined and per document. */
    const char joined[] = "a\0b\0c\0cheng\0build\0simhash\0cheng";
    size_t len = sizeof joined - 1;
    uint64_t ntok[3] = {3, 0, 4}, out[3] = {1, 1, 1};
    CHECK(cb_simhash64_joined((const uint8_t *)joined, len, 0, ntok, 3, out) == 0);
    CHECK(out[0] == 0xf24ec0e188865fdbull);
    CHECK(out[1] == 0);
    CHECK(out[2] == 0x11c08caac98e208ull);
    uint64_t bad[3] = {3, 0, 3};
    CHECK(cb_simhash64_joined((const uint8_t *)joined, len, 0, bad, 3, out) == -1);
    uint64_t more[3] = {3, 0, 5};
    CHECK(cb_simhash64_joined((const uint8_t *)joined, len, 0, more, 3, out) == -1);

    uint64_t off[3] = {0, 6, 6}, dl[3] = {5, 0, len - 6}, out2[3] = {1, 1, 1};
    CHECK(cb_simhash64_batch((const uint8_t *)joined, off, dl, ntok, 3, 0, NULL, out2) == 0);
    CHECK(out2[0] == 0xf24ec0e188865fdbull && out2[1] == 0 && out2[2] == 0x11c08caac98e208ull);

    /* Explicit lengths: the same tokens without separators. */
    const char packed[] = "abcchengbuildsimhashcheng";
    uint64_t toks[7] = {1, 1, 1, 5, 5, 7, 5};
    uint64_t off3[3] = {0, 3, 3}, dl3[3] = {3, 0, 22}, out3[3];
    CHECK(cb_simhash64_batch((const uint8_t *)packed, off3, dl3, ntok, 3, -1, toks, out3) == 0);
    CHECK(out3[0] == out2[0] && out3[1] == 0 && out3[2] == out2[2]);
    uint64_t dl_bad[3] = {3, 0, 21};
    CHECK(cb_simhash64_batch((const uint8_t *)packed, off3, dl_bad, ntok, 3, -1, toks, out3) == -1);

    uint64_t hs[3] = {cb_token_hash("a", 1), cb_token_hash("b", 1), cb_token_hash("c", 1)};
    CHECK(cb_simhash64_from_hashes(hs, 3) == 0xf24ec0e188865fdbull);

    CHECK(cb_hamming64(0, ~0ull) == 64 && cb_hamming64(5, 6) == 2);
    uint64_t fps[4] = {0, 1, 3, ~0ull}, pairs[9];
    CHECK(cb_pairs_within(fps, 4, 2, pairs, 3) == 3);
    CHECK(pairs[0] == 0 && pairs[1] == 1 && pairs[2] == 1);
    CHECK(pairs[3] == 0 && pairs[4] == 2 && pairs[5] == 2);
    CHECK(pairs[6] == 1 && pairs[7] == 2 && pairs[8] == 1);
    CHECK(cb_pairs_within(fps, 4, 64, pairs, 0) == 6); /* counts beyond the room it was given */

    /* The indexed search equals the brute-force one: 5,000 fingerprints, a few near copies. */
    enum { N = 5000 };
    static uint64_t many[N], pa[3 * 4096], pb[3 * 4096];
    uint64_t s = 99;
    for (size_t i = 0; i < N; i++) {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        many[i] = z ^ (z >> 31);
    }
    for (size_t i = 0; i < 300; i++) many[N - 1 - i] = many[i * 7] ^ (1ull << (i % 64)) ^ (i % 3 ? 0 : 1ull << 40);
    for (unsigned d = 0; d <= 6; d++) {
        size_t a = cb_pairs_within_brute(many, N, d, pa, 4096);
        size_t b = cb_pairs_within_indexed(many, N, d, pb, 4096);
        CHECK(a == b && a <= 4096 && memcmp(pa, pb, a * 3 * sizeof *pa) == 0);
        CHECK(d < 2 || a >= 300);
    }
    if (cb_failures) fprintf(stderr, "test_simhash: %d failure(s)\n", cb_failures);
    return cb_failures != 0;
}
