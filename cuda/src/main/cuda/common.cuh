/*
 * Helpers shared by the pointwise and row kernels (elementwise, embedding, layernorm, loss): the bf16 type name and
 * 16-byte vector moves of 8 bf16 widened to / rounded from fp32 (round-to-nearest-even, as __floats2bfloat162_rn).
 * Callers check aligned16 on every pointer before taking a vector path and fall back to scalar code otherwise.
 *
 * Header only, every function inline in an unnamed namespace: each kernel source compiles to the same code as with
 * its own copy. Included with #include "common.cuh": nvcc finds it by -I, NVRTC receives it from KernelLibrary.
 */
#pragma once

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;
// Fixed-width integers without <stdint.h>, which NVRTC (the fallback compiler for other GPUs) does not provide.
typedef unsigned int u32;

namespace {

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

/* 8 bf16 at p (16-byte aligned) widened to f[0..7]. */
__device__ __forceinline__ void load8(const bf16* p, float* f) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}

/* f[0..7] rounded to bf16 and stored at p (16-byte aligned). */
__device__ __forceinline__ void store8(bf16* p, const float* f) {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
    }
    *reinterpret_cast<uint4*>(p) = u;
}

}  // namespace
