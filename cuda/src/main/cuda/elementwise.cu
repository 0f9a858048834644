/*
 * Pointwise kernels over flat tensors of n elements (n is 64-bit): activations (forward and backward), residual
 * add and accumulate, inverted dropout with the counter-based mask of org.longexposure.backend.Dropout, scaling,
 * and f32 <-> bf16 conversion.
 *
 * References: torch.nn.functional.relu / gelu (approximate='none' and 'tanh'); the CPU twins are CpuActivation
 * (same formulas: GELU by Abramowitz and Stegun 7.1.26, tanh-GELU as x·σ(2u)) and Dropout. Math is fp32; bf16
 * values are widened on load and rounded once (round-to-nearest-even) on store. Nothing is saved for backward
 * beyond the input itself (dropout regenerates its mask from (seed, index)).
 *
 * Memory: when every pointer of a kernel is 16-byte aligned, threads move 8 bf16 (or 4 f32) per access and the
 * last n % 8 (n % 4) elements are handled by scalar code; otherwise the whole range runs scalar. Launch: 1-D grid
 * of any size, blocks of any multiple of 32 threads (the host uses 256); every kernel loops grid-stride.
 *
 * Where results must equal the CPU's bit for bit (dropout, scale, add) the float operations use the _rn
 * intrinsics so that nvcc cannot contract a multiply and an add into an fma.
 */
#include "common.cuh"

namespace {

__device__ __forceinline__ long long thread_index() {
    return (long long) blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long thread_count() {
    return (long long) gridDim.x * blockDim.x;
}

/* ---- activations: the same formulas and constants as CpuActivation (float literals are its float values) */

constexpr float TANH_A = -0x1.988454p0f;   /* -2·sqrt(2/π) */
constexpr float TANH_B = -0x1.2444f2p-4f;  /* -2·sqrt(2/π)·0.044715 */
constexpr float TANH_DA = 0x1.988454p0f;   /* 2·sqrt(2/π) */
constexpr float TANH_DB = 0x1.b6676ep-3f;  /* 2·sqrt(2/π)·3·0.044715 */
constexpr float INV_SQRT_2 = 0x1.6a09e6p-1f;
constexpr float INV_SQRT_2PI = 0x1.988454p-2f;
constexpr float AS_P = 0.3275911f;
constexpr float AS_A1 = 0.254829592f;
constexpr float AS_A2 = -0.284496736f;
constexpr float AS_A3 = 1.421413741f;
constexpr float AS_A4 = -1.453152027f;
constexpr float AS_A5 = 1.061405429f;
/* The CPU exponential saturates at e^88; clamping here keeps e^{-2u}·s finite for very negative x. */
constexpr float EXP_HI = 88.0f;

enum Act { RELU = 0, GELU = 1, GELU_TANH = 2 };

/* e^{-x²/2} */
__device__ __forceinline__ float gaussian(float x) {
    return expf(x * x * -0.5f);
}

/* Φ(x) from e = e^{-x²/2}: 1 - q for x >= 0, q for x < 0, q = erfc(|x|/√2)/2 by A&S 7.1.26. */
__device__ __forceinline__ float normal_cdf(float x, float e) {
    float z = fabsf(x) * INV_SQRT_2;
    float t = 1.0f / fmaf(z, AS_P, 1.0f);
    float p = fmaf(t, AS_A5, AS_A4);
    p = fmaf(p, t, AS_A3);
    p = fmaf(p, t, AS_A2);
    p = fmaf(p, t, AS_A1);
    float q = p * t * e * 0.5f;
    return x < 0.0f ? q : 1.0f - q;
}

/* e^{-2u}, u = √(2/π)·(x + 0.044715·x³), saturated at e^88 like the CPU's exp. */
__device__ __forceinline__ float exp_minus_2u(float x) {
    float a = fmaf(x * x, TANH_B, TANH_A);
    return expf(fminf(x * a, EXP_HI));
}

template <int A>
__device__ __forceinline__ float act_forward(float x) {
    if (A == RELU) {
        return x > 0.0f ? x : (x != x ? x : 0.0f);
    } else if (A == GELU) {
        return x * normal_cdf(x, gaussian(x));
    } else {
        return x / (exp_minus_2u(x) + 1.0f);
    }
}

/* dOut · act'(x) */
template <int A>
__device__ __forceinline__ float act_backward(float dy, float x) {
    if (A == RELU) {
        return x > 0.0f ? dy : 0.0f;
    } else if (A == GELU) {
        float e = gaussian(x);
        float grad = fmaf(x * e, INV_SQRT_2PI, normal_cdf(x, e));
        return dy * grad;
    } else {
        float e = exp_minus_2u(x);
        float s = 1.0f / (e + 1.0f);
        float du = fmaf(x * x, TANH_DB, TANH_DA);
        float k = x * du * (e * s);
        return dy * fmaf(s, k, s);
    }
}

template <int A>
__device__ void activation_forward(bf16* out, const bf16* inp, long long n) {
    long long tid = thread_index();
    long long stride = thread_count();
    long long done = 0;
    if (aligned16(out) && aligned16(inp)) {
        long long vecs = n / 8;
        for (long long v = tid; v < vecs; v += stride) {
            float f[8];
            load8(inp + 8 * v, f);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                f[k] = act_forward<A>(f[k]);
            }
            store8(out + 8 * v, f);
        }
        done = vecs * 8;
    }
    for (long long i = done + tid; i < n; i += stride) {
        out[i] = __float2bfloat16_rn(act_forward<A>(__bfloat162float(inp[i])));
    }
}

template <int A>
__device__ void activation_backward(bf16* dInp, const bf16* dOut, const bf16* inp, long long n) {
    long long tid = thread_index();
    long long stride = thread_count();
    long long done = 0;
    if (aligned16(dInp) && aligned16(dOut) && aligned16(inp)) {
        long long vecs = n / 8;
        for (long long v = tid; v < vecs; v += stride) {
            float dy[8];
            float x[8];
            load8(dOut + 8 * v, dy);
            load8(inp + 8 * v, x);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                dy[k] = act_backward<A>(dy[k], x[k]);
            }
            store8(dInp + 8 * v, dy);
        }
        done = vecs * 8;
    }
    for (long long i = done + tid; i < n; i += stride) {
        float g = act_backward<A>(__bfloat162float(dOut[i]), __bfloat162float(inp[i]));
        dInp[i] = __float2bfloat16_rn(g);
    }
}

