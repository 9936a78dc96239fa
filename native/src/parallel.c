/* parallel.c: a fork-join helper over pthreads. Threads are started per call: every caller
 * hands each thread megabytes of work, so a pool would save nothing measurable. */
#include "parallel.h"

#include <pthread.h>

typedef struct {
    void (*fn)(void *, unsigned, unsigned);
    void *arg;
    unsigned t, n;
} job;

static void *trampoline(void *p) {
    job *j = (job *)p;
    j->fn(j->arg, j->t, j->n);
    return NULL;
}

int cb_parallel_run(unsigned n, void (*fn)(void *, unsigned, unsigned), void *arg) {
    if (n <= 1) {
        fn(arg, 0, 1);
        return 0;
    }
    if (n > CB_MAX_THREADS) n = CB_MAX_THREADS;
    pthread_t tid[CB_MAX_THREADS];
    job jobs[CB_MAX_THREADS];
    int started[CB_MAX_THREADS] = {0};
    int rc = 0;
    for (unsigned t = 1; t < n; t++) {
        jobs[t] = (job){fn, arg, t, n};
        started[t] = pthread_create(&tid[t], NULL, trampoline, &jobs[t]) == 0;
    }
    fn(arg, 0, n);
    for (unsigned t = 1; t < n; t++) {
        if (started[t]) {
            pthread_join(tid[t], NULL);
        } else {
            /* Could not start: do its share here; callers' work splits are pure functions of
             * (t, n), so the output is the same. */
            fn(arg, t, n);
            rc = -1;
        }
    }
    return rc;
}
