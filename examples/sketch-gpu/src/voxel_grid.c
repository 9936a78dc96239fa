#include <stdlib.h>
#include <string.h>

#include "voxel.h"

static const float SPHERES[][4] = {  /* x, y, z, radius in units of the grid size */
    {0.30f, 0.30f, 0.30f, 0.20f}, {0.70f, 0.40f, 0.60f, 0.25f}, {0.45f, 0.75f, 0.35f, 0.15f},
};

void voxel_fill(float *grid, int n) {
    for (int z = 0; z < n; z++)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                float v = 0.0f;
                for (size_t s = 0; s < sizeof SPHERES / sizeof SPHERES[0]; s++) {
                    float dx = (x + 0.5f) / n - SPHERES[s][0], dy = (y + 0.5f) / n - SPHERES[s][1];
                    float dz = (z + 0.5f) / n - SPHERES[s][2], r = SPHERES[s][3];
                    if (dx * dx + dy * dy + dz * dz <= r * r) v = 1.0f;
                }
                grid[((size_t)z * n + y) * n + x] = v;
            }
}

static float at(const float *g, int n, int x, int y, int z) {
    if (x < 0 || y < 0 || z < 0 || x >= n || y >= n || z >= n) return 0.0f;  /* cold border */
    return g[((size_t)z * n + y) * n + x];
}

void voxel_smooth_reference(float *grid, int n, int iters) {
    size_t count = (size_t)n * n * n;
    float *tmp = malloc(count * sizeof *tmp);
    if (!tmp) return;
    for (int it = 0; it < iters; it++) {
        for (int z = 0; z < n; z++)
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++) {
                    float c = at(grid, n, x, y, z);
                    float s = at(grid, n, x - 1, y, z) + at(grid, n, x + 1, y, z) +
                              at(grid, n, x, y - 1, z) + at(grid, n, x, y + 1, z) +
                              at(grid, n, x, y, z - 1) + at(grid, n, x, y, z + 1);
                    tmp[((size_t)z * n + y) * n + x] = c + VOXEL_ALPHA * (s - 6.0f * c);
                }
        memcpy(grid, tmp, count * sizeof *tmp);
    }
    free(tmp);
}

double voxel_checksum(const float *grid, int n) {
    double sum = 0.0;
    for (size_t i = 0; i < (size_t)n * n * n; i++) sum += grid[i];
    return sum;
}
