/* cb_blake3.h - BLAKE3 hashing (regular, keyed, derive-key; extendable output).
 *
 * The state is caller-owned: allocate cb_blake3_hasher_size() bytes with the
 * alignment of malloc (cffi's ffi.new and plain malloc both qualify), then
 * call one of the init functions. No function allocates. A hasher may be
 * finalized any number of times and still updated afterwards.
 *
 * The backend (SIMD path) is chosen once, on first use, from the CPU's
 * features; every backend produces identical output. See docs/hashes.md.
 */
#ifndef CB_BLAKE3_H
#define CB_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CB_BLAKE3_KEY_LEN 32
#define CB_BLAKE3_OUT_LEN 32

typedef struct cb_blake3_hasher cb_blake3_hasher;

/* Bytes to allocate for one hasher. */
size_t cb_blake3_hasher_size(void);
/* Plain hashing. */
void cb_blake3_init(cb_blake3_hasher *h);
/* Keyed hashing (MAC / PRF) with a 32-byte key. */
void cb_blake3_init_keyed(cb_blake3_hasher *h, const uint8_t key[32]);
/* Key derivation: context is a hard-coded, globally unique string (bytes,
 * not NUL-terminated); the key material is then fed with cb_blake3_update. */
void cb_blake3_init_derive_key(cb_blake3_hasher *h, const char *context, size_t context_len);
void cb_blake3_update(cb_blake3_hasher *h, const void *data, size_t len);
/* Writes out_len bytes of output (any length: BLAKE3 is an XOF). Does not
 * modify the hasher. */
void cb_blake3_finalize(const cb_blake3_hasher *h, uint8_t *out, size_t out_len);
/* One-shot plain hash, 32-byte digest. */
void cb_blake3(const void *data, size_t len, uint8_t out[32]);

/* Name of the backend in use: "avx2" | "sse41" | "portable". */
const char *cb_blake3_backend(void);
/* Testing hook: force a backend by name ("avx2", "sse41", "portable"), or
 * "auto" to return to the detected best. 0 ok, -1 unknown or not supported by
 * this CPU/build (the current backend is then unchanged). Process-wide. */
int cb_blake3_force_backend(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* CB_BLAKE3_H */
