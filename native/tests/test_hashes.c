/* test_hashes.c - checks every BLAKE3 and SHA-256 backend against the known
 * answers in hash_vectors.json (made by gen_vectors.py from the blake3 PyPI
 * package and hashlib), then checks that streaming updates split at random
 * points equal one-shot hashing, and that all backends agree on random
 * lengths 0..70,000.
 *
 * Usage: test_hashes path/to/hash_vectors.json    (exit 0 = all passed) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blake3_impl.h" /* private: the backend contract, tested directly below */
#include "cpu_features.h"
#include "sha256_impl.h"
#include "cb_blake3.h"
#include "cb_sha256.h"

static int g_failures;
static int g_checks;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        g_checks++;                                        \
        if (!(cond)) {                                     \
            g_failures++;                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
        }                                                  \
    } while (0)

/* ---- a minimal JSON reader for the vectors file ------------------------ */

typedef struct {
    const char *p, *end;
} cursor;

static void die(const char *what) {
    fprintf(stderr, "test_hashes: bad vectors file: %s\n", what);
    exit(2);
}

static void ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static int peek(cursor *c) {
    ws(c);
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

static void expect(cursor *c, char ch) {
    if (peek(c) != ch) die("unexpected character");
    c->p++;
}

/* Strings in our file have no escapes. Returns a malloc'd copy. */
static char *jstring(cursor *c, size_t *len_out) {
    expect(c, '"');
    const char *s = c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\') die("escapes are not expected");
        c->p++;
    }
    if (c->p >= c->end) die("unterminated string");
    size_t n = (size_t)(c->p - s);
    c->p++;
    char *out = malloc(n + 1);
    if (!out) die("out of memory");
    memcpy(out, s, n);
    out[n] = 0;
    if (len_out) *len_out = n;
    return out;
}

static size_t jnumber(cursor *c) {
    ws(c);
    size_t v = 0;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') die("number expected");
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') v = v * 10 + (size_t)(*c->p++ - '0');
    return v;
}

/* ---- test data ---------------------------------------------------------- */

typedef struct {
    size_t input_len;
    char *hash, *keyed_hash, *derive_key, *sha256;
} vcase;

typedef struct {
    char *key, *context;
    vcase cases[128];
    size_t ncases;
    vcase longx[16];
    size_t nlongx;
} vectors;

static void parse_case(cursor *c, vcase *v) {
    memset(v, 0, sizeof *v);
    expect(c, '{');
    while (peek(c) != '}') {
        char *k = jstring(c, NULL);
        expect(c, ':');
        if (strcmp(k, "input_len") == 0) v->input_len = jnumber(c);
        else if (strcmp(k, "hash") == 0) v->hash = jstring(c, NULL);
        else if (strcmp(k, "keyed_hash") == 0) v->keyed_hash = jstring(c, NULL);
        else if (strcmp(k, "derive_key") == 0) v->derive_key = jstring(c, NULL);
        else if (strcmp(k, "sha256") == 0) v->sha256 = jstring(c, NULL);
        else die("unknown case field");
        free(k);
        if (peek(c) == ',') c->p++;
    }
    c->p++;
}

static size_t parse_cases(cursor *c, vcase *out, size_t cap) {
    size_t n = 0;
    expect(c, '[');
    while (peek(c) != ']') {
        if (n == cap) die("too many cases");
        parse_case(c, &out[n++]);
        if (peek(c) == ',') c->p++;
    }
    c->p++;
    return n;
}

