/*
 * LayerNorm over the last dimension, as torch.nn.LayerNorm (biased variance, eps inside the sqrt); CPU twin
 * CpuNorm. inp/out/dOut/dInp (M, C) bf16, weight/bias (C) f32 or null (no affine), saved mean/rstd (M) f32.
 *
 * Forward, per row: mean = Σx/C; var = Σ(x − mean)²/C (two passes around the float mean, as the CPU does);
 * rstd = 1/sqrt(var + eps); out = (x − mean)·rstd·weight + bias, rounded once to bf16.
 * Backward, with xhat = (x − mean)·rstd and g = dOut·weight: dInp = rstd·(g − mean(g) − xhat·mean(g·xhat)),
 * computed in f32 and, when accumulating (residual stream), added to the f32 value of the old dInp before the
 * single rounding to bf16. dWeight += Σ_rows dOut·xhat, dBias += Σ_rows dOut (f32, optional) by a deterministic
 * two-kernel reduction: fixed row chunks give per-chunk column partials, then one thread per column adds the
 * chunks in order (in double) onto dWeight/dBias.
 *
 * Launch (row kernels): one warp per row, LN_WARPS warps per block: grid = ceil(M / LN_WARPS), block =
 * 32·LN_WARPS. A row is read from global memory two or three times; a row of C = 8192 bf16 is 16 KB, so the later
 * passes hit L1/L2. Rows with C % 8 == 0 and 16-byte aligned pointers move 8 bf16 per lane per access; other C
 * (any C >= 1) run a scalar loop. Sums are per-lane f32 partials reduced by an xor butterfly (every lane ends
 * with the same bits; the order depends only on C).
 */
#include "common.cuh"

#define LN_WARPS 4

namespace {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

/* 8 consecutive floats at p (16-byte aligned) */
__device__ __forceinline__ void load8f(const float* p, float* f) {
    float4 a = reinterpret_cast<const float4*>(p)[0];
    float4 b = reinterpret_cast<const float4*>(p)[1];
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
    f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

/* The normalised value with the optional affine, as CpuNorm: fma(n, w, b), n·w, n + b or n. */
__device__ __forceinline__ float affine(float n, const float* w, const float* b, float wj, float bj) {
    if (w != nullptr) {
        return b != nullptr ? fmaf(n, wj, bj) : n * wj;
    }
    return b != nullptr ? n + bj : n;
}

} // namespace

/*
 * out (M, C) bf16 = LayerNorm(inp (M, C) bf16) with weight/bias (C) f32 or null; mean, rstd (M) f32 saved.
 * grid = ceil(M / LN_WARPS), block = 32·LN_WARPS. out must not partially overlap inp (out == inp is fine).
 */
extern "C" __global__ void layernorm_forward_bf16(bf16* out, float* mean, float* rstd, const bf16* inp,
                                                  const float* weight, const float* bias, int M, int C,
                                                  float eps) {
    int lane = threadIdx.x & 31;
    long long row = (long long) blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= M) {
        return;
    }
    const bf16* x = inp + row * C;
    bf16* y = out + row * C;
    bool vec = (C % 8) == 0 && aligned16(x) && aligned16(y) && (weight == nullptr || aligned16(weight))
            && (bias == nullptr || aligned16(bias));
    float s = 0.0f;
    if (vec) {
        for (int j = lane * 8; j < C; j += 256) {
            float f[8];
            load8(x + j, f);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                s += f[k];
            }
        }
    } else {
        for (int j = lane; j < C; j += 32) {
            s += __bfloat162float(x[j]);
        }
    }
    float mu = warp_sum(s) / (float) C;
    float ss = 0.0f;
    if (vec) {
        for (int j = lane * 8; j < C; j += 256) {
            float f[8];
            load8(x + j, f);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float d = f[k] - mu;
                ss = fmaf(d, d, ss);
            }
        }
    } else {
        for (int j = lane; j < C; j += 32) {
            float d = __bfloat162float(x[j]) - mu;
            ss = fmaf(d, d, ss);
        }
    }
    float rs = 1.0f / sqrtf(warp_sum(ss) / (float) C + eps);
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
    if (vec) {
        for (int j = lane * 8; j < C; j += 256) {
            float f[8];
            float w[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            load8(x + j, f);
            if (weight != nullptr) {
                load8f(weight + j, w);
            }
            if (bias != nullptr) {
                load8f(bias + j, b);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                f[k] = affine((f[k] - mu) * rs, weight, bias, w[k], b[k]);
            }
            store8(y + j, f);
        }
    } else {
        for (int j = lane; j < C; j += 32) {
            float n = (__bfloat162float(x[j]) - mu) * rs;
            float wj = weight != nullptr ? weight[j] : 0.0f;
            float bj = bias != nullptr ? bias[j] : 0.0f;
            y[j] = __float2bfloat16_rn(affine(n, weight, bias, wj, bj));
        }
    }
}

/*
 * dInp (M, C) bf16 = (or, when accumulate != 0, += in f32 then rounded once) the input gradient of LayerNorm.
 * dOut, inp (M, C) bf16; mean, rstd (M) f32; weight (C) f32 or null. grid = ceil(M / LN_WARPS),
 * block = 32·LN_WARPS. dInp may be dOut's buffer when not accumulating: each element is read by the lane that
 * writes it, after the whole row has been summed.
 */
