// Long Exposure's neuron-block-sparse ReLU MLP on Hopper (sm_90a): OPT's fc2(relu(fc1(x))) restricted, per token
// block, to the neuron blocks a NeuronLayout lists (org.longexposure.backend.SparseOps; CPU twin
// backend/cpu/CpuSparseMlp; design note LONG_EXPOSURE.md 6.2). Frozen weights: no weight gradient anywhere.
//
// Shapes: inp, out, dInp, dOut (N, C) bf16; W1 (H, C) and W2 (C, H) bf16 in nn.Linear's layouts, read in place;
// b1 (H), b2 (C) f32 or null; hidden (N, HW) bf16 with HW = maxBlocks·BN, the compacted post-ReLU activation (the
// only thing saved for backward). Layout: rowPtr (nTB + 1), blockIdx (nnz) int32 on the device, token block r =
// rows [r·TB, min(N, (r+1)·TB)) lists neuron blocks S_r = blockIdx[rowPtr[r] .. rowPtr[r+1]), ascending; listed
// block q of r (neuron block j = S_r[q]) is compacted column range [q·BN, (q+1)·BN), so compacted column x of
// token block r is neuron n(x) = S_r[x / BN]·BN + x mod BN. nS_r = |S_r|·BN.
//
//   forward   hidden[R, x] = relu(b1[n(x)] + inp[R, :]·W1[n(x), :])   x < nS_r;  0 for nS_r ≤ x < HW
//             out[R, :]    = b2 + Σ_{x < nS_r} hidden[R, x]·W2[:, n(x)]
//   backward  dH[R, x]     = (dOut[R, :]·W2[:, n(x)]) · (hidden[R, x] > 0)     (x < nS_r; a bf16 scratch)
//             dInp[R, :]   = Σ_{x < nS_r} dH[R, x]·W1[n(x), :]                  (overwrite)
//             dB1[n]      += Σ_r Σ_R dH[R, x] over the token blocks listing n   (f32; unlisted neurons untouched)
//             dB2         += Σ_rows dOut          (sparse_mlp_relu_grad without mask, then sparse_mlp_slab_sum)
//
// Two paths (CudaSparse picks one per call by a rule on host-known sizes; see its Javadoc and
// cuda/notes/sparse-mlp.md):
//  * gather + cuBLASLt (large token blocks, the micro-batch union): sparse_mlp_gather copies one token block's
//    listed weights into dense W1c (HW, C), W2c (C, HW), b1c (HW), zeros past nS_r; CudaSparse runs the four
//    products on cuBLASLt (strided-batched over a group of token blocks); sparse_mlp_relu_grad masks dH and sums
//    its columns per 64-row slab, and sparse_mlp_bias1_grad adds the slab sums to dB1 at the listed neurons.
//  * direct (small token blocks): the templated tensor-core GEMM below reads the weights in place.
//
// Direct: all four products are one templated tensor-core GEMM, C_tile(TM × 128) = A(TM × K) · B(K × 128), one CTA
// per (output tile, row tile): grid (ceil(ncols / 128), ceil(N / TM)), TM ∈ {64, 128} rows dividing the token block
// TB (row tile t belongs to token block t·TM / TB), 8 warps as 2 (rows) × 4
// (columns), each warp 16·MT × 32 (MT = TM / 32) in mma.sync m16n8k16 bf16 with fp32 accumulators. K runs in
// chunks of 64 through a 3-stage cp.async pipeline (16-byte copies; rows past N and columns past C zero-filled).
// A is always row-major with K contiguous (inp, hidden, dOut, dH). B is gathered by neuron block:
//   MODE 0 fc1     K = C,    n = compacted column:  B(k, n) = W1[n(n), k]      "NT": BN whole contiguous W1 rows
//   MODE 1 fc2     K = nS_r, n = output column c:   B(k, n) = W2[c, n(k)]      "NT": per c a run of 64 of a slab
//   MODE 2 dH      K = C,    n = compacted column:  B(k, n) = W2[k, n(n)]      "NN": per k a run of 8-128 of a slab
//   MODE 3 dInp    K = nS_r, n = output column c:   B(k, n) = W1[n(k), c]      "NN": per k a contiguous W1 row run
// NT tiles are stored [n][k] (read by ldmatrix), NN tiles [k][n] (read by ldmatrix.trans), so no weight is ever
// transposed or copied: every gathered piece is a run of ≥ 128 contiguous bytes (fc2: 64 bf16 of one W2 row slab),
// i.e. whole 32-byte sectors. Shared rows are padded by 8 bf16 so ldmatrix's eight 16-byte rows hit distinct banks.
// The list of a K chunk (MODE 1, 3) is one broadcast load per chunk; a thread's gathered row/column in MODE 0, 2 is
// fixed over the K loop and resolved once. Each K chunk of 64 lies inside one neuron block (BN ∈ {64, 128}).
//
// Epilogues: fc1 adds b1 in fp32, applies ReLU, rounds to bf16, and writes 0 to the compacted columns past nS_r
// (whole tiles past nS_r skip the K loop); fc2 adds b2 in fp32 (a token block with no listed block writes b2);
// dH reads hidden for the ReLU mask, writes bf16 dH, and (when dB1 is wanted) the fp32 column sums of the masked
// dH over the tile's rows into partial (row tiles, HW) in a fixed order (thread rows, warp shuffles, then the two
// row warps); sparse_mlp_bias1_grad then adds, per neuron, the partials of the row tiles whose token block lists
// it, in tile order: deterministic, no float atomics. dInp rounds once to bf16.
//
// Robustness: the layout is read on the device and not validated (a host check would cost a round trip per
// layer), but a row's block count is clamped to HW / BN and block ids to [0, H/BN), so a malformed layout gives
// wrong numbers, never an out-of-bounds access.
//
// Kernels (TM ∈ {64, 128} is the suffix; every GEMM kernel: block 256, dynamic smem 3·(TM·72 + 128·72)·2 bytes
// for fc1/fc2 and 3·(TM·72 + 64·136)·2 for dH/dInp; CudaSparse computes the same numbers):
//  sparse_mlp_fc1_tmTM(inp, W1, b1, rowPtr, blockList, hidden, N, C, H, BN, HW, TB)      grid (ceil(HW/128), tiles)
//  sparse_mlp_fc2_tmTM(hidden, W2, b2, residual, rowPtr, blockList, out, N, C, H, BN, HW, TB)
//                                                                                        grid (ceil(C/128), tiles)
//  sparse_mlp_dhidden_tmTM(dOut, W2, hidden, rowPtr, blockList, dH, partial, N, C, H, BN, HW, TB)
//                                                                                        grid (ceil(HW/128), tiles)
//  sparse_mlp_dinp_tmTM(dH, W1, rowPtr, blockList, dInp, N, C, H, BN, HW, TB)            grid (ceil(C/128), tiles)
//  sparse_mlp_bias1_grad(dB1, partial, rowPtr, blockList, r0, tiles, tilesPerTB, H, BN, HW)
//                                                                                        any grid over H threads
// Gather path and shared passes (each documented at its definition):
//  sparse_mlp_gather(W1, W2, b1, rowPtr, blockList, r0, W1c, W2c, b1c, strideW, strideB, C, H, BN, HW)
//                                                                                        grid (any, 2 or 3, group)
//  sparse_mlp_relu_grad(dH, hidden, partial, rows, HW, TB)               block (32, 8), grid (ceil(HW/256), slabs)
//  sparse_mlp_slab_sum(dB, partial, slabs, cols)                             any grid over cols (dB2 after a
//                                                                            relu_grad pass over dOut without mask)
//  sparse_mlp_bias_rows(out, b2, residual, N, C)                                          any grid (HW = 0 layers)
#include "mma.cuh"