static void load_vectors(const char *path, vectors *v) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    if (n == sizeof text) die("file too large");
    cursor c = {text, text + n};
    memset(v, 0, sizeof *v);
    expect(&c, '{');
    while (peek(&c) != '}') {
        char *k = jstring(&c, NULL);
        expect(&c, ':');
        if (strcmp(k, "key") == 0) v->key = jstring(&c, NULL);
        else if (strcmp(k, "context") == 0) v->context = jstring(&c, NULL);
        else if (strcmp(k, "cases") == 0) v->ncases = parse_cases(&c, v->cases, 128);
        else if (strcmp(k, "long_xof") == 0) v->nlongx = parse_cases(&c, v->longx, 16);
        else if (strcmp(k, "_comment") == 0) free(jstring(&c, NULL));
        else die("unknown top-level field");
        free(k);
        if (peek(&c) == ',') c.p++;
    }
    if (!v->key || strlen(v->key) != 32 || !v->context || v->ncases == 0) die("missing fields");
}

static void free_case(vcase *v) {
    free(v->hash);
    free(v->keyed_hash);
    free(v->derive_key);
    free(v->sha256);
}

/* ---- helpers ------------------------------------------------------------ */

static void to_hex(const uint8_t *b, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = 0;
}

/* Does out[0..n) equal the first n bytes of the hex string? */
static int hex_prefix_eq(const uint8_t *out, size_t n, const char *hex) {
    if (strlen(hex) < 2 * n) return 0;
    char *h = malloc(2 * n + 1);
    if (!h) die("out of memory");
    to_hex(out, n, h);
    int eq = memcmp(h, hex, 2 * n) == 0;
    free(h);
    return eq;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64*: deterministic, seeded above */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}

static uint8_t *pattern(size_t n) {
    uint8_t *b = malloc(n ? n : 1);
    if (!b) die("out of memory");
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i % 251);
    return b;
}

typedef enum { MODE_HASH, MODE_KEYED, MODE_DERIVE } b3mode;

static cb_blake3_hasher *new_hasher(b3mode mode, const vectors *v) {
    cb_blake3_hasher *h = malloc(cb_blake3_hasher_size());
    if (!h) die("out of memory");
    if (mode == MODE_HASH) cb_blake3_init(h);
    else if (mode == MODE_KEYED) cb_blake3_init_keyed(h, (const uint8_t *)v->key);
    else cb_blake3_init_derive_key(h, v->context, strlen(v->context));
    return h;
}

/* Feeds data in pieces of random sizes (biased to small and chunk-sized),
 * finalizing now and then on the way: finalize must not change the state. */
static void update_split(cb_blake3_hasher *h, const uint8_t *data, size_t len) {
    size_t off = 0;
    while (off < len) {
        if (rnd() % 8 == 0) {
            uint8_t scratch[40];
            cb_blake3_finalize(h, scratch, sizeof scratch);
        }
        size_t piece;
        switch (rnd() % 4) {
        case 0: piece = rnd() % 65; break;
        case 1: piece = rnd() % 2049; break;
        case 2: piece = 1024 * (rnd() % 9); break;
        default: piece = rnd() % (len - off + 1); break;
        }
        if (piece > len - off) piece = len - off;
        cb_blake3_update(h, data + off, piece);
        off += piece;
    }
}

/* ---- BLAKE3 -------------------------------------------------------------- */

