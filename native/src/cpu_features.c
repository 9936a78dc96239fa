/* cpu_features.c - one place that asks the CPU what it can do.
 *
 * AVX2 needs two answers: the CPU has the instructions (CPUID leaf 7, EBX
 * bit 5) and the OS saves the YMM registers on context switches (OSXSAVE set
 * and XCR0 bits 1|2 set, read with xgetbv); without the second, AVX2 code
 * would corrupt state, so we treat it as absent. AVX-512 the same way, with
 * the opmask and ZMM bits of XCR0. The result is cached in an
 * atomic; two threads racing on first use both compute the same value. */
#include "cpu_features.h"

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    /* xgetbv with ecx=0; inline asm so no -mxsave is needed for this file. */
    __asm__ __volatile__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static unsigned detect(void) {
    unsigned eax, ebx, ecx, edx, out = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    unsigned ecx1 = ecx;
    if (ecx1 & (1u << 9)) out |= CB_CPU_SSSE3;
    if (ecx1 & (1u << 19)) out |= CB_CPU_SSE41;
    unsigned max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        unsigned ebx7 = ebx;
        if (ebx7 & (1u << 29)) out |= CB_CPU_SHA;
        int osxsave = (ecx1 >> 27) & 1, avx = (ecx1 >> 28) & 1;
        if ((ebx7 & (1u << 5)) && osxsave && avx && (read_xcr0() & 6u) == 6u) {
            out |= CB_CPU_AVX2;
        }
        /* AVX-512F (leaf 7 EBX bit 16) likewise needs the OS to save the
         * opmask registers and all 32 ZMM registers: XCR0 bits 5, 6, 7 on
         * top of the SSE and YMM bits. */
        if ((ebx7 & (1u << 16)) && osxsave && avx && (read_xcr0() & 0xE6u) == 0xE6u) {
            out |= CB_CPU_AVX512;
        }
    }
    return out;
}
#else
static unsigned detect(void) { return 0; }
#endif

static atomic_uint g_features;

unsigned cb_cpu_features(void) {
    unsigned f = atomic_load_explicit(&g_features, memory_order_relaxed);
    if (!(f & CB_CPU_DETECTED)) {
        f = detect() | CB_CPU_DETECTED;
        atomic_store_explicit(&g_features, f, memory_order_relaxed);
    }
    return f & ~(unsigned)CB_CPU_DETECTED;
}