namespace {

constexpr int kTN = 128;          // output columns per CTA
constexpr int kBK = 64;           // K per pipeline stage (inside one neuron block: BN ∈ {64, 128})
constexpr int kStages = 3;
constexpr int kThreads = 256;
constexpr int kLdK = kBK + 8;     // [row][k] tiles: A, and B in NT modes
constexpr int kLdN = kTN + 8;     // [k][n] tiles: B in NN modes

constexpr int kFc1 = 0, kFc2 = 1, kDh = 2, kDinp = 3;

struct Params {
    const bf16* a;        // A (N, lda), K contiguous
    int lda;
    const bf16* w;        // W1 (H, C) or W2 (C, H)
    int ldw;
    const int* rowPtr;
    const int* blockIdx;
    const float* bias;    // fc1: b1 (H), fc2: b2 (C), or null
    const bf16* hidden;   // dH: the ReLU mask source (N, HW); fc2: the residual (N, C) added to out, or null
    bf16* out;            // hidden (N, HW), out (N, C), dH (N, HW), dInp (N, C)
    int ldo;
    float* partial;       // dH: (row tiles, HW) column sums, or null
    int N, C, H, BN, HW;
    int TB;               // rows per token block, a multiple of the row tile TM
};

// Neuron of compacted column x of a token block whose list starts at list (count entries, clamped by the caller).
__device__ __forceinline__ int neuron_of(const int* list, int x, int bn, int nb) {
    int j = __ldg(list + x / bn);
    j = min(max(j, 0), nb - 1);
    return j * bn + x % bn;
}

template <int MODE, int TM>
__device__ __forceinline__ void sparse_mlp_gemm(const Params& p) {
    constexpr bool NN = MODE == kDh || MODE == kDinp;          // B tile stored [k][n]
    constexpr bool COMPACT_N = MODE == kFc1 || MODE == kDh;    // output columns are compacted neurons
    constexpr int MT = TM / 32;                       // 16-row tiles per warp (2 warps over the rows)
    constexpr int A_ELEMS = TM * kLdK;
    constexpr int B_ELEMS = NN ? kBK * kLdN : kTN * kLdK;
    constexpr int STAGE = A_ELEMS + B_ELEMS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16* smem = reinterpret_cast<bf16*>(smem_raw);

    const int tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;
    const int tile = blockIdx.y;                      // row tile; its token block is r
    const int n0 = blockIdx.x * kTN;
    const int row0 = tile * TM;
    const int r = row0 / p.TB;
    const int nb = p.H / p.BN;
    const int p0 = __ldg(p.rowPtr + r);
    const int cnt = max(0, min(__ldg(p.rowPtr + r + 1) - p0, p.HW / p.BN));
    const int ns = cnt * p.BN;
    const int* list = p.blockIdx + p0;
    const int K = COMPACT_N ? p.C : ns;

    if (COMPACT_N && n0 >= ns) {
        // A tile past the token block's listed neurons: fc1 writes its zeros, dH has nothing to do.
        if (MODE == kFc1) {
            const int cols = min(kTN, p.HW - n0);
            for (int c = tid; c < TM * (kTN / 8); c += kThreads) {
                int rr = c / (kTN / 8), cc = (c % (kTN / 8)) * 8;
                int row = row0 + rr;
                if (row < p.N && cc < cols) {
                    *reinterpret_cast<uint4*>(p.out + (size_t)row * p.ldo + n0 + cc) = make_uint4(0, 0, 0, 0);
                }
            }
        }
        return;
    }

    // Per-thread gather targets fixed over the K loop (MODE 0: B rows; MODE 2: B column runs).
    // NT B tile: 128 rows × CPK chunks of 8, NN B tile: 64 rows × 16 chunks; BCH chunks per thread, chunk
    // i = tid + 256·s -> NT row i / CPK, chunk i % CPK; NN row i / 16, chunk i % 16.
    constexpr int CPK = kBK / 8;
    constexpr int BCH = kTN * CPK / kThreads;
    const bf16* bFixed[BCH];
    bool bOk[BCH];
#pragma unroll
    for (int s = 0; s < BCH; ++s) {
        int i = tid + kThreads * s;
        if (MODE == kFc1) {
            int n = n0 + i / CPK;
            bOk[s] = n < ns;
            bFixed[s] = p.w + (size_t)(bOk[s] ? neuron_of(list, n, p.BN, nb) : 0) * p.ldw;
        } else if (MODE == kDh) {
            int n = n0 + (i % 16) * 8;
            bOk[s] = n < ns;
            bFixed[s] = p.w + (bOk[s] ? neuron_of(list, n, p.BN, nb) : 0);
        } else {
            bOk[s] = true;
            bFixed[s] = p.w;
        }
    }

    auto load_stage = [&](int stage, int k0) {
        bf16* aS = smem + stage * STAGE;
        bf16* bS = aS + A_ELEMS;
        // A: TM rows × kBK columns of the row-major activation.
#pragma unroll
        for (int s = 0; s < TM * CPK / kThreads; ++s) {
            int i = tid + kThreads * s;
            int rr = i / CPK, cc = (i % CPK) * 8;
            int row = row0 + rr, col = k0 + cc;
            bool ok = row < p.N && col < K;
            cp_async16(smem_addr(aS + rr * kLdK + cc), p.a + (ok ? (size_t)row * p.lda + col : 0), ok);
        }
        int kBase = 0;  // MODE 1, 3: the chunk's first neuron (the chunk lies in one neuron block)
        if (MODE == kFc2 || MODE == kDinp) {
            kBase = neuron_of(list, k0, p.BN, nb);
        }
#pragma unroll
        for (int s = 0; s < BCH; ++s) {
            int i = tid + kThreads * s;
            if (MODE == kFc1) {            // [n][k]: W1 row n(n0 + n), columns k0 + cc
                int n = i / CPK, cc = (i % CPK) * 8;
                bool ok = bOk[s] && k0 + cc < p.C;
                cp_async16(smem_addr(bS + n * kLdK + cc), bFixed[s] + (ok ? k0 + cc : 0), ok);
            } else if (MODE == kFc2) {     // [n][k]: W2 row c = n0 + n, columns n(k0) + cc
                int n = i / CPK, cc = (i % CPK) * 8;
                int c = n0 + n;
                bool ok = c < p.C;
                cp_async16(smem_addr(bS + n * kLdK + cc), p.w + (ok ? (size_t)c * p.ldw + kBase + cc : 0), ok);
            } else if (MODE == kDh) {      // [k][n]: W2 row k0 + k, columns n(n0 + nc)
                int k = i / 16, nc = (i % 16) * 8;
                bool ok = bOk[s] && k0 + k < p.C;
                cp_async16(smem_addr(bS + k * kLdN + nc), bFixed[s] + (ok ? (size_t)(k0 + k) * p.ldw : 0), ok);
            } else {                       // [k][n]: W1 row n(k0) + k, columns n0 + nc
                int k = i / 16, nc = (i % 16) * 8;
                bool ok = n0 + nc < p.C;
                cp_async16(smem_addr(bS + k * kLdN + nc),
                           p.w + (ok ? (size_t)(kBase + k) * p.ldw + n0 + nc : 0), ok);
            }
        }
    };

    float acc[MT][4][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;

    const int nk = (K + kBK - 1) / kBK;
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < nk) load_stage(s, s * kBK);
        cp_async_commit();
    }
    for (int kt = 0; kt < nk; ++kt) {
        cp_async_wait<kStages - 2>();
        __syncthreads();
        int nxt = kt + kStages - 1;
        if (nxt < nk) load_stage(nxt % kStages, nxt * kBK);
        cp_async_commit();

        const bf16* aS = smem + (kt % kStages) * STAGE;
        const bf16* bS = aS + A_ELEMS;
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk) {
            u32 a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                ldsm_x4(smem_addr(aS + (wm * (TM / 2) + mt * 16 + (lane & 15)) * kLdK + kk * 16 + (lane >> 4) * 8),
                        a[mt][0], a[mt][1], a[mt][2], a[mt][3]);
            }
#pragma unroll
            for (int np = 0; np < 2; ++np) {
                u32 b0, b1, b2, b3;
                if (NN) {
                    ldsm_x4_t(smem_addr(bS + (kk * 16 + (lane & 15)) * kLdN + wn * 32 + np * 16 + (lane >> 4) * 8),
                              b0, b1, b2, b3);
                } else {
                    ldsm_x4(smem_addr(bS + (wn * 32 + np * 16 + (lane & 7) + (lane >> 4) * 8) * kLdK + kk * 16
                                      + ((lane >> 3) & 1) * 8),
                            b0, b1, b2, b3);
                }
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    mma16816(acc[mt][2 * np], a[mt], b0, b1);
                    mma16816(acc[mt][2 * np + 1], a[mt], b2, b3);
                }
            }
        }
    }
    cp_async_wait<0>();

    // ---- epilogue: thread (g, t) holds rows wm·TM/2 + 16·mt + g (+8), columns wn·32 + 8·nt + 2t (+1)
    const int g = lane >> 2, t = lane & 3;
    float colSum[4][2];
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) colSum[nt][0] = colSum[nt][1] = 0.f;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
        const int col = n0 + wn * 32 + nt * 8 + 2 * t;
        float bias0 = 0.f, bias1 = 0.f;
        if (MODE == kFc1) {
            if (col >= p.HW) continue;
            if (col < ns && p.bias != nullptr) {
                int nrn = neuron_of(list, col, p.BN, nb);  // col and col + 1 share a block (BN even)
                bias0 = p.bias[nrn];
                bias1 = p.bias[nrn + 1];
            }
        } else if (MODE == kFc2) {
            if (col >= p.C) continue;
            if (p.bias != nullptr) {
                bias0 = p.bias[col];
                bias1 = p.bias[col + 1];
            }
        } else if (MODE == kDh) {
            if (col >= ns) continue;
        } else {
            if (col >= p.C) continue;
        }
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                const int row = row0 + wm * (TM / 2) + mt * 16 + g + 8 * hf;
                if (row >= p.N) continue;
                float v0 = acc[mt][nt][2 * hf], v1 = acc[mt][nt][2 * hf + 1];
                if (MODE == kFc1) {
                    if (col < ns) {
                        v0 = fmaxf(v0 + bias0, 0.f);
                        v1 = fmaxf(v1 + bias1, 0.f);
                    } else {
                        v0 = v1 = 0.f;
                    }
                } else if (MODE == kFc2) {
                    v0 += bias0;
                    v1 += bias1;
                    if (p.hidden != nullptr) {
                        // out = hidden·W2_Sᵀ + b2 + residual, summed in fp32 and rounded once
                        __nv_bfloat162 res =
                            *reinterpret_cast<const __nv_bfloat162*>(p.hidden + (size_t)row * p.ldo + col);
                        v0 += __low2float(res);
                        v1 += __high2float(res);
                    }
                } else if (MODE == kDh) {
                    __nv_bfloat162 h = *reinterpret_cast<const __nv_bfloat162*>(p.hidden + (size_t)row * p.ldo + col);
                    if (!(__low2float(h) > 0.f)) v0 = 0.f;
                    if (!(__high2float(h) > 0.f)) v1 = 0.f;
                    colSum[nt][0] += v0;
                    colSum[nt][1] += v1;
                }
                *reinterpret_cast<u32*>(p.out + (size_t)row * p.ldo + col) = pack_bf16(v0, v1);
            }
        }
    }
    if (MODE == kDh && p.partial != nullptr) {
        // Column sums over the tile's rows: lanes with equal t (xor over g), then the two row warps in order.
        __syncthreads();  // pipeline smem is free (all groups drained above): reuse it as red[2][128]
        float* red = reinterpret_cast<float*>(smem_raw);
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                float s = colSum[nt][e];
                s += __shfl_xor_sync(0xffffffffu, s, 4);
                s += __shfl_xor_sync(0xffffffffu, s, 8);
                s += __shfl_xor_sync(0xffffffffu, s, 16);
                if (g == 0) red[wm * kTN + wn * 32 + nt * 8 + 2 * t + e] = s;
            }
        }
        __syncthreads();
        if (tid < kTN && n0 + tid < ns) {
            p.partial[(size_t)tile * p.HW + n0 + tid] = red[tid] + red[kTN + tid];
        }
    }
}

}  // namespace