static void test_blake3_backend(const char *backend, const vectors *v) {
    static const size_t out_lens[] = {1, 31, 32, 33, 63, 64, 65, 100, 131};
    for (size_t ci = 0; ci < v->ncases; ci++) {
        const vcase *vc = &v->cases[ci];
        uint8_t *data = pattern(vc->input_len);
        const char *want[3] = {vc->hash, vc->keyed_hash, vc->derive_key};
        for (int m = 0; m < 3; m++) {
            uint8_t out[131];
            cb_blake3_hasher *h = new_hasher((b3mode)m, v);
            cb_blake3_update(h, data, vc->input_len);
            for (size_t k = 0; k < sizeof out_lens / sizeof out_lens[0]; k++) {
                memset(out, 0, sizeof out);
                cb_blake3_finalize(h, out, out_lens[k]);
                CHECK(hex_prefix_eq(out, out_lens[k], want[m]),
                      "blake3[%s] mode %d len %zu out_len %zu", backend, m, vc->input_len,
                      out_lens[k]);
            }
            /* Finalize leaves the hasher usable; streaming equals one-shot. */
            cb_blake3_hasher *s = new_hasher((b3mode)m, v);
            update_split(s, data, vc->input_len);
            cb_blake3_finalize(s, out, sizeof out);
            CHECK(hex_prefix_eq(out, sizeof out, want[m]), "blake3[%s] mode %d len %zu streamed",
                  backend, m, vc->input_len);
            free(s);
            free(h);
        }
        uint8_t d[32];
        cb_blake3(data, vc->input_len, d);
        CHECK(hex_prefix_eq(d, 32, vc->hash), "cb_blake3[%s] len %zu", backend, vc->input_len);
        free(data);
    }
    for (size_t i = 0; i < v->nlongx; i++) {
        const vcase *vc = &v->longx[i];
        size_t out_len = strlen(vc->hash) / 2;
        uint8_t *data = pattern(vc->input_len), *out = malloc(out_len);
        if (!out) die("out of memory");
        cb_blake3_hasher *h = new_hasher(MODE_HASH, v);
        cb_blake3_update(h, data, vc->input_len);
        cb_blake3_finalize(h, out, out_len);
        CHECK(hex_prefix_eq(out, out_len, vc->hash), "blake3[%s] long xof len %zu", backend,
              vc->input_len);
        free(h);
        free(out);
        free(data);
    }
}

/* The backend's hash_many against the portable one, for group sizes the
 * hasher never uses (it only asks for powers of two), both strides, and
 * counters whose low word carries into the high word (4 TiB into an input,
 * beyond any vector). */
static void test_hash_many(const char *backend) {
    enum { MAXN = 41 }; /* two full 16-way groups and every remainder */
    static uint8_t in[MAXN * B3_CHUNK_LEN];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)rnd();
    const cb_b3_backend *be = cb_b3_active();
    static const uint64_t counters[] = {0, 7, 0xFFFFFFFDull, 0x1FFFFFFFFull};
    uint32_t key[8];
    for (int i = 0; i < 8; i++) key[i] = (uint32_t)rnd();
    for (int shape = 0; shape < 2; shape++) {
        size_t stride = shape ? B3_CHUNK_LEN : B3_BLOCK_LEN;
        size_t blocks = shape ? B3_CHUNK_LEN / B3_BLOCK_LEN : 1;
        for (size_t n = 0; n <= MAXN; n++) {
            for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
                int inc = (int)(rnd() & 1);
                uint8_t want[MAXN * 32 + 1], got[MAXN * 32 + 1];
                memset(got, 0xA5, sizeof got);
                cb_b3_hash_many_portable(in, stride, n, blocks, key, counters[c], inc, 0x10,
                                         B3_CHUNK_START, B3_CHUNK_END, want);
                be->hash_many(in, stride, n, blocks, key, counters[c], inc, 0x10, B3_CHUNK_START,
                              B3_CHUNK_END, got);
                CHECK(memcmp(want, got, n * 32) == 0 && got[n * 32] == 0xA5,
                      "hash_many[%s] n %zu stride %zu counter %llu inc %d", backend, n, stride,
                      (unsigned long long)counters[c], inc);
            }
        }
    }
}

/* ---- SHA-256 ------------------------------------------------------------- */

static void test_sha256_backend(const char *backend, const vectors *v) {
    cb_sha256_ctx *ctx = malloc(cb_sha256_ctx_size());
    if (!ctx) die("out of memory");
    for (size_t ci = 0; ci < v->ncases; ci++) {
        const vcase *vc = &v->cases[ci];
        uint8_t *data = pattern(vc->input_len), out[32];
        cb_sha256(data, vc->input_len, out);
        CHECK(hex_prefix_eq(out, 32, vc->sha256), "sha256[%s] len %zu", backend, vc->input_len);
        cb_sha256_init(ctx);
        size_t off = 0;
        while (off < vc->input_len) {
            size_t piece = (rnd() % 2) ? rnd() % 130 : rnd() % (vc->input_len - off + 1);
            if (piece > vc->input_len - off) piece = vc->input_len - off;
            cb_sha256_update(ctx, data + off, piece);
            off += piece;
        }
        cb_sha256_final(ctx, out);
        CHECK(hex_prefix_eq(out, 32, vc->sha256), "sha256[%s] len %zu streamed", backend,
              vc->input_len);
        free(data);
    }
    free(ctx);
}

