/*
 * Optimizer kernels over trainable f32 tensors (elements flat, n 64-bit); CPU twin CpuOptim.
 *
 * adamw_f32: one torch.optim.AdamW step in place, in the CPU's order: p ← p·decay; m ← β1·m + (1−β1)·g;
 * v ← β2·v + (1−β2)·g²; p ← p − (m / (sqrt(v)/bc2Sqrt + eps))·stepSize, where decay = 1 − lr·wd,
 * stepSize = lr/(1 − β1^t) and bc2Sqrt = sqrt(1 − β2^t) are formed on the host in double and rounded once to
 * float, as CpuOptim does. Every float operation is a correctly rounded _rn intrinsic (no fma contraction), so
 * the result is meant to equal the CPU's bit for bit.
 *
 * sum_squares_partial_f32 / sum_squares_final: Σ g² in double, deterministic. SUMSQ_BLOCKS blocks (a constant,
 * independent of the device) of SUMSQ_THREADS threads each read a fixed grid-stride subset of the elements,
 * reduce in a fixed shared-memory tree, and add the block's sum onto its own slot partials[blockIdx.x] (no
 * atomics: each slot has one writer, and launches on one stream are ordered). Several tensors accumulate into
 * the same SUMSQ_BLOCKS slots; one final single-block tree then writes the total to a device double.
 */

#include <cuda_bf16.h>

#include "common.cuh"

#define SUMSQ_BLOCKS 256
#define SUMSQ_THREADS 256

namespace {

struct AdamW {
    float decay;
    float beta1;
    float beta2;
    float oneMinusBeta1;
    float oneMinusBeta2;
    float stepSize;
    float bc2Sqrt;
    float eps;

    /* one element: p, m, v updated in place from g */
    __device__ __forceinline__ void step(float& p, float g, float& m, float& v) const {
        float pi = __fmul_rn(p, decay);
        float mi = __fadd_rn(__fmul_rn(m, beta1), __fmul_rn(g, oneMinusBeta1));
        float vi = __fadd_rn(__fmul_rn(v, beta2), __fmul_rn(__fmul_rn(g, g), oneMinusBeta2));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2Sqrt), eps);
        p = __fsub_rn(pi, __fmul_rn(__fdiv_rn(mi, denom), stepSize));
        m = mi;
        v = vi;
    }
};

} // namespace

/*
 * param, grad, m, v: (n) f32. 1-D grid of any size (the host caps it), any block size; 16-byte accesses when all
 * four bases are aligned, scalar otherwise and for the last n % 4 elements.
 */
extern "C" __global__ void adamw_f32(float* param, const float* grad, float* m, float* v, long long n,
                                     float decay, float beta1, float beta2, float oneMinusBeta1,
                                     float oneMinusBeta2, float stepSize, float bc2Sqrt, float eps) {
    AdamW a{decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2, stepSize, bc2Sqrt, eps};
    long long tid = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long) gridDim.x * blockDim.x;
    long long done = 0;
    if (aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v)) {
        long long vecs = n / 4;
        for (long long i = tid; i < vecs; i += stride) {
            float4 p4 = reinterpret_cast<float4*>(param)[i];
            float4 g4 = reinterpret_cast<const float4*>(grad)[i];
            float4 m4 = reinterpret_cast<float4*>(m)[i];
            float4 v4 = reinterpret_cast<float4*>(v)[i];
            a.step(p4.x, g4.x, m4.x, v4.x);
            a.step(p4.y, g4.y, m4.y, v4.y);
            a.step(p4.z, g4.z, m4.z, v4.z);
            a.step(p4.w, g4.w, m4.w, v4.w);
            reinterpret_cast<float4*>(param)[i] = p4;
            reinterpret_cast<float4*>(m)[i] = m4;
            reinterpret_cast<float4*>(v)[i] = v4;
        }
        done = vecs * 4;
    }
    for (long long i = done + tid; i < n; i += stride) {
        float p = param[i];
        float mi = m[i];
        float vi = v[i];
        a.step(p, grad[i], mi, vi);
        param[i] = p;
        m[i] = mi;
        v[i] = vi;
    }
}

