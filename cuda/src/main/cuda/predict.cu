// Long Exposure's fitted predictors applied on the device (org.longexposure.backend.PredictOps; CPU twin
// backend/cpu/CpuPredict, same formulas and the same selection rule), so that a layer's layouts are built from its
// input without a host round trip. The predictors' GEMMs run on cuBLASLt (LinearOps); these kernels do the rest.
//
//   x, pooled, qt, kt, z: bf16 activations; counts, keyMask, rowPtr, colIdx: int32; gamma: f32; mass, scores: f64.
//   nB = ceil(T / block) sequence blocks, nTB = ceil(N / tokenBlock) token blocks, nb neuron blocks.
//
// Selection rule (both layouts; backend/SelectionRule on the host): over one row's candidates v[0..n)
// (non-negative, finite), some forced, a budget L ≥ #forced on the kept count, total = Σ v[i] summed in ascending
// i; visit the candidates by descending value, equal values by ascending index, keeping `covered` (from 0, in
// visiting order) and `kept` (from #forced); before each visit stop when kept ≥ L, or when coverage < 1 and not
// covered < coverage·total; else keep the visited candidate and add its value to covered. The visiting order is a
// rank by counting: rank(i) = #{j : v[j] > v[i] or (v[j] == v[i] and j < i)}, a permutation equal to the stable
// descending sort the host uses. The running sum is one thread's sequential loop in visiting order, so it rounds
// exactly as the host's does. All sums and comparisons are in double.
//
// Kernels:
//  predict_block_mean_pool_bf16(pooled, counts, x, keyMask, B, T, C, block)
//     grid (B·nB, ceil(C / 256)), block 128: one CTA per (sequence block, 256-column chunk), one thread per two
//     adjacent columns (one 4-byte load when C is even and x 4-byte aligned).
//     pooled (B·nB, C) = the mean of the block's real rows of x (B·T, C), summed in double in ascending t, 0 for a
//     block without real rows; counts (B·nB) = its real rows (written by the chunk-0 CTA).
//  predict_tile_mass_bf16(mass, qt, kt, counts, gamma, B, nB, NH, R)
//     grid (nB, NH), block 64, dynamic smem 2·nB doubles: one CTA per (query block, head) walks b = 0..B−1 in order;
//     threads over key blocks compute the logits γ_h·(q̃·k̃) + log n_kb, thread 0 takes the max and the sum of the
//     exponentials in ascending kb, every thread adds its p̂ to the row's running Σ_b. mass (NH, nB, nB).
//  predict_neuron_block_chunk_sums_bf16(partial, z, keyMask, N, tokenBlock, ffn, BN, nb, chunks)
//     grid (nTB·chunks, ceil(nb / 64)), block 64, chunks = ceil(tokenBlock / 16): one thread per (token block,
//     16-row chunk, neuron block) sums clamp(z, 0, w_j) over the chunk's real rows in ascending order, in double;
//     w_j = min(BN, ffn − j·BN). partial (nTB·chunks, nb), in the predictor's scratch.
//  predict_neuron_block_scores_sum(scores, partial, nTB, chunks, nb)
//     grid (nTB, ceil(nb / 256)), block 256: scores (nTB, nb) = the chunk sums added in ascending chunk order, the
//     two-level order of PredictOps.neuronBlockScores (a chunk past N adds 0).
//  predict_select_tiles(flags, rowCounts, mass, nB, coverage, maxRowFraction)
//     grid (nB, NH), block 64, dynamic smem nB·(8 + 4 + 1) bytes: one CTA per (head, query-block row). Writes the
//     row's keep flags (NH·nB, nB) bytes (diagonal and sink forced; budget max(#forced, ceil(maxRowFraction·(qb+1))))
//     and its count.
//  predict_select_neuron_blocks(flags, rowCounts, scores, keyMask, N, tokenBlock, nb, coverage, limit)
//     grid nTB, block 256, dynamic smem nb·(8 + 4 + 1) bytes: one CTA per token block; nothing for a token block
//     without a real row, else the rule with nothing forced and the budget `limit`. flags (nTB, nb) bytes.
//  predict_csr_from_flags(rowPtr, colIdx, flags, rowCounts, rows, width)
//     grid 1, block 1024: each thread owns a contiguous run of rows; an exclusive scan of the runs' counts
//     (Hillis-Steele in shared memory) gives rowPtr (rows + 1); each thread then lists its rows' flagged columns in
//     ascending order into colIdx. The second, tiny kernel of each selection.
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

