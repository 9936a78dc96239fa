/* The Cheng source scanner against vectors from the Python reference rules (pkg/originality.py's
 * reference_fingerprint, pkg/api.py's reference_lines), computed once and pasted here; the
 * Python property tests (tests/test_cheng_scan.py) compare the two on generated text. */
#include "cb_chengtok.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static const char A[] = "import std/os\n# c\nfn Add(a: int32, b: int32): int32 =\n"
                        "    let s = \"x\\\"y\" # t\n    return a + b  // sum\n\ntype\n  P = object\n"
                        "\tx: float\n";
static const char B[] = "const N = 0x1F'u8 + 1.5e-3\nfn `+`(a, b: P): P = P(x:\n  a.x)\n"
                        "x = \"\"\"doc\nmore\"\"\" & 'c'\n";

static void test_fingerprint(void) {
    cb_ctok *s = cb_ctok_new();
    CHECK(s != NULL);
    uint64_t n = 99;
    CHECK(cb_ctok_result(s, &n) == 0 && n == 0); /* no tokens: no fingerprint */
    CHECK(cb_ctok_feed(s, (const uint8_t *)A, strlen(A), NULL, 0) == 0);
    CHECK(cb_ctok_feed(s, (const uint8_t *)B, strlen(B), NULL, 0) == 0);
    CHECK(cb_ctok_result(s, &n) == 0x39fb7a18143fe4f2ull);
    CHECK(n == 231 && cb_ctok_ntokens(s) == 78);
    cb_ctok_free(s);
    /* One file that is only a FILE token: fewer than two tokens, no fingerprint. */
    s = cb_ctok_new();
    CHECK(cb_ctok_feed(s, (const uint8_t *)"# only a comment\n", 17, NULL, 0) == 0);
    CHECK(cb_ctok_result(s, &n) == 0 && n == 0);
    cb_ctok_free(s);
}

static void expect_lines(const char *text, const uint32_t *ind, const char *const *want, size_t k) {
    size_t len = strlen(text), cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    uint8_t *out = malloc(2 * len + 1);
    uint32_t *indent = malloc(cap * sizeof *indent);
    uint64_t *st = malloc(cap * sizeof *st), *en = malloc(cap * sizeof *en);
    size_t n = cb_api_lines((const uint8_t *)text, len, NULL, 0, out, 2 * len + 1, indent, st, en, cap);
    CHECK(n == k);
    for (size_t i = 0; i < n && i < k; i++) {
        CHECK(indent[i] == ind[i]);
        CHECK(en[i] - st[i] == strlen(want[i]) && memcmp(out + st[i], want[i], strlen(want[i])) == 0);
    }
    /* Too little room is refused, not overrun. */
    CHECK(cb_api_lines((const uint8_t *)text, len, NULL, 0, out, 2 * len, indent, st, en, cap) ==
          (size_t)-1);
    CHECK(cb_api_lines((const uint8_t *)text, len, NULL, 0, out, 2 * len + 1, indent, st, en, 1) ==
          (size_t)-1);
    free(out);
    free(indent);
    free(st);
    free(en);
}

static void test_lines(void) {
    static const uint32_t ia[] = {0, 0, 4, 4, 0, 2, 4};
    static const char *const la[] = {"import std/os", "fn Add(a: int32, b: int32): int32 =",
                                     "let s = \"x\\\"y\"", "return a + b  // sum", "type",
                                     "P = object", "x: float"};
    expect_lines(A, ia, la, 7);
    static const uint32_t ib[] = {0, 0, 0};
    static const char *const lb[] = {"const N = 0x1F'u8 + 1.5e-3", "fn `+`(a, b: P): P = P(x:   a.x)",
                                     "x = \"\"\"doc\\nmore\"\"\" & 'c'"};
    expect_lines(B, ib, lb, 3);
    /* Non-ASCII blanks strip only when the caller says they are blanks (U+3000 here). */
    static const char U[] = "\xe3\x80\x80" "fn F() = 1\xe3\x80\x80";
    static const uint32_t cls[] = {(0x3000u << 3) | CB_UC_SPACE};
    uint8_t out[64];
    uint32_t indent[2];
    uint64_t st[2], en[2];
    size_t n = cb_api_lines((const uint8_t *)U, strlen(U), cls, 1, out, sizeof out, indent, st, en, 2);
    CHECK(n == 1 && indent[0] == 0 && en[0] - st[0] == 10 && memcmp(out + st[0], "fn F() = 1", 10) == 0);
    n = cb_api_lines((const uint8_t *)U, strlen(U), NULL, 0, out, sizeof out, indent, st, en, 2);
    CHECK(n == 1 && en[0] - st[0] == strlen(U));
}

/* Both scanners over a package in one call: the same stream and the same records as one call
 * per file. */
static void test_scan_package(void) {
    const uint8_t *texts[3] = {(const uint8_t *)A, (const uint8_t *)B, (const uint8_t *)A};
    size_t lens[3] = {strlen(A), strlen(B), strlen(A)};
    const uint32_t *ucls[3] = {NULL, NULL, NULL};
    size_t nucls[3] = {0, 0, 0};
    uint8_t what[3] = {CB_SCAN_FINGERPRINT | CB_SCAN_API, CB_SCAN_FINGERPRINT | CB_SCAN_API, CB_SCAN_API};
    cb_ctok *s = cb_ctok_new();
    cb_apiout *o = cb_apiout_new();
    CHECK(s != NULL && o != NULL);
    CHECK(cb_scan_package(s, 3, texts, lens, ucls, nucls, what, o) == 0);
    uint64_t n = 0;
    CHECK(cb_ctok_result(s, &n) == 0x39fb7a18143fe4f2ull && n == 231); /* A then B, as above */
    const uint64_t *count, *rec;
    const uint8_t *bytes;
    CHECK(cb_apiout_files(o, &count) == 3);
    size_t nrec = cb_apiout_records(o, &rec), nbytes = cb_apiout_bytes(o, &bytes);
    CHECK(nrec == count[0] + count[1] + count[2] && count[0] == count[2] && count[0] > 0);
    /* File 0 alone, through cb_api_decls: the same records and text (offsets from 0). */
    uint8_t out[1024];
    uint64_t one[5 * 16];
    size_t k = cb_api_decls(texts[0], lens[0], NULL, 0, out, sizeof out, one, 16);
    CHECK(k == count[0]);
    for (size_t i = 0; i < 5 * k; i++) CHECK(rec[i] == one[i]);
    /* File 2 repeats file 0: its records point at a second copy of the same text. */
    size_t base = (size_t)rec[5 * (count[0] + count[1]) + 1];
    CHECK(base + (size_t)(one[3] + one[4]) <= nbytes && memcmp(bytes + base, out, (size_t)(one[3] + one[4])) == 0);
    cb_apiout_free(o);
    cb_ctok_free(s);
}

int main(void) {
    test_fingerprint();
    test_scan_package();
    test_lines();
    if (cb_failures == 0) printf("test_chengtok: ok\n");
    return cb_failures != 0;
}
