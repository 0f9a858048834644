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
//     adjacent columns. When C % 8 == 0 and x is 16-byte aligned the CTA stages 32 rows at a time in shared memory
//     (16-byte loads, all in flight together), else each thread loads its own columns, 8 rows in flight.
//     pooled (B·nB, C) = the mean of the block's real rows of x (B·T, C), summed in double in ascending t, 0 for a
//     block without real rows; counts (B·nB) = its real rows (written by the chunk-0 CTA).
//  predict_tile_mass_bf16(mass, qk, counts, gamma, B, nB, NH, R)
//     grid (nB, NH), block 128, dynamic smem B·nB doubles: one CTA per (query block, head); warp w takes the
//     sequences b ≡ w (mod warps): lanes over key blocks compute the logits γ_h·(q̃·k̃) + log n_kb (q̃ the first NH·R
//     columns of qk's row, k̃ the last NH·R), a warp max, lane 0 the sum of the exponentials in ascending kb, the
//     lanes p̂ = e / sum into the sequence's row; then threads over kb add the rows in ascending b. mass (NH, nB, nB).
//  predict_tiles_bf16(mass, lists, rowCounts, counter, rowPtr, colIdx, qk, counts, gamma, B, nB, NH, R, coverage,
//                     maxRowFraction)
//     predict_tile_mass_bf16 and predict_select_tiles fused: grid (nB, NH), block 128; each CTA computes its mass
//     row as above, writes it, selects from it, writes its list; the last CTA to finish (an integer counter, reset
//     by that CTA) builds the CSR from the lists (csr_from_lists). Dynamic smem: B·nB + nB doubles, nB ints, nB
//     bytes, NH·nB + 1 ints.
//  predict_neuron_blocks_bf16(scores, acc, realRows, lists, rowCounts, counters, rowPtr, blockIdx, z, keyMask, N,
//                             tokenBlock, ffn, BN, nb, chunks, coverage, limit, select)
//     grid nTB·chunks, block 256, chunks = ceil(tokenBlock / 64). The scores in 32.32 fixed point (PredictOps.
//     neuronBlockScores: exact integer sums, so any order gives the CPU's bits): each CTA takes 64 rows of a token
//     block, one thread per (16-row group, neuron block) adds its truncated terms and one atomicAdd puts them into
//     acc[r][j] (u64); the CTA's real rows go into realRows[r]. The last CTA of the token block (counters[r]) reads
//     and zeroes acc[r] and realRows[r], writes scores[r]; with select ≠ 0 it then selects (nothing for a token
//     block without real rows) and writes its list, and the last token block (counters[nTB]) builds the CSR. acc,
//     realRows and the counters are zero between launches. Dynamic smem: nb doubles, nb ints, nTB + 1 ints, nb bytes.
//  predict_select_tiles(lists, rowCounts, mass, nB, coverage, maxRowFraction)
//     grid (nB, NH), block 64, dynamic smem nB·(8 + 4 + 1) bytes: one CTA per (head, query-block row). Writes the
//     row's kept key blocks ascending into lists (NH·nB, nB) (diagonal and sink forced; budget max(#forced,
//     ceil(maxRowFraction·(qb+1)))) and their count.
//  predict_select_neuron_blocks(lists, rowCounts, scores, keyMask, N, tokenBlock, nb, coverage, limit)
//     grid nTB, block 256, dynamic smem nb·(8 + 4 + 1) bytes: one CTA per token block; nothing for a token block
//     without a real row, else the rule with nothing forced and the budget `limit`. lists (nTB, nb).
//  predict_csr_from_lists(rowPtr, colIdx, lists, rowCounts, rows, width)
//     grid 1, block 256, dynamic smem rows + 1 ints: csr_from_lists. The second, tiny kernel of each selection.
//
// csr_from_lists (device function, every thread of one CTA): each thread owns a contiguous run of rows; an exclusive
// scan of the runs' counts (Hillis-Steele in shared memory) gives rowPtr (rows + 1), kept in shared memory too; each
// thread then copies its rows' lists to colIdx, eight loads in flight before their stores. Lists and counts written
// by other CTAs of the same launch are read through L2 (ld.global.cg) after the counter's fence.
#include "common.cuh"

