/* Voxel smoothing: an n*n*n grid of occupancy values (spheres voxelised from their signed
 * distance), then `iters` Jacobi steps of the 7-point 3D stencil (heat diffusion), ping-ponging
 * between two buffers. Every backend implements voxel_smooth() with the same arithmetic. */
#ifndef VOXEL_H
#define VOXEL_H
#include <stddef.h>

#define VOXEL_ALPHA 0.1f

/* Fill grid (n^3 floats) with 1.0 inside any of the fixed spheres, else 0.0. */
void voxel_fill(float *grid, int n);

/* Smooth grid in place for iters steps; returns 0 on success (non-zero: backend error). */
int voxel_smooth(float *grid, int n, int iters);

/* The reference the tests compare against (always the plain CPU loop). */
void voxel_smooth_reference(float *grid, int n, int iters);

/* Sum of all values, in double. */
double voxel_checksum(const float *grid, int n);

/* The backend compiled in: "cpu", "cuda" or "metal". */
const char *voxel_backend(void);

#endif
