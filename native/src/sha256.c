/* sha256.c - SHA-256 buffering, padding (FIPS 180-4, 5.1.1) and the backend
 * choice: the SHA extensions when the CPU has them, else portable C, picked
 * by dispatch.c like every kernel family's backend. */
#include <string.h>

#include "cpu_features.h"
#include "dispatch.h"
#include "sha256_impl.h"

typedef struct {
    cb_sha256_blocks_fn blocks;
} sha256_backend;

static const sha256_backend SHA_PORTABLE = {cb_sha256_blocks_portable};
#ifdef CB_HAVE_X86
static const sha256_backend SHA_SHANI = {cb_sha256_blocks_shani};
#endif

/* Best first. The SHA-NI path also uses SSSE3 byte shuffles and SSE4.1 blends. */
static const cb_backend SHA_BACKENDS[] = {
#ifdef CB_HAVE_X86
    {"shani", CB_CPU_SHA | CB_CPU_SSSE3 | CB_CPU_SSE41, &SHA_SHANI},
#endif
    {"portable", 0, &SHA_PORTABLE},
};
static cb_dispatch g_sha = {SHA_BACKENDS, sizeof SHA_BACKENDS / sizeof SHA_BACKENDS[0], NULL};

static const sha256_backend *active(void) {
    return (const sha256_backend *)cb_dispatch_active(&g_sha)->impl;
}

const char *cb_sha256_backend(void) { return cb_dispatch_active(&g_sha)->name; }

int cb_sha256_force_backend(const char *name) { return cb_dispatch_force(&g_sha, name); }

size_t cb_sha256_ctx_size(void) { return sizeof(cb_sha256_ctx); }

void cb_sha256_init(cb_sha256_ctx *ctx) {
    /* H(0), FIPS 180-4 5.3.3. */
    static const uint32_t H0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(ctx->state, H0, sizeof H0);
    ctx->total_len = 0;
    ctx->buf_len = 0;
}

void cb_sha256_update(cb_sha256_ctx *ctx, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    if (len == 0) return;
    cb_sha256_blocks_fn blocks = active()->blocks;
    ctx->total_len += len;
    if (ctx->buf_len > 0) {
        size_t take = 64 - ctx->buf_len;
        if (take > len) take = len;
        memcpy(ctx->buf + ctx->buf_len, p, take);
        ctx->buf_len += (uint32_t)take;
        p += take;
        len -= take;
        if (ctx->buf_len < 64) return;
        blocks(ctx->state, ctx->buf, 1);
        ctx->buf_len = 0;
    }
    size_t n = len / 64;
    if (n > 0) {
        blocks(ctx->state, p, n);
        p += n * 64;
        len -= n * 64;
    }
    memcpy(ctx->buf, p, len);
    ctx->buf_len = (uint32_t)len;
}

static void store_be32(uint8_t *p, uint32_t w) {
    p[0] = (uint8_t)(w >> 24);
    p[1] = (uint8_t)(w >> 16);
    p[2] = (uint8_t)(w >> 8);
    p[3] = (uint8_t)w;
}

void cb_sha256_final(cb_sha256_ctx *ctx, uint8_t out[32]) {
    cb_sha256_blocks_fn blocks = active()->blocks;
    uint64_t bits = ctx->total_len * 8;
    uint8_t pad[128];
    size_t n = ctx->buf_len;
    memcpy(pad, ctx->buf, n);
    pad[n++] = 0x80;
    /* Zeros up to 8 bytes short of a block boundary, then the bit length. */
    size_t total = n <= 56 ? 64 : 128;
    memset(pad + n, 0, total - 8 - n);
    store_be32(pad + total - 8, (uint32_t)(bits >> 32));
    store_be32(pad + total - 4, (uint32_t)bits);
    blocks(ctx->state, pad, total / 64);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, ctx->state[i]);
    memset(ctx, 0, sizeof *ctx);
}

void cb_sha256(const void *data, size_t len, uint8_t out[32]) {
    cb_sha256_ctx ctx;
    cb_sha256_init(&ctx);
    cb_sha256_update(&ctx, data, len);
    cb_sha256_final(&ctx, out);
}