#define SPARSE_MLP_KERNELS(TM)                                                                                     \
    extern "C" __global__ void __launch_bounds__(kThreads, 2) sparse_mlp_fc1_tm##TM(                                 \
        const bf16* inp, const bf16* w1, const float* b1, const int* rowPtr, const int* blockList, bf16* hidden,    \
        int N, int C, int H, int BN, int HW, int TB) {                                                             \
        Params p{inp, C, w1, C, rowPtr, blockList, b1, nullptr, hidden, HW, nullptr, N, C, H, BN, HW, TB};         \
        sparse_mlp_gemm<kFc1, TM>(p);                                                                              \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(kThreads, 2) sparse_mlp_fc2_tm##TM(                                 \
        const bf16* hidden, const bf16* w2, const float* b2, const bf16* residual, const int* rowPtr,               \
        const int* blockList, bf16* out, int N, int C, int H, int BN, int HW, int TB) {                            \
        Params p{hidden, HW, w2, H, rowPtr, blockList, b2, residual, out, C, nullptr, N, C, H, BN, HW, TB};        \
        sparse_mlp_gemm<kFc2, TM>(p);                                                                              \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(kThreads, 2) sparse_mlp_dhidden_tm##TM(                             \
        const bf16* dOut, const bf16* w2, const bf16* hidden, const int* rowPtr, const int* blockList, bf16* dH,    \
        float* partial, int N, int C, int H, int BN, int HW, int TB) {                                             \
        Params p{dOut, C, w2, H, rowPtr, blockList, nullptr, hidden, dH, HW, partial, N, C, H, BN, HW, TB};        \
        sparse_mlp_gemm<kDh, TM>(p);                                                                               \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(kThreads, 2) sparse_mlp_dinp_tm##TM(                                \
        const bf16* dH, const bf16* w1, const int* rowPtr, const int* blockList, bf16* dInp, int N, int C, int H,   \
        int BN, int HW, int TB) {                                                                                  \
        Params p{dH, HW, w1, C, rowPtr, blockList, nullptr, nullptr, dInp, C, nullptr, N, C, H, BN, HW, TB};       \
        sparse_mlp_gemm<kDinp, TM>(p);                                                                             \
    }

