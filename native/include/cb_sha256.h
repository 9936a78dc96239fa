/* cb_sha256.h - SHA-256 (FIPS 180-4).
 *
 * The context is caller-owned: allocate cb_sha256_ctx_size() bytes with the
 * alignment of malloc, then cb_sha256_init. No function allocates. After
 * cb_sha256_final the context must be re-initialised before reuse.
 *
 * The backend is chosen once, on first use: the x86 SHA extensions ("shani")
 * where the CPU has them, otherwise "portable". See docs/hashes.md.
 */
#ifndef CB_SHA256_H
#define CB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cb_sha256_ctx cb_sha256_ctx;

size_t cb_sha256_ctx_size(void);
void cb_sha256_init(cb_sha256_ctx *ctx);
void cb_sha256_update(cb_sha256_ctx *ctx, const void *data, size_t len);
void cb_sha256_final(cb_sha256_ctx *ctx, uint8_t out[32]);
/* One-shot. */
void cb_sha256(const void *data, size_t len, uint8_t out[32]);

/* Name of the backend in use: "shani" | "portable". */
const char *cb_sha256_backend(void);
/* Testing hook: force "shani" or "portable", or "auto" for the detected best.
 * 0 ok, -1 unknown or unavailable (the current backend is then unchanged). */
int cb_sha256_force_backend(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* CB_SHA256_H */
