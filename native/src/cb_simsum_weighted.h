/* cb_simsum_weighted.h: one feature hash counted w times into SimHash sums (private to the core).
 *
 * A fingerprint's bit b is set when more than half of the features have bit b set in their
 * hash, so the sums only depend on how often each distinct hash occurs: the scanner counts its
 * n-grams and adds each distinct one once, weighted by its count (chengtok.c). Same result as
 * w calls of cb_simsum_add, by construction (integer counters).
 */
#ifndef CB_SIMSUM_WEIGHTED_H
#define CB_SIMSUM_WEIGHTED_H

#include "cheng_native.h"

void cb_simsum_add_weighted(cb_simsum *s, uint64_t hash, uint64_t weight);

#endif