SPARSE_MLP_KERNELS(64)
SPARSE_MLP_KERNELS(128)

// dB1[n] += Σ over the tiles t < nTiles (in order) of partial[t, q·BN + n mod BN], where tile t belongs to token
// block r = r0 + t / tilesPerTB and r lists neuron block j = n / BN at position q; neurons no such token block lists
// are left untouched. Tiles are the direct kernels' row tiles (r0 = 0, tilesPerTB = TB / TM) or the 64-row slabs
// of sparse_mlp_relu_grad over a group of token blocks. One thread per neuron; the position is a binary search in
// r's ascending list, once per token block.
extern "C" __global__ void __launch_bounds__(256) sparse_mlp_bias1_grad(float* dB1, const float* partial,
                                                                       const int* rowPtr, const int* blockList,
                                                                       int r0, int nTiles, int tilesPerTB, int H,
                                                                       int BN, int HW) {
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < H; n += gridDim.x * blockDim.x) {
        const int j = n / BN, t = n % BN;
        const int maxCount = HW / BN;
        float s = 0.f;
        bool touched = false;
        int lastR = -1, pos = -1;
        for (int tile = 0; tile < nTiles; ++tile) {
            const int r = r0 + tile / tilesPerTB;
            if (r != lastR) {
                lastR = r;
                int lo = rowPtr[r];
                int cnt = min(rowPtr[r + 1] - lo, maxCount);
                int a = 0, b = cnt;  // first position with blockIdx >= j
                while (a < b) {
                    int m = (a + b) >> 1;
                    if (blockList[lo + m] < j) a = m + 1; else b = m;
                }
                pos = a < cnt && blockList[lo + a] == j ? a : -1;
            }
            if (pos >= 0) {
                s += partial[(size_t) tile * HW + pos * BN + t];
                touched = true;
            }
        }
        if (touched) dB1[n] += s;
    }
}

