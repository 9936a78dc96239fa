/* cpu_features.h - private: the x86 features our SIMD backends need.
 * Detected once (cpuid + xgetbv), cached; safe to call from any thread. */
#ifndef CB_CPU_FEATURES_H
#define CB_CPU_FEATURES_H

#define CB_CPU_SSSE3 (1u << 0)
#define CB_CPU_SSE41 (1u << 1)
#define CB_CPU_AVX2 (1u << 2) /* CPU support AND the OS saves YMM state */
#define CB_CPU_SHA (1u << 3)
#define CB_CPU_AVX512 (1u << 4) /* AVX-512F AND the OS saves opmask + all ZMM state */
#define CB_CPU_DETECTED (1u << 31) /* internal: the cache is filled */

/* Bit set of CB_CPU_* for this machine (0 on non-x86). */
unsigned cb_cpu_features(void);

#endif