/* ---- dropout: bit-exact port of org.longexposure.backend.Dropout.uniform (SplitMix64 finaliser) */

__device__ __forceinline__ float dropout_uniform(unsigned long long seed, unsigned long long index) {
    unsigned long long z = seed + (index + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    /* the top 24 bits, exactly representable, times 2^-24 (exact) */
    return __fmul_rn((float) (unsigned int) (z >> 40), 0x1.0p-24f);
}

/* Elementwise out[i] = f(a[i], b[i], i) over bf16 with the vector/tail split; F is a functor (a, b, i). */
template <class F>
__device__ void map2_bf16(bf16* out, const bf16* a, const bf16* b, long long n, F f) {
    long long tid = thread_index();
    long long stride = thread_count();
    long long done = 0;
    if (aligned16(out) && aligned16(a) && aligned16(b)) {
        long long vecs = n / 8;
        for (long long v = tid; v < vecs; v += stride) {
            float x[8];
            float y[8];
            load8(a + 8 * v, x);
            load8(b + 8 * v, y);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                x[k] = f(x[k], y[k], 8 * v + k);
            }
            store8(out + 8 * v, x);
        }
        done = vecs * 8;
    }
    for (long long i = done + tid; i < n; i += stride) {
        out[i] = __float2bfloat16_rn(f(__bfloat162float(a[i]), __bfloat162float(b[i]), i));
    }
}

/* The same over f32, 4 elements per 16-byte access. */
template <class F>
__device__ void map2_f32(float* out, const float* a, const float* b, long long n, F f) {
    long long tid = thread_index();
    long long stride = thread_count();
    long long done = 0;
    if (aligned16(out) && aligned16(a) && aligned16(b)) {
        long long vecs = n / 4;
        for (long long v = tid; v < vecs; v += stride) {
            float4 x = reinterpret_cast<const float4*>(a)[v];
            float4 y = reinterpret_cast<const float4*>(b)[v];
            float4 r;
            r.x = f(x.x, y.x, 4 * v);
            r.y = f(x.y, y.y, 4 * v + 1);
            r.z = f(x.z, y.z, 4 * v + 2);
            r.w = f(x.w, y.w, 4 * v + 3);
            reinterpret_cast<float4*>(out)[v] = r;
        }
        done = vecs * 4;
    }
    for (long long i = done + tid; i < n; i += stride) {
        out[i] = f(a[i], b[i], i);
    }
}

struct AddOp {
    __device__ __forceinline__ float operator()(float x, float y, long long) const {
        return __fadd_rn(x, y);
    }
};

struct DropoutOp {
    unsigned long long seed;
    float p;
    float scale;
    __device__ __forceinline__ float operator()(float x, float, long long i) const {
        return dropout_uniform(seed, (unsigned long long) i) >= p ? __fmul_rn(x, scale) : 0.0f;
    }
};