// ---- gather path: the listed weights copied into dense operands for cuBLASLt (CudaSparse drives the GEMMs)

// The operands of token block r = r0 + blockIdx.z, item z of a group (W1c, W2c at z·strideW, b1c at z·strideB
// elements), zero past its nS_r = cnt·BN listed neurons (cnt clamped to HW / BN):
//   W1c (HW, C):  W1c[x, :] = W1[n(x), :]            (y = 0; a listed block is BN contiguous W1 rows)
//   W2c (C, HW):  W2c[c, x] = W2[c, n(x)]            (y = 1; per W2 row, cnt runs of BN contiguous elements)
//   b1c (HW):     b1c[x]    = bf16(b1[n(x)]), or 0   (y = 2; skipped when b1c is null; b1 null gives zeros)
// 16-byte moves (C and BN multiples of 8, so a move never straddles a neuron block), grid-stride over the flat
// index of the 8-element chunks (HW·C / 8 < 2^31, checked by the caller). grid (any, 2 or 3, group size),
// block 256.
extern "C" __global__ void __launch_bounds__(256) sparse_mlp_gather(const bf16* __restrict__ w1,
                                                                   const bf16* __restrict__ w2,
                                                                   const float* __restrict__ b1, const int* rowPtr,
                                                                   const int* blockList, int r0,
                                                                   bf16* __restrict__ w1c, bf16* __restrict__ w2c,
                                                                   bf16* __restrict__ b1c, long long strideW,
                                                                   long long strideB, int C, int H, int BN, int HW) {
    const int nb = H / BN;
    const int r = r0 + blockIdx.z;
    w1c += blockIdx.z * strideW;
    w2c += blockIdx.z * strideW;
    if (b1c != nullptr) b1c += blockIdx.z * strideB;
    const int p0 = __ldg(rowPtr + r);
    const int cnt = max(0, min(__ldg(rowPtr + r + 1) - p0, HW / BN));
    const int ns = cnt * BN;
    const int* list = blockList + p0;
    const int stride = gridDim.x * blockDim.x;
    const int start = blockIdx.x * blockDim.x + threadIdx.x;
    if (blockIdx.y == 0) {
        const int cpr = C / 8;
        const int total = HW * cpr;
        for (int i = start; i < total; i += stride) {
            const int x = i / cpr;
            const int k = (i - x * cpr) * 8;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (x < ns) {
                v = __ldg(reinterpret_cast<const uint4*>(w1 + (size_t) neuron_of(list, x, BN, nb) * C + k));
            }
            *reinterpret_cast<uint4*>(w1c + (size_t) x * C + k) = v;
        }
    } else if (blockIdx.y == 1) {
        const int cpr = HW / 8;
        const int total = C * cpr;
        for (int i = start; i < total; i += stride) {
            const int c = i / cpr;
            const int x = (i - c * cpr) * 8;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (x < ns) {
                v = __ldg(reinterpret_cast<const uint4*>(w2 + (size_t) c * H + neuron_of(list, x, BN, nb)));
            }
            *reinterpret_cast<uint4*>(w2c + (size_t) c * HW + x) = v;
        }
    } else if (b1c != nullptr) {
        for (int x = start; x < HW; x += stride) {
            float b = 0.f;
            if (x < ns && b1 != nullptr) b = b1[neuron_of(list, x, BN, nb)];
            b1c[x] = __float2bfloat16_rn(b);
        }
    }
}