namespace {

constexpr int SCAN_THREADS = 256;   // threads of the CTA that builds a CSR
constexpr int POOL_THREADS = 128;   // threads of a pooling CTA, two columns each (CudaPredict.POOL_THREADS)
constexpr int POOL_ROWS = 32;       // rows staged per pass of the pooling's shared-memory path
constexpr int POOL_UNROLL = 8;      // rows of loads in flight per thread on the pooling's unaligned path
constexpr int CHUNK_ROWS = 64;    // rows of a token block per CTA of predict_neuron_blocks_bf16 (CudaPredict)
constexpr int GROUP_ROWS = 16;    // rows per thread there

// The selection rule on v[0..n) (shared memory), called by every thread of the CTA. `order` is n ints of shared
// memory; keep[i] is set for the chosen candidates (flags already set are the forced ones and stay); `limit` is the
// budget on the kept count. Ends with a barrier. The two sequential loops (the total, the visit) are one thread's,
// in the rule's order; they read GROUP entries at a time before using them, so that the loads overlap and only the
// additions form a chain.
constexpr int GROUP = 8;
__device__ void choose_by_coverage(const double* v, int* order, unsigned char* keep, int n, double coverage,
                                   int limit, double* total_shared, int* kept_shared) {
    if (threadIdx.x == 0) {
        double total = 0;
        int kept = 0;
        for (int i0 = 0; i0 < n; i0 += GROUP) {
            double g[GROUP];
            int k[GROUP];
#pragma unroll
            for (int u = 0; u < GROUP; u++) {
                g[u] = i0 + u < n ? v[i0 + u] : 0.0;
                k[u] = i0 + u < n && keep[i0 + u] ? 1 : 0;
            }
#pragma unroll
            for (int u = 0; u < GROUP; u++) {
                if (i0 + u < n) {
                    total += g[u];
                    kept += k[u];
                }
            }
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
        bool go = true;
        for (int r0 = 0; r0 < n && go; r0 += GROUP) {
            int o[GROUP];
            double g[GROUP];
            unsigned char f[GROUP];
#pragma unroll
            for (int u = 0; u < GROUP; u++) {
                o[u] = r0 + u < n ? order[r0 + u] : 0;
            }
#pragma unroll
            for (int u = 0; u < GROUP; u++) {
                g[u] = v[o[u]];
                f[u] = keep[o[u]];
            }
#pragma unroll
            for (int u = 0; u < GROUP; u++) {
                go = go && r0 + u < n && kept < limit && (coverage >= 1 || covered < target);
                if (go) {
                    if (!f[u]) {
                        keep[o[u]] = 1;
                        kept++;
                    }
                    covered += g[u];
                }
            }
        }
    }
    __syncthreads();
}


// The kept candidates of keep[0..n) (shared memory) in ascending order into list (global), by warp 0 with ballots;
// returns the count to every thread. Ends with a barrier.
__device__ int write_list(const unsigned char* keep, int n, int* list, int* count_shared) {
    if (threadIdx.x < 32) {
        int lane = threadIdx.x;
        int base = 0;
        for (int i0 = 0; i0 < n; i0 += 32) {
            int i = i0 + lane;
            bool k = i < n && keep[i];
            unsigned m = __ballot_sync(0xffffffffu, k);
            if (k) {
                list[base + __popc(m & ((1u << lane) - 1u))] = i;
            }
            base += __popc(m);
        }
        if (lane == 0) {
            *count_shared = base;
        }
    }
    __syncthreads();
    return *count_shared;
}

// Every thread of the CTA: true in the CTA that is the `total`-th to arrive at *counter (which it resets to 0).
// Each thread's global writes before the call are visible to that CTA's reads through L2 after it.
__device__ bool last_to_arrive(int* counter, int total, int* flag_shared) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int before = atomicAdd(counter, 1);
        bool last = before == total - 1;
        if (last) {
            *counter = 0;
        }
        *flag_shared = last ? 1 : 0;
    }
    __syncthreads();
    bool last = *flag_shared != 0;
    if (last) {
        __threadfence();
    }
    return last;
}

