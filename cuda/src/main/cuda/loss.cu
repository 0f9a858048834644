/*
 * Cross-entropy over the vocabulary, as torch.nn.functional.cross_entropy with label smoothing ε and per-row
 * weights; CPU twin CpuLoss. logits (N, V) bf16 (V up to a few hundred thousand), targets (N) int32, weights (N)
 * f32 (0 = ignored row: loss 0, gradient 0, target never read), losses/lse (N) f32; lse is saved for backward.
 * A weighted row whose target lies outside [0, V) gets a NaN loss (and so a NaN total); its backward has no
 * one-hot term.
 *
 * Forward, per row z: lse = log Σ exp z; loss = lse − (1−ε)·z_y − ε/V·Σ_c z_c. One block of CE_THREADS threads
 * per row streams the row once: each thread keeps an online (max m, Σ exp(z − m), Σ z) in f32 over its slice
 * (8 bf16 per 16-byte load when V % 8 == 0 and the base is aligned), the block merges them in a fixed butterfly
 * order, and thread 0 forms lse and the loss in double (as the CPU does) and writes the row's weighted loss
 * w·loss as a double. cross_entropy_total then adds the N doubles in a fixed order in one block, so the host reads
 * one number and the sum is reproducible. f32 logits of the batch are never materialised.
 *
 * Backward: dz_c = w·(exp(z_c − lse) − ε/V − (1−ε)·[c = y]) written in place over the bf16 logits (or into a
 * separate dLogits): each element is read and written by the same thread, including z_y.
 *
 * Exponentials use __expf (ex2.approx on x·log2 e): relative error about 2^-21 for the arguments ≤ 0 used here,
 * far below the bf16 resolution of the logits and gradients.
 */
#include "common.cuh"

#define CE_THREADS 512
#define CE_WARPS (CE_THREADS / 32)
#define CE_BWD_THREADS 256
#define CE_BWD_CHUNK (CE_BWD_THREADS * 8)
#define CE_SUM_THREADS 1024

namespace {

/* The lowest finite float. The running max starts here rather than at −inf so that exp(z − m) is exp(−inf) = 0
 * for a −inf logit instead of exp(NaN). */
constexpr float LOWEST = -0x1.fffffep127f;

/* Online softmax state: running max m, Σ exp(z − m), Σ z. */
struct SoftmaxState {
    float m;
    float s;
    float sz;
};

/* Merges b into a: both sums rescaled to the larger max. Commutative bit for bit (no contraction). */
__device__ __forceinline__ SoftmaxState merge(SoftmaxState a, SoftmaxState b) {
    float mx = fmaxf(a.m, b.m);
    SoftmaxState r;
    r.m = mx;
    r.s = __fadd_rn(__fmul_rn(a.s, expf(a.m - mx)), __fmul_rn(b.s, expf(b.m - mx)));
    r.sz = __fadd_rn(a.sz, b.sz);
    return r;
}

__device__ __forceinline__ SoftmaxState warp_merge(SoftmaxState v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        SoftmaxState w;
        w.m = __shfl_xor_sync(0xffffffffu, v.m, o);
        w.s = __shfl_xor_sync(0xffffffffu, v.s, o);
        w.sz = __shfl_xor_sync(0xffffffffu, v.sz, o);
        v = merge(v, w);
    }
    return v;
}

} // namespace

/*
 * losses[i], lse[i] (f32) and rowWeighted[i] = weights[i]·loss_i (double) for row i = blockIdx.x of logits
 * (N, V) bf16. grid = N, block = CE_THREADS (exactly). smoothing = ε in [0, 1].
 */
