// Backend.fillUniform on the device: element i of t becomes low + range·u(seed, i), range = high − low, where u is
// org.longexposure.backend.Dropout.uniform — the top 24 bits of SplitMix64's finaliser applied to
// seed + (i + 1)·0x9E3779B97F4A7C15, times 2^-24 — evaluated in float with each operation rounded separately
// (__fmul_rn/__fadd_rn forbid the multiply-add fusion the compiler would otherwise apply), then rounded to
// nearest-even into t's dtype. Bit-identical to the CPU backend for every index.
//
//   fill_uniform_f32 / _bf16 / _f16 / _f64(t, low, range, seed, n):   t (n)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float le_uniform(unsigned long long seed, long long index) {
    unsigned long long z = seed + (unsigned long long) (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float) (z >> 40) * 0x1.0p-24f;
}

__device__ __forceinline__ float le_fill_value(float low, float range, unsigned long long seed, long long i) {
    return __fadd_rn(low, __fmul_rn(range, le_uniform(seed, i)));
}

#define LE_FILL_KERNEL(NAME, T, CONVERT)                                                                  \
    extern "C" __global__ void NAME(T* __restrict__ t, float low, float range, unsigned long long seed,   \
                                    long long n) {                                                        \
        for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n;                      \
             i += (long long) gridDim.x * blockDim.x) {                                                   \
            t[i] = CONVERT(le_fill_value(low, range, seed, i));                                           \
        }                                                                                                 \
    }

#define LE_IDENTITY(x) (x)
LE_FILL_KERNEL(fill_uniform_f32, float, LE_IDENTITY)
LE_FILL_KERNEL(fill_uniform_bf16, __nv_bfloat16, __float2bfloat16_rn)
LE_FILL_KERNEL(fill_uniform_f16, __half, __float2half_rn)
LE_FILL_KERNEL(fill_uniform_f64, double, (double))
