/* blake3_dispatch.c - the BLAKE3 backends, best first, for dispatch.c (which
 * picks one once from the CPU features and lets tests force another). Readers
 * take the choice once per update/finalize call. */
#include "blake3_impl.h"
#include "cpu_features.h"
#include "dispatch.h"

static const cb_b3_backend B3_PORTABLE = {cb_b3_compress_in_place_portable,
                                          cb_b3_compress_xof_portable, cb_b3_hash_many_portable};
#ifdef CB_HAVE_X86
static const cb_b3_backend B3_SSE41 = {cb_b3_compress_in_place_sse41,
                                       cb_b3_compress_xof_sse41, cb_b3_hash_many_sse41};
#endif
#ifdef CB_HAVE_AVX2
static const cb_b3_backend B3_AVX2 = {cb_b3_compress_in_place_sse41,
                                      cb_b3_compress_xof_sse41, cb_b3_hash_many_avx2};
#endif
#ifdef CB_HAVE_AVX512
static const cb_b3_backend B3_AVX512 = {cb_b3_compress_in_place_sse41,
                                        cb_b3_compress_xof_sse41, cb_b3_hash_many_avx512};
#endif

/* Best first. The AVX2 backend hands single compressions and leftover inputs to
 * the SSE4.1 code, so it needs both; the AVX-512 one hands 8 or fewer inputs to
 * the AVX2 code, so it needs all three. */
static const cb_backend B3_BACKENDS[] = {
#ifdef CB_HAVE_AVX512
    {"avx512", CB_CPU_SSSE3 | CB_CPU_SSE41 | CB_CPU_AVX2 | CB_CPU_AVX512, &B3_AVX512},
#endif
#ifdef CB_HAVE_AVX2
    {"avx2", CB_CPU_SSSE3 | CB_CPU_SSE41 | CB_CPU_AVX2, &B3_AVX2},
#endif
#ifdef CB_HAVE_X86
    {"sse41", CB_CPU_SSSE3 | CB_CPU_SSE41, &B3_SSE41},
#endif
    {"portable", 0, &B3_PORTABLE},
};
static cb_dispatch g_b3 = {B3_BACKENDS, sizeof B3_BACKENDS / sizeof B3_BACKENDS[0], NULL};

const cb_b3_backend *cb_b3_active(void) {
    return (const cb_b3_backend *)cb_dispatch_active(&g_b3)->impl;
}

const char *cb_blake3_backend(void) { return cb_dispatch_active(&g_b3)->name; }

int cb_blake3_force_backend(const char *name) { return cb_dispatch_force(&g_b3, name); }