// rowPtr (rows + 1) and colIdx from per-row lists (rows, width) and counts (rows); see the header. `start` is rows + 1
// ints of shared memory, `scan` blockDim.x ints.
__device__ void csr_from_lists(int* rowPtr, int* colIdx, const int* lists, const int* counts, int rows, int width,
                               int* start, int* scan) {
    int threads = blockDim.x;
    int per = (rows + threads - 1) / threads;
    int lo = min(rows, (int) threadIdx.x * per);
    int hi = min(rows, lo + per);
    int mine = 0;
    for (int r0 = lo; r0 < hi; r0 += GROUP) {
        int c[GROUP];
#pragma unroll
        for (int u = 0; u < GROUP; u++) {
            c[u] = r0 + u < hi ? __ldcg(counts + r0 + u) : 0;
        }
#pragma unroll
        for (int u = 0; u < GROUP; u++) {
            if (r0 + u < hi) {
                start[r0 + u] = c[u];
                mine += c[u];
            }
        }
    }
    scan[threadIdx.x] = mine;
    __syncthreads();
    for (int off = 1; off < threads; off <<= 1) {
        int add = (int) threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
        __syncthreads();
        scan[threadIdx.x] += add;
        __syncthreads();
    }
    int p = scan[threadIdx.x] - mine;   // exclusive prefix of this thread's run
    for (int r = lo; r < hi; r++) {
        int c = start[r];
        start[r] = p;
        rowPtr[r] = p;
        p += c;
    }
    if (threadIdx.x == threads - 1) {
        start[rows] = scan[threadIdx.x];
        rowPtr[rows] = scan[threadIdx.x];
    }
    __syncthreads();
    int r = lo;
    int j = 0;
    while (r < hi) {
        int dst[8];
        int val[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            while (r < hi && j >= start[r + 1] - start[r]) {
                r++;
                j = 0;
            }
            dst[u] = -1;
            if (r < hi) {
                dst[u] = start[r] + j;
                val[u] = __ldcg(lists + (long long) r * width + j);
                j++;
            }
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            if (dst[u] >= 0) {
                colIdx[dst[u]] = val[u];
            }
        }
    }
}

// The attention predictor's mass row of (query block qb, head h) into agg[0..nB) (shared): p̂ of each sequence into
// rows (B·nB doubles, shared) by warps, then agg[kb] = Σ_b p̂[b][kb] in ascending b. Ends with a barrier.
__device__ void tile_mass_row(double* agg, double* rows, const bf16* qk, const int* counts, const float* gamma,
                              int B, int nB, int NH, int R, int qb, int h) {
    int warps = blockDim.x / 32;
    int warp = threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    int W = NH * R;
    double g = (double) gamma[h];
    for (int b = warp; b < B; b += warps) {
        double* row = rows + (long long) b * nB;
        if (counts[b * nB + qb] == 0) {
            continue;   // uniform over the warp: p̂ = 0 for a query block without real tokens
        }
        const bf16* q = qk + ((long long) b * nB + qb) * 2 * W + h * R;
        double m = -INFINITY;
        for (int kb = lane; kb <= qb; kb += 32) {
            int n = counts[b * nB + kb];
            if (n > 0) {
                const bf16* k = qk + ((long long) b * nB + kb) * 2 * W + W + h * R;
                double s = 0;
                for (int r = 0; r < R; r++) {
                    s += (double) __bfloat162float(q[r]) * (double) __bfloat162float(k[r]);
                }
                row[kb] = g * s + log(kb == qb ? (n + 1) / 2.0 : (double) n);
                m = fmax(m, row[kb]);
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            m = fmax(m, __shfl_xor_sync(0xffffffffu, m, off));
        }
        for (int kb = lane; kb <= qb; kb += 32) {
            row[kb] = counts[b * nB + kb] > 0 ? exp(row[kb] - m) : 0.0;
        }
        __syncwarp();
        double sum = 0;
        if (lane == 0) {
            for (int k0 = 0; k0 <= qb; k0 += GROUP) {
                double g[GROUP];
#pragma unroll
                for (int u = 0; u < GROUP; u++) {
                    g[u] = k0 + u <= qb ? row[k0 + u] : 0.0;
                }
#pragma unroll
                for (int u = 0; u < GROUP; u++) {
                    if (k0 + u <= qb) {
                        sum += g[u];
                    }
                }
            }
        }
        sum = __shfl_sync(0xffffffffu, sum, 0);
        for (int kb = lane; kb <= qb; kb += 32) {
            row[kb] = row[kb] / sum;
        }
    }
    __syncthreads();
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        double a = 0;
        if (kb <= qb) {
            for (int b = 0; b < B; b++) {
                if (counts[b * nB + qb] != 0) {
                    a += rows[(long long) b * nB + kb];
                }
            }
        }
        agg[kb] = a;
    }
    __syncthreads();
}

