/* cb_chengtok.h: the Cheng source scanner behind a package's SimHash fingerprint and its public
 * API table (docs/chunker.md, section 6).
 *
 * Both read UTF-8 text. Python's regular expressions, whose rules the scanner reproduces, classify
 * non-ASCII code points with the interpreter's Unicode tables; so that the C gives exactly the
 * same answer, the caller passes the classes of the non-ASCII code points the text holds: a
 * sorted array of (code point << 3) | CB_UC_* bits. Code points missing from it are in no class.
 * ASCII is classified here (word = [A-Za-z0-9_], digit = [0-9], space = \t\n\v\f\r, 0x1c-0x1f,
 * ' ').
 */
#ifndef CB_CHENGTOK_H
#define CB_CHENGTOK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CB_UC_WORD = 1, CB_UC_DIGIT = 2, CB_UC_SPACE = 4 };

/* ---- fingerprint tokens (cheng_build/pkg/originality.py has the rules) ---------------------- */

typedef struct cb_ctok cb_ctok;
/* A package stream with no files yet; NULL when out of memory. Free with cb_ctok_free. */
cb_ctok *cb_ctok_new(void);
void cb_ctok_free(cb_ctok *s);
/* Append one file to the stream: a FILE token, then its abstracted tokens; every new unigram,
 * bigram and trigram of the stream (n-grams run across files) is hashed into the SimHash sums.
 * Returns 0, or -1 when memory ran out (the stream is then unusable). */
int cb_ctok_feed(cb_ctok *s, const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls);
/* The SimHash64 of the stream's features; *nfeatures gets their number, 0 when the stream has
 * fewer than two tokens (then there is no fingerprint). */
uint64_t cb_ctok_result(const cb_ctok *s, uint64_t *nfeatures);
/* Tokens of the stream so far (for tests). */
uint64_t cb_ctok_ntokens(const cb_ctok *s);

/* ---- logical lines for the API table (cheng_build/pkg/api.py has the rules) ----------------- */

/* Split text into logical lines: comments dropped, newlines inside brackets read as a space,
 * newlines inside triple-quoted strings written as the two characters \n, Unicode whitespace
 * stripped from both ends, empty lines dropped. Line i is out[start[i] .. end[i]) (UTF-8), and
 * indent[i] the code points of its leading indentation (a tab counts 4). out must hold 2 * len
 * + 1 bytes and the arrays one entry per newline of text plus one. Returns the number of lines,
 * or (size_t)-1 when a capacity is too small. */
size_t cb_api_lines(const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls,
                    uint8_t *out, size_t out_cap, uint32_t *indent, uint64_t *start,
                    uint64_t *end, size_t cap);

/* The declarations pass of pkg/api.py (_decls) over cb_api_lines's lines: every exported
 * top-level declaration, in source order, as 5 uint64 per record in rec: kind (0 fn, 1 iterator,
 * 2 template, 3 macro, 4 type, 5 const), then offset and length in out of its name and of its
 * normalised signature (UTF-8). Returns the number of records, CB_API_SMALL when out_cap or
 * rec_cap is too small (nothing is overrun: retry larger), CB_API_NOMEM when allocation fails. */
#define CB_API_SMALL ((size_t)-1)
#define CB_API_NOMEM ((size_t)-2)
size_t cb_api_decls(const uint8_t *text, size_t len, const uint32_t *ucls, size_t nucls,
                    uint8_t *out, size_t out_cap, uint64_t *rec, size_t rec_cap);

/* ---- both, over a whole package in one call (native/src/chengscan.c) ---------------------- */

/* The API records of many files: every file's records (as cb_api_decls writes them, offsets
 * into the shared bytes), and how many each file has. Free with cb_apiout_free. */
typedef struct cb_apiout cb_apiout;
cb_apiout *cb_apiout_new(void); /* NULL when out of memory */
void cb_apiout_free(cb_apiout *o);
size_t cb_apiout_bytes(const cb_apiout *o, const uint8_t **bytes);
size_t cb_apiout_records(const cb_apiout *o, const uint64_t **rec); /* 5 uint64 per record */
size_t cb_apiout_files(const cb_apiout *o, const uint64_t **count);

enum { CB_SCAN_FINGERPRINT = 1, CB_SCAN_API = 2 };
/* For each file i in order: when what[i] has CB_SCAN_FINGERPRINT, append it to the stream s
 * (cb_ctok_feed); when it has CB_SCAN_API, append its exported declarations to out
 * (cb_api_decls). ucls[i] / nucls[i] as for those. Returns 0, or -1 when memory ran out. */
int cb_scan_package(cb_ctok *s, size_t n, const uint8_t *const *texts, const size_t *lens,
                    const uint32_t *const *ucls, const size_t *nucls, const uint8_t *what,
                    cb_apiout *out);

#ifdef __cplusplus
}
#endif
#endif