extern "C" __global__ void layernorm_backward_bf16(bf16* dInp, const bf16* dOut, const bf16* inp,
                                                   const float* mean, const float* rstd, const float* weight,
                                                   int M, int C, int accumulate) {
    int lane = threadIdx.x & 31;
    long long row = (long long) blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (row >= M) {
        return;
    }
    const bf16* x = inp + row * C;
    const bf16* dy = dOut + row * C;
    bf16* dx = dInp + row * C;
    float mu = mean[row];
    float rs = rstd[row];
    bool vec = (C % 8) == 0 && aligned16(x) && aligned16(dy) && aligned16(dx)
            && (weight == nullptr || aligned16(weight));
    float sg = 0.0f;
    float sgx = 0.0f;
    if (vec) {
        for (int j = lane * 8; j < C; j += 256) {
            float xf[8];
            float g[8];
            float w[8] = {1, 1, 1, 1, 1, 1, 1, 1};
            load8(x + j, xf);
            load8(dy + j, g);
            if (weight != nullptr) {
                load8f(weight + j, w);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float gk = weight != nullptr ? g[k] * w[k] : g[k];
                float xhat = (xf[k] - mu) * rs;
                sg += gk;
                sgx = fmaf(gk, xhat, sgx);
            }
        }
    } else {
        for (int j = lane; j < C; j += 32) {
            float g = __bfloat162float(dy[j]);
            if (weight != nullptr) {
                g *= weight[j];
            }
            float xhat = (__bfloat162float(x[j]) - mu) * rs;
            sg += g;
            sgx = fmaf(g, xhat, sgx);
        }
    }
    float meanG = warp_sum(sg) / (float) C;
    float meanGX = warp_sum(sgx) / (float) C;
    if (vec) {
        for (int j = lane * 8; j < C; j += 256) {
            float xf[8];
            float g[8];
            float old[8];
            float w[8] = {1, 1, 1, 1, 1, 1, 1, 1};
            load8(x + j, xf);
            load8(dy + j, g);
            if (weight != nullptr) {
                load8f(weight + j, w);
            }
            if (accumulate) {
                load8(dx + j, old);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float gk = weight != nullptr ? g[k] * w[k] : g[k];
                float xhat = (xf[k] - mu) * rs;
                float d = fmaf(xhat, -meanGX, gk - meanG) * rs;
                g[k] = accumulate ? old[k] + d : d;
            }
            store8(dx + j, g);
        }
    } else {
        for (int j = lane; j < C; j += 32) {
            float g = __bfloat162float(dy[j]);
            if (weight != nullptr) {
                g *= weight[j];
            }
            float xhat = (__bfloat162float(x[j]) - mu) * rs;
            float d = fmaf(xhat, -meanGX, g - meanG) * rs;
            if (accumulate) {
                d = __bfloat162float(dx[j]) + d;
            }
            dx[j] = __float2bfloat16_rn(d);
        }
    }
}

/*
 * First pass of dWeight/dBias: for row chunk c = blockIdx.y (rows [c·rowsPerChunk, min(M, (c+1)·rowsPerChunk)))
 * and column col = blockIdx.x·blockDim.x + threadIdx.x, partW[c·C + col] = Σ_rows dOut·xhat and
 * partB[c·C + col] = Σ_rows dOut (f32, rows in order); either output may be null. grid = (ceil(C / block),
 * chunks), any block size (the host uses 256); consecutive threads read consecutive columns (coalesced).
 */
extern "C" __global__ void layernorm_param_grad_partial(float* partW, float* partB, const bf16* dOut,
                                                        const bf16* inp, const float* mean, const float* rstd,
                                                        int M, int C, int rowsPerChunk) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= C) {
        return;
    }
    long long r0 = (long long) blockIdx.y * rowsPerChunk;
    long long r1 = min((long long) M, r0 + rowsPerChunk);
    float aw = 0.0f;
    float ab = 0.0f;
    for (long long r = r0; r < r1; r++) {
        float g = __bfloat162float(dOut[r * C + col]);
        if (partW != nullptr) {
            float xhat = (__bfloat162float(inp[r * C + col]) - mean[r]) * rstd[r];
            aw = fmaf(g, xhat, aw);
        }
        ab += g;
    }
    if (partW != nullptr) {
        partW[(long long) blockIdx.y * C + col] = aw;
    }
    if (partB != nullptr) {
        partB[(long long) blockIdx.y * C + col] = ab;
    }
}

/*
 * Second pass: dWeight[col] += Σ_c partW[c·C + col] and dBias[col] += Σ_c partB[c·C + col], chunks added in
 * order in double, one rounding to f32. dWeight/dBias (C) f32, either may be null (then its partials are not
 * read). grid = ceil(C / block), any block size.
 */
extern "C" __global__ void layernorm_param_grad_reduce(float* dWeight, float* dBias, const float* partW,
                                                       const float* partB, int chunks, int C) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= C) {
        return;
    }
    if (dWeight != nullptr) {
        double s = 0.0;
        for (int c = 0; c < chunks; c++) {
            s += partW[(long long) c * C + col];
        }
        dWeight[col] = (float) (dWeight[col] + s);
    }
    if (dBias != nullptr) {
        double s = 0.0;
        for (int c = 0; c < chunks; c++) {
            s += partB[(long long) c * C + col];
        }
        dBias[col] = (float) (dBias[col] + s);
    }
}