/*
 * partials[blockIdx.x] += Σ (double) g[i]² over i ≡ blockIdx.x·SUMSQ_THREADS + threadIdx.x
 * (mod SUMSQ_BLOCKS·SUMSQ_THREADS). g (n) f32, partials (SUMSQ_BLOCKS) double, zeroed by the host before the first
 * tensor. grid = SUMSQ_BLOCKS, block = SUMSQ_THREADS (both exactly).
 */
extern "C" __global__ void __launch_bounds__(SUMSQ_THREADS) sum_squares_partial_f32(double* partials,
                                                                                    const float* g, long long n) {
    __shared__ double sh[SUMSQ_THREADS];
    int tid = threadIdx.x;
    double s = 0.0;
    for (long long i = (long long) blockIdx.x * SUMSQ_THREADS + tid; i < n;
         i += (long long) SUMSQ_BLOCKS * SUMSQ_THREADS) {
        double x = g[i];
        s = fma(x, x, s);
    }
    sh[tid] = s;
    __syncthreads();
    for (int half = SUMSQ_THREADS / 2; half > 0; half >>= 1) {
        if (tid < half) {
            sh[tid] += sh[tid + half];
        }
        __syncthreads();
    }
    if (tid == 0) {
        partials[blockIdx.x] += sh[0];
    }
}

/* total[0] = Σ partials[0 .. SUMSQ_BLOCKS) by a fixed tree. grid = 1, block = SUMSQ_BLOCKS (exactly). */
extern "C" __global__ void __launch_bounds__(SUMSQ_BLOCKS) sum_squares_final(double* total,
                                                                             const double* partials) {
    __shared__ double sh[SUMSQ_BLOCKS];
    int tid = threadIdx.x;
    sh[tid] = partials[tid];
    __syncthreads();
    for (int half = SUMSQ_BLOCKS / 2; half > 0; half >>= 1) {
        if (tid < half) {
            sh[tid] += sh[tid + half];
        }
        __syncthreads();
    }
    if (tid == 0) {
        total[0] = sh[0];
    }
}

/*
 * Multi-tensor versions: one launch for a whole list of tensors, described by a device table built and cached
 * by the host (CudaOptim). Each tensor's elements get exactly the arithmetic of the one-tensor kernels above, so
 * the results are bit-identical to one launch per tensor. adamw_f32_multi also rounds each new parameter value
 * into the parameter's bf16 shadow when the entry names one (round to nearest even, as convert_f32_to_bf16).
 */
struct AdamWEntry {
    float* param;
    const float* grad;
    float* m;
    float* v;
    long long n;
    __nv_bfloat16* shadow; /* bf16 copy of param that GEMMs read, rewritten with the new values; null if none */
};

struct SpanEntry {
    float* data;
    long long n;
};

/*
 * adamw_f32_multi: tensor blockIdx.y of the table, grid-stride over its elements along x with float4 accesses
 * where the four bases are 16-byte aligned. grid (any, count), any block size.
 */
