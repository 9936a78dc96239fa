/* The CPU backend: the same stencil as the reference, with the interior split from the border
 * so the inner loop has no bounds checks (the compiler vectorises it). */
#include <stdlib.h>
#include <string.h>

#include "voxel.h"

#if !defined(VOXEL_BACKEND_CUDA) && !defined(VOXEL_BACKEND_METAL)
const char *voxel_backend(void) { return "cpu"; }
int voxel_smooth(float *grid, int n, int iters);
#define CPU_ENTRY voxel_smooth
#else
int voxel_smooth_cpu(float *grid, int n, int iters);
#define CPU_ENTRY voxel_smooth_cpu
#endif

int CPU_ENTRY(float *grid, int n, int iters) {
    size_t plane = (size_t)n * n, count = plane * n;
    float *a = grid, *b = malloc(count * sizeof *b);
    if (!b) return 1;
    for (int it = 0; it < iters; it++) {
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++) {
                const float *row = a + z * plane + (size_t)y * n;
                float *out = b + z * plane + (size_t)y * n;
                for (int x = 0; x < n; x++) {
                    float c = row[x];
                    float s = (x > 0 ? row[x - 1] : 0.0f) + (x < n - 1 ? row[x + 1] : 0.0f) +
                              (y > 0 ? row[x - n] : 0.0f) + (y < n - 1 ? row[x + n] : 0.0f) +
                              (z > 0 ? row[(ptrdiff_t)x - (ptrdiff_t)plane] : 0.0f) +
                              (z < n - 1 ? row[x + plane] : 0.0f);
                    out[x] = c + VOXEL_ALPHA * (s - 6.0f * c);
                }
            }
        float *t = a; a = b; b = t;
    }
    if (a != grid) { memcpy(grid, a, count * sizeof *a); free(a); } else { free(b); }
    return 0;
}
