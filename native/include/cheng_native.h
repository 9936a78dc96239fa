/* cheng_native.h: the public C API of libchengnative (chunking, chunk-and-hash, SimHash).
 *
 * The hashes have their own headers (cb_sha256.h, cb_blake3.h). Everything here follows the
 * same shape: caller-allocated opaque state whose size comes from a function (so a cffi ABI-mode
 * binding needs no struct layout), no global mutable state, no malloc in the hot loops, and
 * every function is safe to call from several threads at once on different state.
 *
 * The chunker is specified in docs/chunker.md; that document, not this code, is the contract.
 */
#ifndef CHENG_NATIVE_H
#define CHENG_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature below changes; the Python loader refuses a mismatch so a stale
 * build in cheng_build/_native/ is reported instead of crashing. */
#define CB_ABI_VERSION 9

const char *cb_version(void);
int cb_abi_version(void);
/* 1 when the library was built with the SHA-256/BLAKE3 sources (native/cmake/hashes.cmake). */
int cb_have_hashes(void);

/* ---- FastCDC ------------------------------------------------------------------------------ */

typedef struct cb_cdc cb_cdc;

/* Parameter errors returned by cb_cdc_init*; cb_cdc_strerror names them. */
enum {
    CB_CDC_OK = 0,
    CB_CDC_EMIN = -1,     /* min_size out of [CB_CDC_MIN_LOWER, avg_size] */
    CB_CDC_EAVG = -2,     /* avg_size not a power of two in [CB_CDC_AVG_LOWER, CB_CDC_AVG_UPPER] */
    CB_CDC_EMAX = -3,     /* max_size out of [avg_size, CB_CDC_MAX_UPPER] */
    CB_CDC_ENORM = -4,    /* normalization out of [0, 3] */
    CB_CDC_EMASK = -5     /* a custom mask is zero */
};
#define CB_CDC_MIN_LOWER 64u
#define CB_CDC_AVG_LOWER 256u
#define CB_CDC_AVG_UPPER (1u << 28)
#define CB_CDC_MAX_UPPER (1u << 30)

size_t cb_cdc_size(void);
/* Standard parameters: our gear table and masks (docs/chunker.md). */
int cb_cdc_init(cb_cdc *c, uint64_t min_size, uint64_t avg_size, uint64_t max_size,
                unsigned normalization);
/* Same cut rule with a caller-given gear table and masks (used to compare against other
 * FastCDC implementations that share the rule, e.g. pyfastcdc, in tests). */
int cb_cdc_init_custom(cb_cdc *c, uint64_t min_size, uint64_t avg_size, uint64_t max_size,
                       uint64_t mask_s, uint64_t mask_l, const uint64_t gear[256]);
const char *cb_cdc_strerror(int err);
uint64_t cb_cdc_mask(unsigned bits);             /* our mask with `bits` one-bits */
void cb_cdc_gear(uint64_t out[256]);             /* our gear table */
uint64_t cb_cdc_mask_s(const cb_cdc *c);
uint64_t cb_cdc_mask_l(const cb_cdc *c);

/* Upper bound of the number of chunks of a `len`-byte input (capacity for `ends`). */
size_t cb_cdc_max_chunks(const cb_cdc *c, size_t len);

/* Length of the first chunk of buf[0..len): `len` must be the whole rest of the input, or at
 * least max_size bytes of it. Returns 0 only for len == 0. */
size_t cb_cdc_cut(const cb_cdc *c, const uint8_t *buf, size_t len);

/* Chunk buf[0..len) and write each chunk's end offset (relative to buf) to ends[].
 * eof != 0: buf is the rest of the input; every byte is assigned to a chunk.
 * eof == 0: more input follows; only chunks whose cut is certain are emitted (those starting at
 *           least max_size bytes before the end of buf); *consumed says where the next call's
 *           buffer must begin. Feeding a stream this way gives the same cut points as one call on
 *           the whole input.
 * threads > 1 splits the search across threads; the result (chunks and *consumed) is identical
 * to threads == 1. Returns the number of chunks, or (size_t)-1 when cap is too small
 * or memory ran out. */
size_t cb_cdc_chunk(const cb_cdc *c, const uint8_t *buf, size_t len, int eof, unsigned threads,
                    uint64_t *ends, size_t cap, size_t *consumed);

/* ---- chunk + hash --------------------------------------------------------------------------- */

enum { CB_ALGO_SHA256 = 0, CB_ALGO_BLAKE3 = 1 };

/* Hash chunk i = buf[ends[i-1] .. ends[i]) (ends[-1] = 0) into out + 32*i, with `threads`
 * threads. Returns 0, -1 for an unknown algorithm, -2 when built without the hashes and -4 when
 * ends[] is not increasing within len. */
int cb_hash_chunks(const uint8_t *buf, size_t len, const uint64_t *ends, size_t n, int algo,
                   unsigned threads, uint8_t *out);

/* The largest chunk cb_hash_file_fixed takes (each thread holds one in memory). */
#define CB_FILE_CHUNK_MAX (1u << 30)

/* Hash the fixed-size chunks of the first `size` bytes of the open file `fd` (chunk i covers
 * [i*chunk, min((i+1)*chunk, size)), read with pread, so the file offset is not used or moved)
 * into out + 32*i, with `threads` threads; out holds 32 * ceil(size / chunk) bytes. Returns 0,
 * -1 for an unknown algorithm or a chunk size of 0 or above CB_FILE_CHUNK_MAX, -2 when built
 * without the hashes, -3 when the file ends before `size` (it shrank), -4 on a read error and
 * -5 when memory ran out; *err (if not NULL) gets the errno of a failed read. */
