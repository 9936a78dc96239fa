// The Metal backend (macOS): the same stencil as a compute kernel compiled from source at run time.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include "voxel.h"

static NSString *const kSource =
    @"#include <metal_stdlib>\n"
     "using namespace metal;\n"
     "kernel void step(device const float *a [[buffer(0)]], device float *b [[buffer(1)]],\n"
     "                 constant int &n [[buffer(2)]], constant float &alpha [[buffer(3)]],\n"
     "                 uint3 p [[thread_position_in_grid]]) {\n"
     "  int x = p.x, y = p.y, z = p.z;\n"
     "  if (x >= n || y >= n || z >= n) return;\n"
     "  ulong plane = (ulong)n * n, i = z * plane + (ulong)y * n + x;\n"
     "  float c = a[i];\n"
     "  float s = (x > 0 ? a[i - 1] : 0.0f) + (x < n - 1 ? a[i + 1] : 0.0f) +\n"
     "            (y > 0 ? a[i - n] : 0.0f) + (y < n - 1 ? a[i + n] : 0.0f) +\n"
     "            (z > 0 ? a[i - plane] : 0.0f) + (z < n - 1 ? a[i + plane] : 0.0f);\n"
     "  b[i] = c + alpha * (s - 6.0f * c);\n"
     "}\n";

const char *voxel_backend(void) { return "metal"; }

int voxel_smooth(float *grid, int n, int iters) {
    @autoreleasepool {
        id<MTLDevice> dev = MTLCreateSystemDefaultDevice();
        if (!dev) { fprintf(stderr, "voxel metal: no Metal device\n"); return 1; }
        NSError *err = nil;
        id<MTLLibrary> lib = [dev newLibraryWithSource:kSource options:nil error:&err];
        id<MTLFunction> fn = lib ? [lib newFunctionWithName:@"step"] : nil;
        id<MTLComputePipelineState> pso = fn ? [dev newComputePipelineStateWithFunction:fn error:&err] : nil;
        if (!pso) { fprintf(stderr, "voxel metal: %s\n", err.localizedDescription.UTF8String); return 1; }
        NSUInteger bytes = (NSUInteger)n * n * n * sizeof(float);
        id<MTLBuffer> a = [dev newBufferWithBytes:grid length:bytes options:MTLResourceStorageModeShared];
        id<MTLBuffer> b = [dev newBufferWithLength:bytes options:MTLResourceStorageModeShared];
        id<MTLCommandQueue> q = [dev newCommandQueue];
        id<MTLCommandBuffer> cb = [q commandBuffer];
        float alpha = VOXEL_ALPHA;
        for (int it = 0; it < iters; it++) {
            id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
            [enc setComputePipelineState:pso];
            [enc setBuffer:(it % 2 ? b : a) offset:0 atIndex:0];
            [enc setBuffer:(it % 2 ? a : b) offset:0 atIndex:1];
            [enc setBytes:&n length:sizeof n atIndex:2];
            [enc setBytes:&alpha length:sizeof alpha atIndex:3];
            [enc dispatchThreads:MTLSizeMake(n, n, n) threadsPerThreadgroup:MTLSizeMake(8, 8, 4)];
            [enc endEncoding];
        }
        [cb commit];
        [cb waitUntilCompleted];
        if (cb.error) { fprintf(stderr, "voxel metal: %s\n", cb.error.localizedDescription.UTF8String); return 1; }
        memcpy(grid, (iters % 2 ? b : a).contents, bytes);
    }
    return 0;
}