/* ---- differential: all backends agree on random inputs ------------------- */

static void test_agreement(const char *const *b3_names, size_t nb3, const char *const *sha_names,
                           size_t nsha) {
    enum { MAXLEN = 70000, ROUNDS = 120 };
    uint8_t *data = malloc(MAXLEN);
    if (!data) die("out of memory");
    for (int r = 0; r < ROUNDS; r++) {
        size_t len = (size_t)(rnd() % (MAXLEN + 1));
        if (r % 3 == 0) len = 1024 * (rnd() % 68) + (size_t)(rnd() % 3) - 1; /* near chunk edges */
        if (len > MAXLEN) len = MAXLEN;
        for (size_t i = 0; i < len; i++) data[i] = (uint8_t)rnd();
        uint8_t ref[100], out[100];
        for (size_t b = 0; b < nb3; b++) {
            cb_blake3_force_backend(b3_names[b]);
            cb_blake3_hasher *h = malloc(cb_blake3_hasher_size());
            if (!h) die("out of memory");
            cb_blake3_init(h);
            update_split(h, data, len);
            cb_blake3_finalize(h, b == 0 ? ref : out, 100);
            if (b > 0) CHECK(memcmp(ref, out, 100) == 0, "blake3 %s vs %s len %zu", b3_names[b],
                             b3_names[0], len);
            free(h);
        }
        for (size_t b = 0; b < nsha; b++) {
            cb_sha256_force_backend(sha_names[b]);
            cb_sha256(data, len, b == 0 ? ref : out);
            if (b > 0) CHECK(memcmp(ref, out, 32) == 0, "sha256 %s vs %s len %zu", sha_names[b],
                             sha_names[0], len);
        }
    }
    free(data);
}

/* ---- threads: hashing while another thread switches backends ------------ */

enum { THREAD_LEN = 200000, THREAD_ROUNDS = 40 };
static uint8_t g_thread_data[THREAD_LEN];
static uint8_t g_b3_want[32], g_sha_want[32];

static void *hash_worker(void *arg) {
    int *bad = arg;
    for (int r = 0; r < THREAD_ROUNDS; r++) {
        uint8_t out[32];
        cb_blake3(g_thread_data, THREAD_LEN, out);
        if (memcmp(out, g_b3_want, 32) != 0) (*bad)++;
        cb_sha256(g_thread_data, THREAD_LEN, out);
        if (memcmp(out, g_sha_want, 32) != 0) (*bad)++;
    }
    return NULL;
}

