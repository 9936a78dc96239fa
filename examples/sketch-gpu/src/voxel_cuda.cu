// The CUDA backend: one thread per voxel, ping-pong buffers on the device.
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {
#include "voxel.h"
}

__global__ static void step(const float *a, float *b, int n) {
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    int z = blockIdx.z;
    if (x >= n || y >= n) return;
    size_t plane = (size_t)n * n, i = z * plane + (size_t)y * n + x;
    float c = a[i];
    float s = (x > 0 ? a[i - 1] : 0.0f) + (x < n - 1 ? a[i + 1] : 0.0f) +
              (y > 0 ? a[i - n] : 0.0f) + (y < n - 1 ? a[i + n] : 0.0f) +
              (z > 0 ? a[i - plane] : 0.0f) + (z < n - 1 ? a[i + plane] : 0.0f);
    b[i] = c + VOXEL_ALPHA * (s - 6.0f * c);
}

extern "C" const char *voxel_backend(void) { return "cuda"; }

extern "C" int voxel_smooth(float *grid, int n, int iters) {
    size_t bytes = (size_t)n * n * n * sizeof(float);
    float *a = NULL, *b = NULL;
    cudaError_t err = cudaMalloc(&a, bytes);
    if (err == cudaSuccess) err = cudaMalloc(&b, bytes);
    if (err == cudaSuccess) err = cudaMemcpy(a, grid, bytes, cudaMemcpyHostToDevice);
    dim3 block(32, 8, 1), blocks((n + 31) / 32, (n + 7) / 8, n);
    for (int it = 0; err == cudaSuccess && it < iters; it++) {
        step<<<blocks, block>>>(a, b, n);
        err = cudaGetLastError();
        float *t = a; a = b; b = t;
    }
    if (err == cudaSuccess) err = cudaMemcpy(grid, a, bytes, cudaMemcpyDeviceToHost);
    cudaFree(a);
    cudaFree(b);
    if (err != cudaSuccess) {
        fprintf(stderr, "voxel cuda: %s\n", cudaGetErrorString(err));
        return 1;
    }
    return 0;
}