int cb_hash_file_fixed(int fd, uint64_t size, uint64_t chunk, int algo, unsigned threads,
                       uint8_t *out, int *err);

/* ---- SimHash64 ------------------------------------------------------------------------------ */

/* XXH64 (seed 0) of one token: the token hash of our SimHash (docs/chunker.md). */
uint64_t cb_token_hash(const void *data, size_t len);

/* Fingerprints of ndocs documents packed in one buffer. Document d is
 * buf[doc_off[d] .. doc_off[d] + doc_len[d]) and holds doc_ntok[d] tokens:
 *   sep >= 0: the tokens are separated by the byte `sep` (which no token contains);
 *   sep <  0: tok_len (the concatenation, over documents, of each token's length) gives them.
 * Returns 0, or -1 when a document does not hold the number of tokens it claims. */
int cb_simhash64_batch(const uint8_t *buf, const uint64_t *doc_off, const uint64_t *doc_len,
                       const uint64_t *doc_ntok, size_t ndocs, int sep, const uint64_t *tok_len,
                       uint64_t *out);
/* Fingerprints of ndocs documents whose tokens are all joined, over all documents in order, by
 * the byte `sep` (which no token contains) in buf[0..len); document d holds the next doc_ntok[d]
 * tokens. Returns 0, or -1 when the number of separators does not match the token counts (a
 * token contained `sep`: use cb_simhash64_batch with explicit lengths instead). */
int cb_simhash64_joined(const uint8_t *buf, size_t len, int sep, const uint64_t *doc_ntok,
                        size_t ndocs, uint64_t *out);
/* The few functions of Python's C API (all in the stable ABI) that cb_simhash64_pylists calls,
 * passed in by the caller so the library neither links against nor includes Python:
 * PyList_Size, PyList_GetItem (a borrowed reference) and PyUnicode_AsUTF8AndSize. */
typedef struct cb_pyapi {
    intptr_t (*list_size)(void *list);
    void *(*list_item)(void *list, intptr_t i);
    const char *(*utf8)(void *str, intptr_t *size);
    /* Optional: the object layout of the running interpreter, as the caller checked it against
     * the three functions above on probe objects (what PyList_GET_ITEM and PyUnicode_DATA read in
     * an extension). With list_items_off != 0 the lists (which must then be exact lists) are read
     * in place, and a token whose type is str_type and whose 32-bit state word has every bit of
     * str_ascii_bits set (compact ASCII: its UTF-8 bytes are its data) is read without a call;
     * any other token still goes through utf8(). All zero: only the calls are used. */
    intptr_t type_off;           /* PyObject.ob_type */
    intptr_t list_size_off;      /* PyVarObject.ob_size */
    intptr_t list_items_off;     /* PyListObject.ob_item */
    const void *str_type;        /* &PyUnicode_Type */
    intptr_t str_len_off;        /* PyASCIIObject.length */
    intptr_t str_state_off;      /* PyASCIIObject.state */
    intptr_t str_ascii_data_off; /* sizeof(PyASCIIObject): where a compact ASCII str's bytes start;
                                  * at least 16 (else unused), the bytes NUL-terminated: the kernel
                                  * reads the 16 bytes that end at the NUL, header bytes included */
    uint32_t str_ascii_bits;     /* state.compact | state.ascii */
} cb_pyapi;
/* Fingerprints of the documents in the Python list `docs` (each a list of str tokens, hashed
 * as their UTF-8 bytes) into out[0 .. len(docs)). The caller holds the GIL for the whole call
 * (the lists are read in place). Returns 0, or -1 when an API call failed (it left a Python
 * exception set, e.g. TypeError for a token that is not a str). */
int cb_simhash64_pylists(const cb_pyapi *api, void *docs, uint64_t *out);
/* Fingerprint of tokens whose 64-bit hashes are given (weight 1 each). */
uint64_t cb_simhash64_from_hashes(const uint64_t *hashes, size_t n);
/* The same sums kept across calls, for a stream of token hashes fed in pieces (the Cheng
 * scanner of cb_chengtok.h feeds one). Caller-allocated state of cb_simsum_size() bytes. */
typedef struct cb_simsum cb_simsum;
size_t cb_simsum_size(void);
void cb_simsum_init(cb_simsum *s);
void cb_simsum_add(cb_simsum *s, const uint64_t *hashes, size_t n);
/* The fingerprint of every hash added so far (the state stays usable). */
uint64_t cb_simsum_result(const cb_simsum *s);
int cb_hamming64(uint64_t a, uint64_t b);
/* All pairs i < j with hamming(fps[i], fps[j]) <= d, ordered by (i, j). Writes up to cap
 * triples (i, j, distance) to out[3*k ..]; returns the total number of pairs (which may be
 * larger than cap: call again with more room). */
size_t cb_pairs_within(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);
/* The two strategies cb_pairs_within picks from (exposed for tests): compare every pair, or
 * index d+1 blocks of bits (pigeonhole) and compare only fingerprints that share a block. */
size_t cb_pairs_within_brute(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);
size_t cb_pairs_within_indexed(const uint64_t *fps, size_t n, unsigned d, uint64_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