namespace {

constexpr int SCAN_THREADS = 1024;
constexpr int POOL_UNROLL = 8;
constexpr int SCORE_CHUNK = 16;   // rows per partial sum of the neuron-block scores (PredictOps.SCORE_CHUNK)

// The selection rule on v[0..n) (shared memory), called by every thread of the CTA. `order` is n ints of shared
// memory; keep[i] is set for the chosen candidates (flags already set are the forced ones and stay); `limit` is the
// budget on the kept count. Ends with a barrier.
__device__ void choose_by_coverage(const double* v, int* order, unsigned char* keep, int n, double coverage,
                                   int limit, double* total_shared, int* kept_shared) {
    if (threadIdx.x == 0) {
        double total = 0;
        int kept = 0;
        for (int i = 0; i < n; i++) {
            total += v[i];
            kept += keep[i] ? 1 : 0;
        }
        *total_shared = total;
        *kept_shared = kept;
    }
    __syncthreads();
    double total = *total_shared;
    int kept = *kept_shared;
    if (kept >= limit || (coverage < 1 && !(total > 0))) {
        return;   // uniform over the CTA
    }
    if (coverage >= 1 && limit >= n) {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            keep[i] = 1;
        }
        __syncthreads();
        return;
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double vi = v[i];
        int rank = 0;
        for (int j = 0; j < n; j++) {
            double vj = v[j];
            rank += (vj > vi || (vj == vi && j < i)) ? 1 : 0;
        }
        order[rank] = i;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double covered = 0;
        double target = coverage * total;
        for (int r = 0; r < n && kept < limit && (coverage >= 1 || covered < target); r++) {
            int i = order[r];
            if (!keep[i]) {
                keep[i] = 1;
                kept++;
            }
            covered += v[i];
        }
    }
    __syncthreads();
}

} // namespace

extern "C" __global__ void predict_block_mean_pool_bf16(bf16* pooled, int* counts, const bf16* x, const int* keyMask,
                                                        int B, int T, int C, int block) {
    int nB = (T + block - 1) / block;
    int row = blockIdx.x;   // b·nB + i
    if (row >= B * nB) {
        return;
    }
    int b = row / nB;
    int i = row % nB;
    int e = 2 * (blockIdx.y * blockDim.x + threadIdx.x);   // this thread's columns e and e + 1
    // whole, 4-byte aligned pairs: one load for both columns
    bool pair = C % 2 == 0 && (reinterpret_cast<unsigned long long>(x) & 3ull) == 0;
    int t0 = i * block;
    int t1 = min(T, t0 + block);
    double sum0 = 0;
    double sum1 = 0;
    int n = 0;
    // POOL_UNROLL independent loads in flight per thread, then the additions in ascending t: the same sums as a
    // plain loop, without waiting on each load in turn.
    for (int tb = t0; tb < t1; tb += POOL_UNROLL) {
        float v0[POOL_UNROLL];
        float v1[POOL_UNROLL];
        int m[POOL_UNROLL];
#pragma unroll
        for (int u = 0; u < POOL_UNROLL; u++) {
            int t = tb + u;
            long long tok = (long long) b * T + t;
            m[u] = t < t1 ? keyMask[tok] : 0;
            v0[u] = 0.f;
            v1[u] = 0.f;
            if (t < t1 && pair && e < C) {
                __nv_bfloat162 two = *reinterpret_cast<const __nv_bfloat162*>(x + tok * C + e);
                v0[u] = __low2float(two);
                v1[u] = __high2float(two);
            } else if (t < t1 && !pair) {
                v0[u] = e < C ? __bfloat162float(x[tok * C + e]) : 0.f;
                v1[u] = e + 1 < C ? __bfloat162float(x[tok * C + e + 1]) : 0.f;
            }
        }
#pragma unroll
        for (int u = 0; u < POOL_UNROLL; u++) {
            if (m[u] != 0) {
                n++;
                sum0 += (double) v0[u];
                sum1 += (double) v1[u];
            }
        }
    }
    if (e < C) {
        pooled[(long long) row * C + e] = __double2bfloat16(n == 0 ? 0.0 : sum0 / n);
    }
    if (e + 1 < C) {
        pooled[(long long) row * C + e + 1] = __double2bfloat16(n == 0 ? 0.0 : sum1 / n);
    }
    if (blockIdx.y == 0 && threadIdx.x == 0) {
        counts[row] = n;
    }
}