// The tile selection of row (h, qb) from its masses v[0..nB) (shared; entries past qb ignored): writes the list and
// count of row h·nB + qb. keep, order: nB bytes / ints of shared memory.
__device__ void select_tile_row(int* lists, int* rowCounts, double* v, int* order, unsigned char* keep, int nB,
                                int qb, int h, double coverage, double maxRowFraction, double* total_shared,
                                int* int_shared) {
    long long rowIndex = (long long) h * nB + qb;
    int n = qb + 1;
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        if (kb >= n) {
            v[kb] = 0.0;
        }
        keep[kb] = kb < n && (kb == qb || kb == 0) ? 1 : 0;
    }
    __syncthreads();
    int forced = qb == 0 ? 1 : 2;
    int limit = max(forced, (int) ceil(maxRowFraction * (double) n));
    choose_by_coverage(v, order, keep, n, coverage, limit, total_shared, int_shared);
    int c = write_list(keep, n, lists + rowIndex * nB, int_shared);
    if (threadIdx.x == 0) {
        rowCounts[rowIndex] = c;
    }
}

// The neuron-block selection of token block r from its scores v[0..nb) (shared), nothing when `real` is 0 (a block
// without real rows): writes the list and count of row r.
__device__ void select_neuron_row(int* lists, int* rowCounts, double* v, int* order, unsigned char* keep, int real,
                                  int nb, int r, double coverage, int limit, double* total_shared, int* int_shared) {
    for (int j = threadIdx.x; j < nb; j += blockDim.x) {
        keep[j] = 0;
    }
    __syncthreads();
    if (real) {
        choose_by_coverage(v, order, keep, nb, coverage, limit, total_shared, int_shared);
    }
    __syncthreads();
    int c = write_list(keep, nb, lists + (long long) r * nb, int_shared);
    if (threadIdx.x == 0) {
        rowCounts[r] = c;
    }
}

// Whether any of keyMask[t0, t1) is nonzero, for every thread of the CTA.
__device__ int any_real(const int* keyMask, int t0, int t1) {
    int anyReal = 0;
    for (int tg = t0 + threadIdx.x; tg < t1; tg += GROUP * blockDim.x) {
        int m[GROUP];
#pragma unroll
        for (int u = 0; u < GROUP; u++) {
            int t = tg + u * blockDim.x;
            m[u] = t < t1 ? keyMask[t] : 0;
        }
#pragma unroll
        for (int u = 0; u < GROUP; u++) {
            anyReal |= m[u] != 0;
        }
    }
    return __syncthreads_or(anyReal);
}

} // namespace

