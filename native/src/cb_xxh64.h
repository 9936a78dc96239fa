/* cb_xxh64.h: XXH64 with seed 0, as static inline functions (private to the C core).
 *
 * The SimHash token hash (simhash.c) and the Cheng source scanner (chengtok.c) both hash every
 * token, up to three times each. A call through the exported cb_token_hash goes via the PLT and
 * cannot be inlined; this header lets both files inline the same code, so the two always
 * produce the same hashes (native/tests/test_simhash.c holds the published XXH64 vectors).
 */
#ifndef CB_XXH64_H
#define CB_XXH64_H

#include <stddef.h>
#include <stdint.h>

#define CB_XXH_P1 0x9E3779B185EBCA87ull
#define CB_XXH_P2 0xC2B2AE3D27D4EB4Full
#define CB_XXH_P3 0x165667B19E3779F9ull
#define CB_XXH_P4 0x85EBCA77C2B2AE63ull
#define CB_XXH_P5 0x27D4EB2F165667C5ull

static inline uint64_t cb_xxh_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t cb_xxh_rd64(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t cb_xxh_rd32(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static inline uint64_t cb_xxh_round(uint64_t acc, uint64_t in) {
    acc += in * CB_XXH_P2;
    return cb_xxh_rotl(acc, 31) * CB_XXH_P1;
}

static inline uint64_t cb_xxh_merge(uint64_t acc, uint64_t v) {
    acc ^= cb_xxh_round(0, v);
    return acc * CB_XXH_P1 + CB_XXH_P4;
}

static inline uint64_t cb_xxh64(const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = CB_XXH_P1 + CB_XXH_P2, v2 = CB_XXH_P2, v3 = 0, v4 = (uint64_t)0 - CB_XXH_P1;
        do {
            v1 = cb_xxh_round(v1, cb_xxh_rd64(p));
            v2 = cb_xxh_round(v2, cb_xxh_rd64(p + 8));
            v3 = cb_xxh_round(v3, cb_xxh_rd64(p + 16));
            v4 = cb_xxh_round(v4, cb_xxh_rd64(p + 24));
            p += 32;
        } while (p + 32 <= end);
        h = cb_xxh_rotl(v1, 1) + cb_xxh_rotl(v2, 7) + cb_xxh_rotl(v3, 12) + cb_xxh_rotl(v4, 18);
        h = cb_xxh_merge(h, v1);
        h = cb_xxh_merge(h, v2);
        h = cb_xxh_merge(h, v3);
        h = cb_xxh_merge(h, v4);
    } else {
        h = CB_XXH_P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) {
        h ^= cb_xxh_round(0, cb_xxh_rd64(p));
        h = cb_xxh_rotl(h, 27) * CB_XXH_P1 + CB_XXH_P4;
    }
    if (p + 4 <= end) {
        h ^= cb_xxh_rd32(p) * CB_XXH_P1;
        h = cb_xxh_rotl(h, 23) * CB_XXH_P2 + CB_XXH_P3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= (uint64_t)*p * CB_XXH_P5;
        h = cb_xxh_rotl(h, 11) * CB_XXH_P1;
    }
    h ^= h >> 33;
    h *= CB_XXH_P2;
    h ^= h >> 29;
    h *= CB_XXH_P3;
    h ^= h >> 32;
    return h;
}

#endif /* CB_XXH64_H */