constexpr int kSlab = 64;  // rows per partial column sum of sparse_mlp_relu_grad

// ReLU backward over a group's compacted gradient, in place, with the bias gradient's column sums:
//   dH[i, x] = 0 where !(hidden[i, x] > 0)        dH, hidden (rows, HW) bf16 row-major, HW a multiple of 8
//   partial[y, x] = Σ_{i in slab y} dH[i, x]       f32 (gridDim.y, HW), or nothing when partial is null
// The rows are token blocks of TB rows (the last may be shorter); each is cut into slabsPerTB = ceil(TB' / 64)
// slabs, TB' = min(TB, rows), so slab y is rows [b·TB + s·64, min(b·TB + min((s+1)·64, TB), rows)) with
// b = y / slabsPerTB, s = y mod slabsPerTB: no slab crosses a token block. With hidden null nothing is masked or
// written: plain column sums (dB2 = Σ_rows dOut). block (32, 8): thread (tx, ty) owns columns 8·(32·bx + tx) .. +8
// and rows ty, ty + 8, ... of its slab; the 8 row groups are added in a fixed order through shared memory:
// deterministic, no atomics. grid (ceil(HW / 256), number of token blocks · slabsPerTB).
extern "C" __global__ void __launch_bounds__(256) sparse_mlp_relu_grad(bf16* __restrict__ dH,
                                                                      const bf16* __restrict__ hidden,
                                                                      float* __restrict__ partial, int rows, int HW,
                                                                      int TB) {
    __shared__ float red[8][256];
    const int x = (blockIdx.x * 32 + threadIdx.x) * 8;
    const int slabsPerTB = (min(TB, rows) + kSlab - 1) / kSlab;
    const int b = blockIdx.y / slabsPerTB, sl = blockIdx.y % slabsPerTB;
    const long long tb0 = (long long) b * TB;
    const int r0 = (int) min((long long) rows, tb0 + (long long) sl * kSlab);
    const int r1 = (int) min((long long) rows, tb0 + min((sl + 1) * kSlab, TB));
    float s[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) s[k] = 0.f;
    if (x < HW) {
        for (int i = r0 + threadIdx.y; i < r1; i += 8) {
            const size_t off = (size_t) i * HW + x;
            uint4 g = *reinterpret_cast<const uint4*>(dH + off);
            __nv_bfloat162* gp = reinterpret_cast<__nv_bfloat162*>(&g);
            if (hidden != nullptr) {
                const uint4 h = __ldg(reinterpret_cast<const uint4*>(hidden + off));
                const __nv_bfloat162* hp = reinterpret_cast<const __nv_bfloat162*>(&h);
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    float2 gv = __bfloat1622float2(gp[k]);
                    const float2 hv = __bfloat1622float2(hp[k]);
                    if (!(hv.x > 0.f)) gv.x = 0.f;
                    if (!(hv.y > 0.f)) gv.y = 0.f;
                    s[2 * k] += gv.x;
                    s[2 * k + 1] += gv.y;
                    gp[k] = __floats2bfloat162_rn(gv.x, gv.y);  // exact: gv is a bf16 value or 0
                }
                *reinterpret_cast<uint4*>(dH + off) = g;
            } else {
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    const float2 gv = __bfloat1622float2(gp[k]);
                    s[2 * k] += gv.x;
                    s[2 * k + 1] += gv.y;
                }
            }
        }
    }
    if (partial == nullptr) return;