extern "C" __global__ void adamw_f32_multi(const AdamWEntry* table, float decay, float beta1, float beta2,
                                           float oneMinusBeta1, float oneMinusBeta2, float stepSize,
                                           float bc2Sqrt, float eps) {
    AdamWEntry e = table[blockIdx.y];
    AdamW a{decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2, stepSize, bc2Sqrt, eps};
    long long tid = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long) gridDim.x * blockDim.x;
    long long done = 0;
    if (aligned16(e.param) && aligned16(e.grad) && aligned16(e.m) && aligned16(e.v)) {
        long long vecs = e.n / 4;
        for (long long i = tid; i < vecs; i += stride) {
            float4 p4 = reinterpret_cast<float4*>(e.param)[i];
            float4 g4 = reinterpret_cast<const float4*>(e.grad)[i];
            float4 m4 = reinterpret_cast<float4*>(e.m)[i];
            float4 v4 = reinterpret_cast<float4*>(e.v)[i];
            a.step(p4.x, g4.x, m4.x, v4.x);
            a.step(p4.y, g4.y, m4.y, v4.y);
            a.step(p4.z, g4.z, m4.z, v4.z);
            a.step(p4.w, g4.w, m4.w, v4.w);
            reinterpret_cast<float4*>(e.param)[i] = p4;
            reinterpret_cast<float4*>(e.m)[i] = m4;
            reinterpret_cast<float4*>(e.v)[i] = v4;
            if (e.shadow != nullptr) {
                e.shadow[4 * i] = __float2bfloat16_rn(p4.x);
                e.shadow[4 * i + 1] = __float2bfloat16_rn(p4.y);
                e.shadow[4 * i + 2] = __float2bfloat16_rn(p4.z);
                e.shadow[4 * i + 3] = __float2bfloat16_rn(p4.w);
            }
        }
        done = vecs * 4;
    }
    for (long long i = done + tid; i < e.n; i += stride) {
        float p = e.param[i];
        float mi = e.m[i];
        float vi = e.v[i];
        a.step(p, e.grad[i], mi, vi);
        e.param[i] = p;
        e.m[i] = mi;
        e.v[i] = vi;
        if (e.shadow != nullptr) {
            e.shadow[i] = __float2bfloat16_rn(p);
        }
    }
}

/* scale_f32_multi: data[i] *= factor for every tensor of the table (tensor blockIdx.y). grid (any, count). */
extern "C" __global__ void scale_f32_multi(const SpanEntry* table, float factor) {
    SpanEntry e = table[blockIdx.y];
    long long stride = (long long) gridDim.x * blockDim.x;
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < e.n; i += stride) {
        e.data[i] = __fmul_rn(e.data[i], factor);
    }
}

/* zero_f32_multi: data[i] = 0 for every tensor of the table (tensor blockIdx.y). grid (any, count). */
extern "C" __global__ void zero_f32_multi(const SpanEntry* table) {
    SpanEntry e = table[blockIdx.y];
    long long stride = (long long) gridDim.x * blockDim.x;
    for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < e.n; i += stride) {
        e.data[i] = 0.0f;
    }
}

/*
 * sum_squares_partial_f32_multi: partials[blockIdx.x] = Σ over the tensors in table order of this block's share
 * of Σ g² (the same element subset and shared-memory tree per tensor as sum_squares_partial_f32, added onto the
 * slot in the same order), so the partials equal those of one launch per tensor after a zeroing. Overwrites the
 * slots: no zeroing needed. grid = SUMSQ_BLOCKS, block = SUMSQ_THREADS (both exactly).
 */
extern "C" __global__ void __launch_bounds__(SUMSQ_THREADS) sum_squares_partial_f32_multi(
        double* partials, const SpanEntry* table, int count) {
    __shared__ double sh[SUMSQ_THREADS];
    int tid = threadIdx.x;
    double slot = 0.0;
    for (int t = 0; t < count; t++) {
        SpanEntry e = table[t];
        double s = 0.0;
        for (long long i = (long long) blockIdx.x * SUMSQ_THREADS + tid; i < e.n;
             i += (long long) SUMSQ_BLOCKS * SUMSQ_THREADS) {
            double x = e.data[i];
            s = fma(x, x, s);
        }
        sh[tid] = s;
        __syncthreads();
        for (int half = SUMSQ_THREADS / 2; half > 0; half >>= 1) {
            if (tid < half) {
                sh[tid] += sh[tid + half];
            }
            __syncthreads();
        }
        if (tid == 0) {
            slot += sh[0];
        }
        __syncthreads();
    }
    if (tid == 0) {
        partials[blockIdx.x] = slot;
    }
}
