"""The C declarations the binding uses, mirroring native/include/*.h (one source for both loaders).

``_ffi.py`` is generated from this by ``python -m cheng_build._native._ffi_build`` (pre-parsed, so
importing the binding does not pay for cffi's C parser); when it is missing or unusable, the
loader parses this text at import time instead.
"""

# Must equal CB_ABI_VERSION in native/include/cheng_native.h.
ABI_VERSION = 9

CDEF = """
const char *cb_version(void);
int cb_abi_version(void);
int cb_have_hashes(void);

typedef struct cb_cdc cb_cdc;
size_t cb_cdc_size(void);
int cb_cdc_init(cb_cdc *c, uint64_t min_size, uint64_t avg_size, uint64_t max_size,
                unsigned normalization);
int cb_cdc_init_custom(cb_cdc *c, uint64_t min_size, uint64_t avg_size, uint64_t max_size,
                       uint64_t mask_s, uint64_t mask_l, const uint64_t gear[256]);
const char *cb_cdc_strerror(int err);
uint64_t cb_cdc_mask(unsigned bits);
void cb_cdc_gear(uint64_t out[256]);
uint64_t cb_cdc_mask_s(const cb_cdc *c);
uint64_t cb_cdc_mask_l(const cb_cdc *c);
size_t cb_cdc_max_chunks(const cb_cdc *c, size_t len);
size_t cb_cdc_cut(const cb_cdc *c, const uint8_t *buf, size_t len);
size_t cb_cdc_chunk(const cb_cdc *c, const uint8_t *buf, size_t len, int eof, unsigned threads,
                    uint64_t *ends, size_t cap, size_t *consumed);

int cb_hash_chunks(const uint8_t *buf, size_t len, const uint64_t *ends, size_t n, int algo,
                   unsigned threads, uint8_t *out);
int cb_hash_file_fixed(int fd, uint64_t size, uint64_t chunk, int algo, unsigned threads,
                       uint8_t *out, int *err);

uint64_t cb_token_hash(const void *data, size_t len);
int cb_simhash64_batch(const uint8_t *buf, const uint64_t *doc_off, const uint64_t *doc_len,
                       const uint64_t *doc_ntok, size_t ndocs, int sep, const uint64_t *tok_len,
                       uint64_t *out);
int cb_simhash64_joined(const uint8_t *buf, size_t len, int sep, const uint64_t *doc_ntok,
                        size_t ndocs, uint64_t *out);
uint64_t cb_simhash64_from_hashes(const uint64_t *hashes, size_t n);
typedef struct cb_simsum cb_simsum;
size_t cb_simsum_size(void);
void cb_simsum_init(cb_simsum *s);
void cb_simsum_add(cb_simsum *s, const uint64_t *hashes, size_t n);
uint64_t cb_simsum_result(const cb_simsum *s);
int cb_hamming64(uint64_t a, uint64_t b);
size_t cb_pairs_within(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);
size_t cb_pairs_within_brute(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);
size_t cb_pairs_within_indexed(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);

typedef struct cb_sha256_ctx cb_sha256_ctx;
size_t cb_sha256_ctx_size(void);
void cb_sha256_init(cb_sha256_ctx *ctx);
void cb_sha256_update(cb_sha256_ctx *ctx, const void *data, size_t len);
void cb_sha256_final(cb_sha256_ctx *ctx, uint8_t out[32]);
void cb_sha256(const void *data, size_t len, uint8_t out[32]);
const char *cb_sha256_backend(void);
int cb_sha256_force_backend(const char *name);

typedef struct cb_blake3_hasher cb_blake3_hasher;
size_t cb_blake3_hasher_size(void);
void cb_blake3_init(cb_blake3_hasher *h);
void cb_blake3_init_keyed(cb_blake3_hasher *h, const uint8_t key[32]);
void cb_blake3_init_derive_key(cb_blake3_hasher *h, const char *context, size_t context_len);
void cb_blake3_update(cb_blake3_hasher *h, const void *data, size_t len);
void cb_blake3_finalize(const cb_blake3_hasher *h, uint8_t *out, size_t out_len);
void cb_blake3(const void *data, size_t len, uint8_t out[32]);
const char *cb_blake3_backend(void);
int cb_blake3_force_backend(const char *name);

typedef struct cb_ctok cb_ctok;
cb_ctok *cb_ctok_new(void);
void cb_ctok_free(cb_ctok *s);
int cb_ctok_feed(cb_ctok *s, const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls);
uint64_t cb_ctok_result(const cb_ctok *s, uint64_t *nfeatures);
uint64_t cb_ctok_ntokens(const cb_ctok *s);
size_t cb_api_lines(const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls,
                    uint8_t *out, size_t out_cap, uint32_t *indent, uint64_t *start,
                    uint64_t *end, size_t cap);
size_t cb_api_decls(const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls,
                    uint8_t *out, size_t out_cap, uint64_t *rec, size_t rec_cap);
typedef struct cb_apiout cb_apiout;
cb_apiout *cb_apiout_new(void);
void cb_apiout_free(cb_apiout *o);
size_t cb_apiout_bytes(const cb_apiout *o, const uint8_t **bytes);
size_t cb_apiout_records(const cb_apiout *o, const uint64_t **rec);
size_t cb_apiout_files(const cb_apiout *o, const uint64_t **count);
int cb_scan_package(cb_ctok *s, size_t n, const uint8_t *const *texts, const size_t *lens,
                    const uint32_t *const *ucls, const size_t *nucls, const uint8_t *what,
                    cb_apiout *out);
"""
