/* parallel.h: run one function on N threads (internal to libchengnative). */
#ifndef CB_PARALLEL_H
#define CB_PARALLEL_H

#define CB_MAX_THREADS 64u

/* Calls fn(arg, t, n) for t in [0, n) on n threads (t == 0 runs on the calling thread) and
 * waits for all. Returns 0, or -1 when a thread could not be started (the work of that thread
 * is then done on the calling thread, so the result is still complete). */
int cb_parallel_run(unsigned n, void (*fn)(void *arg, unsigned t, unsigned n), void *arg);

#endif