extern "C" __global__ void predict_tile_mass_bf16(double* mass, const bf16* qt, const bf16* kt, const int* counts,
                                                  const float* gamma, int B, int nB, int NH, int R) {
    extern __shared__ double smem[];
    double* row = smem;         // nB: logits, then exponentials
    double* agg = smem + nB;    // nB: Σ_b p̂
    __shared__ double stat[2];  // max, sum
    int qb = blockIdx.x;
    int h = blockIdx.y;
    int W = NH * R;
    double g = (double) gamma[h];
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        agg[kb] = 0;
    }
    __syncthreads();
    for (int b = 0; b < B; b++) {
        if (counts[b * nB + qb] == 0) {
            continue;   // uniform over the CTA: p̂ = 0 for a query block without real tokens
        }
        const bf16* q = qt + ((long long) b * nB + qb) * W + h * R;
        for (int kb = threadIdx.x; kb <= qb; kb += blockDim.x) {
            int n = counts[b * nB + kb];
            if (n > 0) {
                const bf16* k = kt + ((long long) b * nB + kb) * W + h * R;
                double s = 0;
                for (int r = 0; r < R; r++) {
                    s += (double) __bfloat162float(q[r]) * (double) __bfloat162float(k[r]);
                }
                row[kb] = g * s + log(kb == qb ? (n + 1) / 2.0 : (double) n);
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double m = -INFINITY;
            for (int kb = 0; kb <= qb; kb++) {
                if (counts[b * nB + kb] > 0) {
                    m = fmax(m, row[kb]);
                }
            }
            stat[0] = m;
        }
        __syncthreads();
        for (int kb = threadIdx.x; kb <= qb; kb += blockDim.x) {
            row[kb] = counts[b * nB + kb] > 0 ? exp(row[kb] - stat[0]) : 0.0;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            double sum = 0;
            for (int kb = 0; kb <= qb; kb++) {
                sum += row[kb];
            }
            stat[1] = sum;
        }
        __syncthreads();
        for (int kb = threadIdx.x; kb <= qb; kb += blockDim.x) {
            agg[kb] += row[kb] / stat[1];
        }
        __syncthreads();
    }
    double* out = mass + ((long long) h * nB + qb) * nB;
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        out[kb] = kb <= qb ? agg[kb] : 0.0;
    }
}

extern "C" __global__ void predict_neuron_block_chunk_sums_bf16(double* partial, const bf16* z, const int* keyMask,
                                                                int N, int tokenBlock, int ffn, int BN, int nb,
                                                                int chunks) {
    int rc = blockIdx.x;   // r·chunks + c
    int r = rc / chunks;
    int c = rc % chunks;
    int j = blockIdx.y * blockDim.x + threadIdx.x;
    if (j >= nb) {
        return;
    }
    double width = (double) min(BN, ffn - j * BN);
    int t0 = r * tokenBlock + c * SCORE_CHUNK;
    int t1 = min(min(N, (r + 1) * tokenBlock), t0 + SCORE_CHUNK);
    double s = 0;
    for (int tb = t0; tb < t1; tb += POOL_UNROLL) {
        float v[POOL_UNROLL];
        int m[POOL_UNROLL];
#pragma unroll
        for (int u = 0; u < POOL_UNROLL; u++) {
            int t = tb + u;
            m[u] = t < t1 ? keyMask[t] : 0;
            v[u] = t < t1 ? __bfloat162float(z[(long long) t * nb + j]) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < POOL_UNROLL; u++) {
            if (m[u] != 0) {
                s += fmin(fmax((double) v[u], 0.0), width);
            }
        }
    }
    partial[(long long) rc * nb + j] = s;
}

extern "C" __global__ void predict_neuron_block_scores_sum(double* scores, const double* partial, int nTB, int chunks,
                                                           int nb) {
    int r = blockIdx.x;
    int j = blockIdx.y * blockDim.x + threadIdx.x;
    if (r >= nTB || j >= nb) {
        return;
    }
    double s = 0;
    for (int c = 0; c < chunks; c++) {
        s += partial[((long long) r * chunks + c) * nb + j];
    }
    scores[(long long) r * nb + j] = s;
}

