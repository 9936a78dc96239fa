/* The declarations pass (cb_api_decls) against vectors from pkg/api.py's Python pass
 * (python_extract_module), computed once and pasted here; tests/test_api_decls_c.py compares the
 * two on generated sources. */
#include "cb_chengtok.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t kind;
    const char *name, *sig;
} want;

static void expect(const char *text, const uint32_t *cls, size_t ncls, const want *w, size_t k) {
    size_t len = strlen(text), cap = 4 * len + 64;
    uint8_t *out = malloc(cap);
    uint64_t rec[5 * 16];
    size_t n = cb_api_decls((const uint8_t *)text, len, cls, ncls, out, cap, rec, 16);
    CHECK(n == k);
    for (size_t i = 0; i < n && i < k; i++) {
        const uint64_t *r = rec + 5 * i;
        CHECK(r[0] == w[i].kind);
        CHECK(r[2] == strlen(w[i].name) && memcmp(out + r[1], w[i].name, r[2]) == 0);
        CHECK(r[4] == strlen(w[i].sig) && memcmp(out + r[3], w[i].sig, r[4]) == 0);
    }
    /* Too little room, for the bytes or the records, is refused, not overrun. */
    if (k > 0) {
        CHECK(cb_api_decls((const uint8_t *)text, len, cls, ncls, out, 1, rec, 16) == CB_API_SMALL);
        CHECK(cb_api_decls((const uint8_t *)text, len, cls, ncls, out, cap, rec, k - 1) ==
              CB_API_SMALL);
    }
    free(out);
}

int main(void) {
    static const want a[] = {{0, "Add", "(a: int32, b: int32): int32"},
                             {4, "P", "= object {x, y: float}"},
                             {5, "Limit", ": int = 10"},
                             {0, "Run", "[T](x: T) where T: Copy"},
                             {3, "Op", "(a)"}};
    expect("import std/os\nfn Add( a : int32 ; b:int32 ) : int32 = a + b\nfn add() = 1\n"
           "type\n  P = object\n    x , y:float\n  q = 1\nconst\n  Limit: int = 10 # c\n"
           "async fn Run[T](x: T) where T: Copy =\n  1\n@x(1) macro `Op`(a) = a\n",
           NULL, 0, a, 5);
    /* The regular expressions' backtracking, kept: "a : =b" and "x::y". */
    static const want b[] = {{4, "T", "a:= b"}, {5, "C", "x: :y"}, {0, "Eq", "(a: int): bool"}};
    expect("type T a : =b\nconst C x::y\nfn Eq(a: int): bool = a == 1 and b => c\n", NULL, 0, b, 3);
    /* U+3000 is a blank only when the caller's classes say so: then "fn\u3000" is a keyword. */
    static const char U[] = "fn\xe3\x80\x80" "F(a:\xe3\x80\x80int) = 1\n";
    static const uint32_t cls[] = {(0x3000u << 3) | CB_UC_SPACE};
    static const want u[] = {{0, "F", "(a: int)"}};
    expect(U, cls, 1, u, 1);
    expect(U, NULL, 0, NULL, 0);
    expect("", NULL, 0, NULL, 0);
    if (cb_failures == 0) printf("test_chengapi: ok\n");
    return cb_failures != 0;
}
