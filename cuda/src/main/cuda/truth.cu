// The predictors' ground truth on the device (org.longexposure.backend.PredictOps#attentionTileMass; CPU twin
// backend/cpu/CpuPredict, float64 definition sparsity/exposer/TileMass): the true attention probability mass of
// every (query-block, key-block) tile of a dense forward, recomputed from its saved q, k and row log-sum-exp, so that
// a predictor refresh needs no host copy of q and k and no B·NH·T²·HS host loop.
//
//   q, k: (B·T, C) bf16, C = NH·HS; lse: (B, NH, T) f32; keyMask: (B·T) int32; mass: (B, NH, nB, nB) f64.
//
// attention_tile_mass_bf16(mass, q, k, lse, keyMask, T, NH, HS, block, nB, scale)
//   grid (nB, NH, B), block 64, dynamic smem (block·(HS + 1) + KT·HS) floats: one CTA per (query block, head,
//   sequence). The CTA stages its query rows in shared memory (rows padded to HS + 1 floats: a thread reads its own
//   row without bank conflicts), then walks the key blocks kb = 0..nB−1: for kb ≤ qb, KT keys at a time are staged
//   (every thread reads the same key: a broadcast), and each thread adds exp(scale·(q_i·k_j) − lse_i) over its rows
//   i (tid, tid + 64, ...) and the staged real keys j ≤ i, the dot product in float (fmaf, d ascending), the sum
//   in double; thread 0 then adds the 64 threads' sums in thread order and writes mass[b][h][qb][kb] (0 for
//   kb > qb, and for a query block or key block without real tokens). Deterministic for a given launch shape.

#include "common.cuh"

namespace {
constexpr int kThreads = 64;
constexpr int kKeys = 32;   // KT: keys staged per pass
}

extern "C" __global__ void __launch_bounds__(kThreads) attention_tile_mass_bf16(
        double* __restrict__ mass, const bf16* __restrict__ q, const bf16* __restrict__ k,
        const float* __restrict__ lse, const int* __restrict__ keyMask, int T, int NH, int HS, int block, int nB,
        float scale) {
    extern __shared__ float smem[];
    __shared__ double part[kThreads];
    const int qb = blockIdx.x;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int C = NH * HS;
    const int q0 = qb * block;
    const int rows = min(block, T - q0);
    float* qs = smem;                        // [block][HS + 1]
    float* ks = smem + block * (HS + 1);     // [KT][HS]
    const long long seq0 = (long long)b * T;
    for (int idx = threadIdx.x; idx < rows * HS; idx += kThreads) {
        int r = idx / HS;
        int d = idx - r * HS;
        qs[r * (HS + 1) + d] = __bfloat162float(q[(seq0 + q0 + r) * C + (long long)h * HS + d]);
    }
    double* out = mass + (((long long)b * NH + h) * nB + qb) * nB;
    const float* lseRow = lse + ((long long)b * NH + h) * T;
    for (int kb = 0; kb < nB; kb++) {
        double acc = 0;
        if (kb <= qb) {
            const int k0 = kb * block;
            const int kEnd = min(T, k0 + block);
            for (int c0 = k0; c0 < kEnd; c0 += kKeys) {
                const int cnt = min(kKeys, kEnd - c0);
                __syncthreads();   // the previous pass (or the query staging) is done with ks
                for (int idx = threadIdx.x; idx < cnt * HS; idx += kThreads) {
                    int r = idx / HS;
                    int d = idx - r * HS;
                    ks[r * HS + d] = __bfloat162float(k[(seq0 + c0 + r) * C + (long long)h * HS + d]);
                }
                __syncthreads();
                for (int r = threadIdx.x; r < rows; r += kThreads) {
                    const int i = q0 + r;
                    if (keyMask[seq0 + i] == 0) {
                        continue;
                    }
                    const float l = lseRow[i];
                    const float* qr = qs + r * (HS + 1);
                    const int jEnd = min(cnt, i - c0 + 1);   // keys j ≤ i
                    for (int jj = 0; jj < jEnd; jj++) {
                        if (keyMask[seq0 + c0 + jj] == 0) {
                            continue;
                        }
                        const float* kr = ks + jj * HS;
                        float dot = 0.f;
                        for (int d = 0; d < HS; d++) {
                            dot = fmaf(qr[d], kr[d], dot);
                        }
                        acc += (double)expf(scale * dot - l);
                    }
                }
            }
        }
        part[threadIdx.x] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            double s = 0;
            for (int t = 0; t < kThreads; t++) {
                s += part[t];
            }
            out[kb] = s;
        }
        __syncthreads();
    }
}