#pragma unroll
    for (int k = 0; k < 8; ++k) red[threadIdx.y][threadIdx.x * 8 + k] = s[k];
    __syncthreads();
    const int c = threadIdx.y * 32 + threadIdx.x;
    const int col = blockIdx.x * 256 + c;
    if (col < HW) {
        float sum = 0.f;
#pragma unroll
        for (int y = 0; y < 8; ++y) sum += red[y][c];
        partial[(size_t) blockIdx.y * HW + col] = sum;
    }
}

// dB[x] += Σ_{s < slabs} partial[s, x] (slabs in order), x < cols: the second pass of a column sum. Any grid.
extern "C" __global__ void __launch_bounds__(256) sparse_mlp_slab_sum(float* dB, const float* partial, int slabs,
                                                                     int cols) {
    for (int x = blockIdx.x * blockDim.x + threadIdx.x; x < cols; x += gridDim.x * blockDim.x) {
        float s = 0.f;
        for (int k = 0; k < slabs; ++k) s += partial[(size_t) k * cols + x];
        dB[x] += s;
    }
}

// out[i, j] = bf16(b2[j] + residual[i, j]) over (N, C): the MLP of a layout that computes no neuron (HW = 0); b2
// and residual may each be null (then 0). residual may be out itself (each element is read before it is written).
// Grid-stride.
extern "C" __global__ void __launch_bounds__(256) sparse_mlp_bias_rows(bf16* out, const float* __restrict__ b2,
                                                                      const bf16* residual, int N, int C) {
    const long long total = (long long) N * C;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < total;
         i += (long long) gridDim.x * blockDim.x) {
        float v = b2 != nullptr ? b2[i % C] : 0.f;
        if (residual != nullptr) v += __bfloat162float(residual[i]);
        out[i] = __float2bfloat16_rn(v);
    }
}
