/* voxel_test: the compiled-in backend must match the plain CPU reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "voxel.h"

int main(void) {
    const int n = 24, iters = 5;
    size_t count = (size_t)n * n * n;
    float *got = malloc(count * sizeof *got), *want = malloc(count * sizeof *want);
    if (!got || !want) return 1;
    voxel_fill(got, n);
    voxel_fill(want, n);
    if (voxel_smooth(got, n, iters)) { fprintf(stderr, "voxel_test: backend %s failed\n", voxel_backend()); return 1; }
    voxel_smooth_reference(want, n, iters);
    float worst = 0.0f;
    for (size_t i = 0; i < count; i++) worst = fmaxf(worst, fabsf(got[i] - want[i]));
    printf("voxel_test: backend %s, max |diff| %g\n", voxel_backend(), worst);
    if (worst > 1e-4f || voxel_checksum(want, n) <= 0.0) { fprintf(stderr, "voxel_test: mismatch\n"); return 1; }
    return 0;
}