extern "C" __global__ void __launch_bounds__(CE_THREADS) cross_entropy_forward_bf16(
        float* losses, float* lse, double* rowWeighted, const bf16* logits, const int* targets,
        const float* weights, int N, int V, float smoothing) {
    __shared__ float shM[CE_WARPS];
    __shared__ float shS[CE_WARPS];
    __shared__ float shZ[CE_WARPS];
    long long row = blockIdx.x;
    if (row >= N) {
        return;
    }
    const bf16* z = logits + row * V;
    SoftmaxState st = {LOWEST, 0.0f, 0.0f};
    int tid = threadIdx.x;
    if ((V % 8) == 0 && aligned16(logits)) {
        for (int j = tid * 8; j < V; j += CE_THREADS * 8) {
            float f[8];
            load8(z + j, f);
            float lm = f[0];
#pragma unroll
            for (int k = 1; k < 8; k++) {
                lm = fmaxf(lm, f[k]);
            }
            if (lm > st.m) {
                st.s *= __expf(st.m - lm);
                st.m = lm;
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                st.s += __expf(f[k] - st.m);
                st.sz += f[k];
            }
        }
    } else {
        for (int j = tid; j < V; j += CE_THREADS) {
            float f = __bfloat162float(z[j]);
            if (f > st.m) {
                st.s *= __expf(st.m - f);
                st.m = f;
            }
            st.s += __expf(f - st.m);
            st.sz += f;
        }
    }
    st = warp_merge(st);
    int warp = tid >> 5;
    int lane = tid & 31;
    if (lane == 0) {
        shM[warp] = st.m;
        shS[warp] = st.s;
        shZ[warp] = st.sz;
    }
    __syncthreads();
    if (warp == 0) {
        SoftmaxState v = {LOWEST, 0.0f, 0.0f};
        if (lane < CE_WARPS) {
            v.m = shM[lane];
            v.s = shS[lane];
            v.sz = shZ[lane];
        }
        v = warp_merge(v);
        if (lane == 0) {
            float w = weights[row];
            double rowLse = (double) v.m + log((double) v.s);
            double loss = 0.0;
            if (w != 0.0f) {
                int y = targets[row];
                if (y < 0 || y >= V) {
                    /* targets are not checked on the host: an impossible target poisons the loss */
                    loss = __longlong_as_double(0x7ff8000000000000ll);
                } else {
                    double zy = (double) __bfloat162float(z[y]);
                    loss = rowLse - (1.0 - (double) smoothing) * zy - (double) smoothing / V * (double) v.sz;
                }
            }
            losses[row] = (float) loss;
            lse[row] = (float) rowLse;
            rowWeighted[row] = (double) w * loss;
        }
    }
}

/*
 * total[0] = Σ_i rowWeighted[i] over N doubles: one block of CE_SUM_THREADS (exactly); thread t adds rows
 * t, t + CE_SUM_THREADS, … in order, then a fixed shared-memory tree. grid = 1.
 */
extern "C" __global__ void __launch_bounds__(CE_SUM_THREADS) cross_entropy_total(double* total,
                                                                                 const double* rowWeighted, int N) {
    __shared__ double sh[CE_SUM_THREADS];
    int tid = threadIdx.x;
    double s = 0.0;
    for (int i = tid; i < N; i += CE_SUM_THREADS) {
        s += rowWeighted[i];
    }
    sh[tid] = s;
    __syncthreads();
    for (int half = CE_SUM_THREADS / 2; half > 0; half >>= 1) {
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
 * dLogits (N, V) bf16 = w·(exp(z − lse) − smoothPerClass − targetMass·[c = y]) for rows with w != 0, else 0;
 * smoothPerClass = ε/V and targetMass = 1 − ε are formed on the host in float as the CPU does. dLogits may be
 * logits. grid = (N, ceil(V / CE_BWD_CHUNK)), block = CE_BWD_THREADS (exactly): block (i, c) covers columns
 * [c·CE_BWD_CHUNK, (c+1)·CE_BWD_CHUNK) of row i.
 */
extern "C" __global__ void __launch_bounds__(CE_BWD_THREADS) cross_entropy_backward_bf16(
        bf16* dLogits, const bf16* logits, const float* lse, const int* targets, const float* weights, int N,
        int V, float smoothPerClass, float targetMass) {
    long long row = blockIdx.x;
    if (row >= N) {
        return;
    }
    const bf16* z = logits + row * V;
    bf16* dz = dLogits + row * V;
    float w = weights[row];
    int c0 = blockIdx.y * CE_BWD_CHUNK;
    int c1 = min(V, c0 + CE_BWD_CHUNK);
    float rowLse = lse[row];
    int y = w != 0.0f ? targets[row] : -1;
    if ((V % 8) == 0 && aligned16(logits) && aligned16(dLogits)) {
        int j = c0 + threadIdx.x * 8;
        if (j < c1) {
            float f[8];
            if (w == 0.0f) {
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    f[k] = 0.0f;
                }
            } else {
                load8(z + j, f);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    float d = __fsub_rn(__expf(f[k] - rowLse), smoothPerClass);
                    if (j + k == y) {
                        d = __fsub_rn(d, targetMass);
                    }
                    f[k] = __fmul_rn(d, w);
                }
            }
            store8(dz + j, f);
        }
    } else {
        for (int j = c0 + threadIdx.x; j < c1; j += CE_BWD_THREADS) {
            float g = 0.0f;
            if (w != 0.0f) {
                float d = __fsub_rn(__expf(__bfloat162float(z[j]) - rowLse), smoothPerClass);
                if (j == y) {
                    d = __fsub_rn(d, targetMass);
                }
                g = __fmul_rn(d, w);
            }
            dz[j] = __float2bfloat16_rn(g);
        }
    }
}
