/* dispatch.h - private: the one way a kernel family (SHA-256, BLAKE3) picks its backend.
 *
 * A family lists its backends best first, each with the CPU features (cpu_features.h) it needs;
 * the last one is portable C and needs none. The choice is made on first use from the CPU
 * features (read once), kept in an atomic pointer, and may be forced by name ("auto" = the best
 * this CPU runs) so the tests can run every backend against the same vectors. Every backend of
 * a family computes the same function, so a switch between calls never changes a result. */
#ifndef CB_DISPATCH_H
#define CB_DISPATCH_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct {
    const char *name;
    unsigned needs; /* CB_CPU_* bits; 0 for the portable backend */
    const void *impl; /* the family's own table of function pointers for this backend */
} cb_backend;

typedef struct {
    const cb_backend *table; /* best first; table[count - 1] is the portable backend */
    size_t count;
    _Atomic(const cb_backend *) active;
} cb_dispatch;

/* The named backend if this CPU can run it, else NULL (unknown name or a missing feature). */
const cb_backend *cb_dispatch_lookup(const cb_dispatch *d, const char *name);

/* The backend in use: chosen on first call (the best this CPU runs), or the one forced. */
const cb_backend *cb_dispatch_active(cb_dispatch *d);

/* Use the named backend from now on ("auto": the best); -1 when this CPU cannot run it. */
int cb_dispatch_force(cb_dispatch *d, const char *name);

#endif
