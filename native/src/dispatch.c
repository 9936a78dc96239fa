/* dispatch.c - the backend choice shared by every kernel family (see dispatch.h). */
#include "dispatch.h"

#include <string.h>

#include "cpu_features.h"

const cb_backend *cb_dispatch_lookup(const cb_dispatch *d, const char *name) {
    unsigned have = cb_cpu_features();
    for (size_t i = 0; i < d->count; i++) {
        const cb_backend *b = &d->table[i];
        if (strcmp(b->name, name) == 0) return (have & b->needs) == b->needs ? b : NULL;
    }
    return NULL;
}

static const cb_backend *best(const cb_dispatch *d) {
    unsigned have = cb_cpu_features();
    for (size_t i = 0; i < d->count; i++) {
        if ((have & d->table[i].needs) == d->table[i].needs) return &d->table[i];
    }
    return &d->table[d->count - 1];
}

const cb_backend *cb_dispatch_active(cb_dispatch *d) {
    const cb_backend *b = atomic_load_explicit(&d->active, memory_order_acquire);
    if (b == NULL) {
        const cb_backend *expected = NULL;
        b = best(d);
        /* Keep a backend a concurrent force may have set. */
        if (!atomic_compare_exchange_strong(&d->active, &expected, b)) b = expected;
    }
    return b;
}

int cb_dispatch_force(cb_dispatch *d, const char *name) {
    if (name == NULL) return -1;
    const cb_backend *b = strcmp(name, "auto") == 0 ? best(d) : cb_dispatch_lookup(d, name);
    if (b == NULL) return -1;
    atomic_store_explicit(&d->active, b, memory_order_release);
    return 0;
}
