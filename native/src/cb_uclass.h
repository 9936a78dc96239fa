/* The per-text Unicode class table the tokenizer and the API pass share (private header).
 *
 * Python hands C a sorted array of entries (code point << 3 | class bits) for the non-ASCII
 * characters a text holds; both passes look a code point up in it by binary search.
 */
#ifndef CB_UCLASS_H
#define CB_UCLASS_H

#include <stddef.h>
#include <stdint.h>

static inline unsigned cb_uclass_find(const uint32_t *ucls, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t k = ucls[mid] >> 3;
        if (k == cp) return ucls[mid] & 7u;
        if (k < cp) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

#endif
