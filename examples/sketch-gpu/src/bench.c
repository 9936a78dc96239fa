/* voxel_bench [n] [iters]: fill, smooth with the compiled-in backend, print one JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "voxel.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 128, iters = argc > 2 ? atoi(argv[2]) : 16;
    if (n < 4 || n > 1024 || iters < 1) { fprintf(stderr, "usage: voxel_bench [n 4..1024] [iters>=1]\n"); return 2; }
    float *grid = malloc((size_t)n * n * n * sizeof *grid);
    if (!grid) { fprintf(stderr, "voxel_bench: out of memory\n"); return 1; }
    voxel_fill(grid, n);
    if (voxel_smooth(grid, n, 1)) return 1;  /* warm-up: device init, JIT, page faults */
    voxel_fill(grid, n);
    double t0 = now();
    if (voxel_smooth(grid, n, iters)) return 1;
    double dt = now() - t0;
    printf("{\"backend\": \"%s\", \"n\": %d, \"iters\": %d, \"seconds\": %.6f, "
           "\"mvox_per_s\": %.2f, \"checksum\": %.6f}\n", voxel_backend(), n, iters, dt,
           (double)n * n * n * iters / dt / 1e6, voxel_checksum(grid, n));
    free(grid);
    return 0;
}