struct ScaleOp {
    float factor;
    __device__ __forceinline__ float operator()(float x, float, long long) const {
        return __fmul_rn(x, factor);
    }
};

} // namespace

/* ---- activations. out/inp, dInp/dOut/inp: (n) bf16; outputs may alias inputs (each element is read by the
 * thread that writes it, before writing). For ReLU's backward inp may be the forward's output. */

extern "C" __global__ void relu_forward_bf16(bf16* out, const bf16* inp, long long n) {
    activation_forward<RELU>(out, inp, n);
}

extern "C" __global__ void gelu_forward_bf16(bf16* out, const bf16* inp, long long n) {
    activation_forward<GELU>(out, inp, n);
}

extern "C" __global__ void gelu_tanh_forward_bf16(bf16* out, const bf16* inp, long long n) {
    activation_forward<GELU_TANH>(out, inp, n);
}

extern "C" __global__ void relu_backward_bf16(bf16* dInp, const bf16* dOut, const bf16* inp, long long n) {
    activation_backward<RELU>(dInp, dOut, inp, n);
}

extern "C" __global__ void gelu_backward_bf16(bf16* dInp, const bf16* dOut, const bf16* inp, long long n) {
    activation_backward<GELU>(dInp, dOut, inp, n);
}

extern "C" __global__ void gelu_tanh_backward_bf16(bf16* dInp, const bf16* dOut, const bf16* inp, long long n) {
    activation_backward<GELU_TANH>(dInp, dOut, inp, n);
}

/* ---- out = a + b (n), aliasing of out with a and/or b allowed; accumulate is add with out == a. */

extern "C" __global__ void add_bf16(bf16* out, const bf16* a, const bf16* b, long long n) {
    map2_bf16(out, a, b, n, AddOp());
}

extern "C" __global__ void add_f32(float* out, const float* a, const float* b, long long n) {
    map2_f32(out, a, b, n, AddOp());
}

/* ---- inverted dropout: out[i] = keep(seed, i) ? inp[i]·scale : 0 with keep = uniform(seed, i) >= p and
 * scale = 1/(1-p) formed on the host in float (as the CPU does). The backward is the same map over dOut.
 * out may alias inp. (n) bf16 or f32. */

extern "C" __global__ void dropout_bf16(bf16* out, const bf16* inp, long long n, float p, float scale,
                                        unsigned long long seed) {
    map2_bf16(out, inp, inp, n, DropoutOp{seed, p, scale});
}

extern "C" __global__ void dropout_f32(float* out, const float* inp, long long n, float p, float scale,
                                       unsigned long long seed) {
    map2_f32(out, inp, inp, n, DropoutOp{seed, p, scale});
}

/* ---- t *= factor in place, (n) bf16 or f32 */

extern "C" __global__ void scale_bf16(bf16* t, long long n, float factor) {
    map2_bf16(t, t, t, n, ScaleOp{factor});
}

extern "C" __global__ void scale_f32(float* t, long long n, float factor) {
    map2_f32(t, t, t, n, ScaleOp{factor});
}

/* ---- conversions (n): out = round-to-nearest-even bf16 of inp, and the exact widening back. */

extern "C" __global__ void convert_f32_to_bf16(bf16* out, const float* inp, long long n) {
    long long tid = thread_index();
    long long stride = thread_count();
    long long done = 0;
    if (aligned16(out) && aligned16(inp)) {
        long long vecs = n / 8;
        for (long long v = tid; v < vecs; v += stride) {
            float4 lo = reinterpret_cast<const float4*>(inp)[2 * v];
            float4 hi = reinterpret_cast<const float4*>(inp)[2 * v + 1];
            float f[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
            store8(out + 8 * v, f);
        }
        done = vecs * 8;
    }
    for (long long i = done + tid; i < n; i += stride) {
        out[i] = __float2bfloat16_rn(inp[i]);
    }
}

extern "C" __global__ void convert_bf16_to_f32(float* out, const bf16* inp, long long n) {
    long long tid = thread_index();
    long long stride = thread_count();
    long long done = 0;
    if (aligned16(out) && aligned16(inp)) {
        long long vecs = n / 8;
        for (long long v = tid; v < vecs; v += stride) {
            float f[8];
            load8(inp + 8 * v, f);
            reinterpret_cast<float4*>(out)[2 * v] = make_float4(f[0], f[1], f[2], f[3]);
            reinterpret_cast<float4*>(out)[2 * v + 1] = make_float4(f[4], f[5], f[6], f[7]);
        }
        done = vecs * 8;
    }
    for (long long i = done + tid; i < n; i += stride) {
        out[i] = __bfloat162float(inp[i]);
    }
}