extern "C" __global__ void predict_select_tiles(unsigned char* flags, int* rowCounts, const double* mass, int nB,
                                                double coverage, double maxRowFraction) {
    extern __shared__ double smem[];
    double* v = smem;                                            // nB
    int* order = reinterpret_cast<int*>(v + nB);                 // nB
    unsigned char* keep = reinterpret_cast<unsigned char*>(order + nB);   // nB
    __shared__ double total;
    __shared__ int kept;
    int qb = blockIdx.x;
    long long rowIndex = (long long) blockIdx.y * nB + qb;
    int n = qb + 1;
    const double* in = mass + rowIndex * nB;
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        v[kb] = kb < n ? in[kb] : 0.0;
        keep[kb] = kb < n && (kb == qb || kb == 0) ? 1 : 0;
    }
    __syncthreads();
    int forced = qb == 0 ? 1 : 2;
    int limit = max(forced, (int) ceil(maxRowFraction * (double) n));
    choose_by_coverage(v, order, keep, n, coverage, limit, &total, &kept);
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        flags[rowIndex * nB + kb] = keep[kb];
    }
    if (threadIdx.x == 0) {
        int c = 0;
        for (int kb = 0; kb < n; kb++) {
            c += keep[kb];
        }
        rowCounts[rowIndex] = c;
    }
}

extern "C" __global__ void predict_select_neuron_blocks(unsigned char* flags, int* rowCounts, const double* scores,
                                                        const int* keyMask, int N, int tokenBlock, int nb,
                                                        double coverage, int limit) {
    extern __shared__ double smem[];
    double* v = smem;                                            // nb
    int* order = reinterpret_cast<int*>(v + nb);                 // nb
    unsigned char* keep = reinterpret_cast<unsigned char*>(order + nb);   // nb
    __shared__ double total;
    __shared__ int kept;
    int r = blockIdx.x;
    int t0 = r * tokenBlock;
    int t1 = min(N, t0 + tokenBlock);
    int anyReal = 0;
    for (int t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
        anyReal |= keyMask[t] != 0;
    }
    int real = __syncthreads_or(anyReal);
    const double* in = scores + (long long) r * nb;
    for (int j = threadIdx.x; j < nb; j += blockDim.x) {
        v[j] = in[j];
        keep[j] = 0;
    }
    __syncthreads();
    if (real) {
        choose_by_coverage(v, order, keep, nb, coverage, limit, &total, &kept);
    }
    __syncthreads();
    for (int j = threadIdx.x; j < nb; j += blockDim.x) {
        flags[(long long) r * nb + j] = keep[j];
    }
    if (threadIdx.x == 0) {
        int c = 0;
        for (int j = 0; j < nb; j++) {
            c += keep[j];
        }
        rowCounts[r] = c;
    }
}

extern "C" __global__ void __launch_bounds__(SCAN_THREADS) predict_csr_from_flags(int* rowPtr, int* colIdx,
        const unsigned char* flags, const int* rowCounts, int rows, int width) {
    __shared__ int scan[SCAN_THREADS];
    int per = (rows + SCAN_THREADS - 1) / SCAN_THREADS;
    int lo = min(rows, threadIdx.x * per);
    int hi = min(rows, lo + per);
    int mine = 0;
    for (int r = lo; r < hi; r++) {
        mine += rowCounts[r];
    }
    scan[threadIdx.x] = mine;
    __syncthreads();
    for (int off = 1; off < SCAN_THREADS; off <<= 1) {
        int add = threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
        __syncthreads();
        scan[threadIdx.x] += add;
        __syncthreads();
    }
    int p = scan[threadIdx.x] - mine;   // exclusive prefix of this thread's run
    if (threadIdx.x == SCAN_THREADS - 1) {
        rowPtr[rows] = scan[threadIdx.x];
    }
    for (int r = lo; r < hi; r++) {
        rowPtr[r] = p;
        const unsigned char* f = flags + (long long) r * width;
        for (int j = 0; j < width; j++) {
            if (f[j]) {
                colIdx[p++] = j;
            }
        }
    }
}
