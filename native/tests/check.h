/* check.h: the smallest test harness: CHECK counts failures, main returns their number. */
#ifndef CB_CHECK_H
#define CB_CHECK_H
#include <stdint.h>
#include <stdio.h>

static int cb_failures = 0;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            cb_failures++;                                                                         \
        }                                                                                          \
    } while (0)

/* Deterministic test input: little-endian SplitMix64 outputs from `seed` (docs/chunker.md uses
 * the same generator for the gear table, so the vectors are easy to recompute anywhere). */
static inline void cb_fill(uint8_t *out, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 8) {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        for (size_t k = 0; k < 8 && i + k < n; k++) out[i + k] = (uint8_t)(z >> (8 * k));
    }
}
#endif