extern "C" __global__ void __launch_bounds__(POOL_THREADS) predict_block_mean_pool_bf16(bf16* pooled, int* counts,
        const bf16* x, const int* keyMask, int B, int T, int C, int block) {
    __shared__ __align__(16) bf16 tile[POOL_ROWS][2 * POOL_THREADS];
    __shared__ int tileMask[POOL_ROWS];
    int nB = (T + block - 1) / block;
    int row = blockIdx.x;   // b·nB + i
    if (row >= B * nB) {
        return;
    }
    int b = row / nB;
    int i = row % nB;
    int c0 = blockIdx.y * 2 * POOL_THREADS;   // the CTA's first column
    int e = c0 + 2 * threadIdx.x;             // this thread's columns e and e + 1
    int t0 = i * block;
    int t1 = min(T, t0 + block);
    double sum0 = 0;
    double sum1 = 0;
    int n = 0;
    if (C % 8 == 0 && aligned16(x)) {
        // POOL_ROWS rows of the CTA's 256 columns at a time through shared memory, all of their 16-byte loads in
        // flight together; then each thread adds its two columns in ascending t.
        for (int p0 = t0; p0 < t1; p0 += POOL_ROWS) {
            int rowsHere = min(POOL_ROWS, t1 - p0);
            __syncthreads();
#pragma unroll
            for (int u = 0; u < POOL_ROWS * 32 / POOL_THREADS; u++) {
                int g = threadIdx.x + u * POOL_THREADS;   // one 16-byte group: row g / 32, columns 8·(g % 32) + 0..7
                int rr = g / 32;
                int col = c0 + (g % 32) * 8;
                uint4 val = make_uint4(0, 0, 0, 0);
                if (rr < rowsHere && col < C) {
                    val = *reinterpret_cast<const uint4*>(x + ((long long) b * T + p0 + rr) * C + col);
                }
                *reinterpret_cast<uint4*>(&tile[rr][(g % 32) * 8]) = val;
            }
            if (threadIdx.x < POOL_ROWS) {
                tileMask[threadIdx.x] =
                        (int) threadIdx.x < rowsHere ? keyMask[(long long) b * T + p0 + threadIdx.x] : 0;
            }
            __syncthreads();
#pragma unroll 8
            for (int rr = 0; rr < rowsHere; rr++) {
                if (tileMask[rr] != 0) {
                    float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&tile[rr][2 * threadIdx.x]));
                    n++;
                    sum0 += (double) f.x;
                    sum1 += (double) f.y;
                }
            }
        }
    } else {
        // unaligned or odd widths: each thread loads its own two columns, POOL_UNROLL rows in flight
        for (int tb = t0; tb < t1; tb += POOL_UNROLL) {
            float v0[POOL_UNROLL];
            float v1[POOL_UNROLL];
            int m[POOL_UNROLL];
#pragma unroll
            for (int u = 0; u < POOL_UNROLL; u++) {
                int t = tb + u;
                long long tok = (long long) b * T + t;
                m[u] = t < t1 ? keyMask[tok] : 0;
                v0[u] = t < t1 && e < C ? __bfloat162float(x[tok * C + e]) : 0.f;
                v1[u] = t < t1 && e + 1 < C ? __bfloat162float(x[tok * C + e + 1]) : 0.f;
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

extern "C" __global__ void predict_tile_mass_bf16(double* mass, const bf16* qk, const int* counts,
                                                  const float* gamma, int B, int nB, int NH, int R) {
    extern __shared__ double smem[];
    double* rows = smem;                        // B·nB: p̂ per sequence
    double* agg = rows + (long long) B * nB;    // nB
    int qb = blockIdx.x;
    int h = blockIdx.y;
    tile_mass_row(agg, rows, qk, counts, gamma, B, nB, NH, R, qb, h);
    double* out = mass + ((long long) h * nB + qb) * nB;
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        out[kb] = agg[kb];
    }
}

extern "C" __global__ void predict_tiles_bf16(double* mass, int* lists, int* rowCounts, int* counter, int* rowPtr,
                                              int* colIdx, const bf16* qk, const int* counts, const float* gamma,
                                              int B, int nB, int NH, int R, double coverage, double maxRowFraction) {
    extern __shared__ double smem[];
    double* rows = smem;                                                   // B·nB
    double* v = rows + (long long) B * nB;                                 // nB
    int* order = reinterpret_cast<int*>(v + nB);                           // nB
    int* start = order + nB;                                               // NH·nB + 1
    unsigned char* keep = reinterpret_cast<unsigned char*>(start + NH * nB + 1);   // nB
    __shared__ double total;
    __shared__ int shared_int;
    __shared__ int scan[SCAN_THREADS];   // csr_from_lists needs blockDim.x ≤ SCAN_THREADS
    int qb = blockIdx.x;
    int h = blockIdx.y;
    tile_mass_row(v, rows, qk, counts, gamma, B, nB, NH, R, qb, h);
    double* out = mass + ((long long) h * nB + qb) * nB;
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        out[kb] = v[kb];
    }
    select_tile_row(lists, rowCounts, v, order, keep, nB, qb, h, coverage, maxRowFraction, &total, &shared_int);
    if (last_to_arrive(counter, nB * NH, &shared_int)) {
        csr_from_lists(rowPtr, colIdx, lists, rowCounts, NH * nB, nB, start, scan);
    }
}

extern "C" __global__ void predict_neuron_blocks_bf16(double* scores, unsigned long long* acc, int* realRows,
                                                      int* lists, int* rowCounts, int* counters, int* rowPtr,
                                                      int* blockIdx_, const bf16* z, const int* keyMask, int N,
                                                      int tokenBlock, int ffn, int BN, int nb, int chunks,
                                                      double coverage, int limit, int select) {
    extern __shared__ double smem[];
    double* v = smem;                                                      // nb
    int* order = reinterpret_cast<int*>(v + nb);                           // nb
    int nTB = (N + tokenBlock - 1) / tokenBlock;
    int* start = order + nb;                                               // nTB + 1
    unsigned char* keep = reinterpret_cast<unsigned char*>(start + nTB + 1);   // nb
    __shared__ double total;
    __shared__ int shared_int;
    __shared__ int scan[SCAN_THREADS];   // csr_from_lists needs blockDim.x ≤ SCAN_THREADS
    int r = blockIdx.x / chunks;
    int c = blockIdx.x % chunks;
    int t0 = r * tokenBlock + c * CHUNK_ROWS;
    int t1 = min(min(N, (r + 1) * tokenBlock), t0 + CHUNK_ROWS);
    int rowsHere = max(0, t1 - t0);
    int real = __syncthreads_count((int) threadIdx.x < rowsHere && keyMask[t0 + threadIdx.x] != 0);
    if (threadIdx.x == 0 && real > 0) {
        atomicAdd(realRows + r, real);
    }
    int groups = (rowsHere + GROUP_ROWS - 1) / GROUP_ROWS;
    for (int p = threadIdx.x; p < groups * nb; p += blockDim.x) {
        int g = p / nb;
        int j = p % nb;
        int a0 = t0 + g * GROUP_ROWS;
        float val[GROUP_ROWS];
        int m[GROUP_ROWS];
#pragma unroll
        for (int u = 0; u < GROUP_ROWS; u++) {
            int t = a0 + u;
            m[u] = t < t1 ? keyMask[t] : 0;
            val[u] = t < t1 ? __bfloat162float(z[(long long) t * nb + j]) : 0.f;
        }
        double width = (double) min(BN, ffn - j * BN);
        long long sum = 0;
#pragma unroll
        for (int u = 0; u < GROUP_ROWS; u++) {
            if (m[u] != 0) {
                sum += (long long) (fmin(fmax((double) val[u], 0.0), width) * 4294967296.0);   // · 2^32, truncated
            }
        }
        if (sum != 0) {
            atomicAdd(acc + (long long) r * nb + j, (unsigned long long) sum);
        }
    }
    if (!last_to_arrive(counters + r, chunks, &shared_int)) {
        return;
    }
    for (int j = threadIdx.x; j < nb; j += blockDim.x) {
        unsigned long long* cell = acc + (long long) r * nb + j;
        long long fixed = (long long) __ldcg(cell);
        *cell = 0ull;
        double score = (double) fixed * 0x1p-32;
        v[j] = score;
        scores[(long long) r * nb + j] = score;
    }
    if (threadIdx.x == 0) {
        shared_int = __ldcg(realRows + r);
        realRows[r] = 0;
    }
    __syncthreads();
    int anyReal = shared_int > 0;
    if (!select) {
        return;
    }
    select_neuron_row(lists, rowCounts, v, order, keep, anyReal, nb, r, coverage, limit, &total, &shared_int);
    if (last_to_arrive(counters + nTB, nTB, &shared_int)) {
        csr_from_lists(rowPtr, blockIdx_, lists, rowCounts, nTB, nb, start, scan);
    }
}

extern "C" __global__ void predict_select_tiles(int* lists, int* rowCounts, const double* mass, int nB,
                                                double coverage, double maxRowFraction) {
    extern __shared__ double smem[];
    double* v = smem;                                                      // nB
    int* order = reinterpret_cast<int*>(v + nB);                           // nB
    unsigned char* keep = reinterpret_cast<unsigned char*>(order + nB);   // nB
    __shared__ double total;
    __shared__ int shared_int;
    int qb = blockIdx.x;
    int h = blockIdx.y;
    const double* in = mass + ((long long) h * nB + qb) * nB;
    for (int kb = threadIdx.x; kb < nB; kb += blockDim.x) {
        v[kb] = kb <= qb ? in[kb] : 0.0;
    }
    select_tile_row(lists, rowCounts, v, order, keep, nB, qb, h, coverage, maxRowFraction, &total, &shared_int);
}

extern "C" __global__ void predict_select_neuron_blocks(int* lists, int* rowCounts, const double* scores,
                                                        const int* keyMask, int N, int tokenBlock, int nb,
                                                        double coverage, int limit) {
    extern __shared__ double smem[];
    double* v = smem;                                                      // nb
    int* order = reinterpret_cast<int*>(v + nb);                           // nb
    unsigned char* keep = reinterpret_cast<unsigned char*>(order + nb);   // nb
    __shared__ double total;
    __shared__ int shared_int;
    int r = blockIdx.x;
    const double* in = scores + (long long) r * nb;
    for (int j = threadIdx.x; j < nb; j += blockDim.x) {
        v[j] = in[j];
    }
    int real = any_real(keyMask, r * tokenBlock, min(N, (r + 1) * tokenBlock));
    select_neuron_row(lists, rowCounts, v, order, keep, real, nb, r, coverage, limit, &total, &shared_int);
}

extern "C" __global__ void __launch_bounds__(SCAN_THREADS) predict_csr_from_lists(int* rowPtr, int* colIdx,
        const int* lists, const int* rowCounts, int rows, int width) {
    extern __shared__ int start[];   // rows + 1
    __shared__ int scan[SCAN_THREADS];
    csr_from_lists(rowPtr, colIdx, lists, rowCounts, rows, width, start, scan);
}
