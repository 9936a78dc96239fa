/* blake3_dispatch.c - picks the BLAKE3 backend once, from the CPU features,
 * and lets tests force another one. The choice is an atomic pointer: readers
 * take it once per update/finalize call, and every backend computes the same
 * function, so a switch between calls never changes a result. */
#include <stdatomic.h>
#include <string.h>

#include "blake3_impl.h"
#include "cpu_features.h"

static const cb_b3_backend B3_PORTABLE = {"portable", cb_b3_compress_in_place_portable,
                                          cb_b3_compress_xof_portable, cb_b3_hash_many_portable};
#ifdef CB_HAVE_X86
static const cb_b3_backend B3_SSE41 = {"sse41", cb_b3_compress_in_place_sse41,
                                       cb_b3_compress_xof_sse41, cb_b3_hash_many_sse41};
#endif
#ifdef CB_HAVE_AVX2
static const cb_b3_backend B3_AVX2 = {"avx2", cb_b3_compress_in_place_sse41,
                                      cb_b3_compress_xof_sse41, cb_b3_hash_many_avx2};
#endif
#ifdef CB_HAVE_AVX512
static const cb_b3_backend B3_AVX512 = {"avx512", cb_b3_compress_in_place_sse41,
                                        cb_b3_compress_xof_sse41, cb_b3_hash_many_avx512};
#endif

static _Atomic(const cb_b3_backend *) g_active;

/* The named backend if this CPU can run it, else NULL. */
static const cb_b3_backend *lookup(const char *name) {
    unsigned f = cb_cpu_features();
    (void)f;
    if (strcmp(name, "portable") == 0) return &B3_PORTABLE;
#ifdef CB_HAVE_X86
    unsigned sse = CB_CPU_SSSE3 | CB_CPU_SSE41;
    if (strcmp(name, "sse41") == 0) return (f & sse) == sse ? &B3_SSE41 : NULL;
#endif
#ifdef CB_HAVE_AVX2
    /* The AVX2 backend hands single compressions and leftover inputs to the
     * SSE4.1 code, so it needs both. */
    unsigned avx2 = CB_CPU_SSSE3 | CB_CPU_SSE41 | CB_CPU_AVX2;
    if (strcmp(name, "avx2") == 0) return (f & avx2) == avx2 ? &B3_AVX2 : NULL;
#endif
#ifdef CB_HAVE_AVX512
    /* 8 or fewer inputs go to the AVX2 code, single compressions to SSE4.1. */
    unsigned avx512 = avx2 | CB_CPU_AVX512;
    if (strcmp(name, "avx512") == 0) return (f & avx512) == avx512 ? &B3_AVX512 : NULL;
#endif
    return NULL;
}

static const cb_b3_backend *best(void) {
    static const char *const order[] = {"avx512", "avx2", "sse41", "portable"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const cb_b3_backend *b = lookup(order[i]);
        if (b) return b;
    }
    return &B3_PORTABLE;
}

const cb_b3_backend *cb_b3_active(void) {
    const cb_b3_backend *b = atomic_load_explicit(&g_active, memory_order_acquire);
    if (b == NULL) {
        const cb_b3_backend *expected = NULL;
        b = best();
        /* Keep a backend a concurrent force_backend may have set. */
        if (!atomic_compare_exchange_strong(&g_active, &expected, b)) b = expected;
    }
    return b;
}

const char *cb_blake3_backend(void) { return cb_b3_active()->name; }

int cb_blake3_force_backend(const char *name) {
    if (name == NULL) return -1;
    const cb_b3_backend *b = strcmp(name, "auto") == 0 ? best() : lookup(name);
    if (b == NULL) return -1;
    atomic_store_explicit(&g_active, b, memory_order_release);
    return 0;
}