static void test_threads(const char *const *b3_names, size_t nb3, const char *const *sha_names,
                         size_t nsha) {
    for (size_t i = 0; i < THREAD_LEN; i++) g_thread_data[i] = (uint8_t)rnd();
    cb_blake3_force_backend("portable");
    cb_sha256_force_backend("portable");
    cb_blake3(g_thread_data, THREAD_LEN, g_b3_want);
    cb_sha256(g_thread_data, THREAD_LEN, g_sha_want);
    pthread_t th[4];
    int bad[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, hash_worker, &bad[i]) == 0, "pthread_create");
    for (int r = 0; r < 200; r++) {
        cb_blake3_force_backend(b3_names[(size_t)r % nb3]);
        cb_sha256_force_backend(sha_names[(size_t)r % nsha]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(bad[i] == 0, "thread %d: %d wrong digests", i, bad[i]);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s hash_vectors.json\n", argv[0]);
        return 2;
    }
    static vectors v;
    load_vectors(argv[1], &v);

    printf("detected: blake3=%s sha256=%s\n", cb_blake3_backend(), cb_sha256_backend());
    /* Dispatch must pick the best backend that this build and CPU have. */
    unsigned f = cb_cpu_features(), need_sse = CB_CPU_SSSE3 | CB_CPU_SSE41;
    const char *best_b3 = "portable", *best_sha = "portable";
#ifdef CB_HAVE_X86
    if ((f & need_sse) == need_sse) best_b3 = "sse41";
    if ((f & (need_sse | CB_CPU_SHA)) == (need_sse | CB_CPU_SHA)) best_sha = "shani";
#endif
#ifdef CB_HAVE_AVX2
    if ((f & (need_sse | CB_CPU_AVX2)) == (need_sse | CB_CPU_AVX2)) best_b3 = "avx2";
#endif
#ifdef CB_HAVE_AVX512
    unsigned need_512 = need_sse | CB_CPU_AVX2 | CB_CPU_AVX512;
    if ((f & need_512) == need_512) best_b3 = "avx512";
#endif
    (void)f;
    (void)need_sse;
    CHECK(strcmp(cb_blake3_backend(), best_b3) == 0, "blake3 dispatch chose %s, expected %s",
          cb_blake3_backend(), best_b3);
    CHECK(strcmp(cb_sha256_backend(), best_sha) == 0, "sha256 dispatch chose %s, expected %s",
          cb_sha256_backend(), best_sha);
    static const char *const b3_all[] = {"portable", "sse41", "avx2", "avx512"};
    static const char *const sha_all[] = {"portable", "shani"};
    const char *b3_ok[4], *sha_ok[2];
    size_t nb3 = 0, nsha = 0;

    CHECK(cb_blake3_force_backend("no-such-backend") == -1, "unknown blake3 backend accepted");
    CHECK(cb_sha256_force_backend("no-such-backend") == -1, "unknown sha256 backend accepted");
    for (size_t i = 0; i < 4; i++) {
        if (cb_blake3_force_backend(b3_all[i]) != 0) {
            printf("blake3 %-8s: not in this build or CPU, skipped\n", b3_all[i]);
            continue;
        }
        CHECK(strcmp(cb_blake3_backend(), b3_all[i]) == 0, "blake3 force %s", b3_all[i]);
        int before = g_failures;
        test_blake3_backend(b3_all[i], &v);
        test_hash_many(b3_all[i]);
        printf("blake3 %-8s: %s\n", b3_all[i], g_failures == before ? "ok" : "FAILED");
        b3_ok[nb3++] = b3_all[i];
    }
    for (size_t i = 0; i < 2; i++) {
        if (cb_sha256_force_backend(sha_all[i]) != 0) {
            printf("sha256 %-8s: not in this build or CPU, skipped\n", sha_all[i]);
            continue;
        }
        CHECK(strcmp(cb_sha256_backend(), sha_all[i]) == 0, "sha256 force %s", sha_all[i]);
        int before = g_failures;
        test_sha256_backend(sha_all[i], &v);
        printf("sha256 %-8s: %s\n", sha_all[i], g_failures == before ? "ok" : "FAILED");
        sha_ok[nsha++] = sha_all[i];
    }
    int before = g_failures;
    test_agreement(b3_ok, nb3, sha_ok, nsha);
    printf("backends agree on random inputs: %s\n", g_failures == before ? "ok" : "FAILED");
    before = g_failures;
    test_threads(b3_ok, nb3, sha_ok, nsha);
    printf("threads hashing while backends switch: %s\n", g_failures == before ? "ok" : "FAILED");
    CHECK(cb_blake3_force_backend("auto") == 0 && cb_sha256_force_backend("auto") == 0,
          "auto backend");

    for (size_t i = 0; i < v.ncases; i++) free_case(&v.cases[i]);
    for (size_t i = 0; i < v.nlongx; i++) free_case(&v.longx[i]);
    free(v.key);
    free(v.context);
    printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
