// Fused causal multi-head attention for Hopper (sm_90a), forward and backward, FlashAttention-2 style
// (Dao 2023, Algorithms 1 and 2), dense and block-sparse with one set of kernels: every CTA walks a LIST of
// 64×64 tiles. Dense attention is the implicit causal list; Long Exposure's block-sparse attention passes a
// BlockLayout (CSR over the NH·nQB query-block rows, ascending key blocks ≤ the row's query block) and, for the
// dK/dV pass, its transpose (CSC over the NH·nKB key-block columns, ascending query blocks), which
// attention_layout_transpose below builds on the device from the CSR.
//
// Semantics (org.longexposure.backend.AttentionOps / SparseOps, CPU twin backend/cpu/FlashAttentionKernel):
//   q, k, v, out, dQ, dK, dV, dOut: (B, T, C) bf16, C = NH·HS, head h = columns [h·HS, (h+1)·HS), row stride C.
//   keyMask (B, T) int32: key j of sequence b is visible iff keyMask[b, j] != 0 (null pointer = all visible).
//   Query i sees key j iff j ≤ i, j visible, and (sparse) the tile (i / 64, j / 64) is listed for head h.
//   out_i = Σ_j softmax_j(scale·q_i·k_j)·v_j;  lse (B, NH, T) f32 = log Σ_j exp(scale·q_i·k_j) (saved).
//   A query with no visible key: out = 0, lse = −inf, and no gradient flows through it.
// Numerics: bf16 operands on the tensor cores (mma.sync m16n8k16, fp32 accumulators); softmax statistics in
// fp32, exponentials as exp2 of log2e-scaled scores (scale > 0, so the row max commutes with the scaling and
// p = exp2(s·scale·log2e − m) is one fused multiply-add and one ex2); P and dS are rounded to bf16 for their
// products (as FlashAttention does); row sums of P in fp32 before rounding.
//
// Tiles: BQ = BK = 64 rows, 4 warps (128 threads) per CTA, each warp owning 16 rows of the CTA's tile (query rows
// in the forward and dQ pass, key rows in the dK/dV pass), so the softmax and the gradient recurrences stay in
// registers and warps never exchange data. Shared-memory tiles are row-major with rows padded by 8 bf16 (16 bytes)
// so that ldmatrix's eight 16-byte row reads hit eight disjoint bank groups for every HS in {32, 64, 80, 96, 128}.
// Global tiles move with 16-byte cp.async (rows past T zero-filled), double-buffered: the next tile streams in
// while the current one is multiplied. Masking (causal, padding, past T, as a 64-bit key bitmap per tile) runs in
// a branch that is uniform over the warp and skipped for tiles every row of the warp sees whole: almost all tiles
// of a long sequence. The device functions are templated on MT (16-row tiles per warp) and NW (warps per CTA) for
// the benchmark variants below; every production entry point is MT = 1, NW = 4.
//
// Kernels (HS ∈ {32, 64, 80, 96, 128} is a suffix: ..._hs64). nQB = nKB = ceil(T / 64), Tp = 64·nQB.
//  attention_forward_bf16_hsHS(q, k, v, out, lse, keyMask, rowPtr, colIdx, T, NH, scale)
//     grid (NH, B, nQB), block 128, dynamic smem (64 + 4·64)·(HS + 8)·2 bytes (Q tile, 2×K, 2×V).
//     rowPtr == null: dense causal, key blocks 0..qb. Else CSR layout rowPtr (NH·nQB + 1), colIdx (nnz).
//     Reads q, k, v, keyMask, the layout; writes out rows < T and lse. blockIdx.z runs over query blocks from the
//     last (heaviest) to the first.
//  attention_backward_prep_bf16_hsHS(dOut, out, lse, dPad, lse2Pad, B, T, NH)
//     any grid (grid-stride over B·NH·Tp threads, one per (b, h, t), t fastest), block 256 (a multiple of 32),
//     no smem. Writes the f32 scratch (B, NH, Tp) arrays
//     dPad[i] = D_i = Σ_d dOut_i[d]·out_i[d] (0 for i ≥ T) and lse2Pad[i] = lse_i·log2(e), replaced by +∞ when
//     lse_i = −∞ or i ≥ T (so that exp2(s − lse2) = 0 there without a branch). 2·B·NH·Tp floats of scratch.
//  attention_backward_bf16_hsHS(q, k, v, dOut, keyMask, lse2Pad, dPad, rowPtr, colIdx, dQ, dK, dV, T, NH, scale)
//     grid (NH, B, 2·nQB), block 128, dynamic smem 6·64·(HS + 8)·2 + 4·64·4 bytes. Both gradient passes in one
//     launch: even blockIdx.z = 2i is the dK/dV CTA of key block i, odd 2i + 1 the dQ CTA of query block nQB−1−i.
//     dK/dV CTA (K, V, 2×Q, 2×dOut, 2×lse2, 2×D in smem): rowPtr == null: dense, query blocks kb..nQB−1; else
//     the query blocks whose CSR row lists kb, ascending (ColumnWalk: binary searches of the rows, 32 at a time).
//     Each warp owns 16 keys: S^T = K·Q^T, P^T, dP^T = V·dOut^T, dS^T = P^T∘(dP^T − D), dV += P^T·dOut,
//     dK += dS^T·Q, then dK·scale. Writes dK, dV rows < T (zero for keys no query sees).
//     dQ CTA (Q, dOut, 2×K, 2×V in smem): same list as the forward. Each warp owns 16 queries: recomputes S and
//     dP, dQ += dS·K, then dQ·scale. Writes dQ rows < T.
// The two gradient passes recompute S and dP instead of accumulating dQ with float atomics: deterministic
// results, bit-identical run to run, at the cost of two extra tile products per tile.
#include "mma.cuh"

typedef unsigned long long u64;

namespace {

constexpr int kTile = 64;      // BQ = BK = the BlockLayout block size
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ROWS rows of one head (HS bf16 each) starting at token row0 of the (T, C) matrix at g into a padded shared tile.
template <int HS, int ROWS, int NT>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* g, int row0, int T, int C) {
    constexpr int CPR = HS / 8;
    constexpr int LD = HS + 8;
#pragma unroll
    for (int c = threadIdx.x; c < ROWS * CPR; c += NT) {
        int r = c / CPR;
        int cc = c - r * CPR;
        int t = row0 + r;
        bool ok = t < T;
        const bf16* src = g + (size_t)(ok ? t : 0) * C + cc * 8;
        cp_async16(smem_addr(s + r * LD + cc * 8), src, ok);
    }
}

// 64 f32 of a padded (Tp) statistics row.
__device__ __forceinline__ void load_stats(float* s, const float* g) {
    if (threadIdx.x < 16) cp_async16(smem_addr(s + threadIdx.x * 4), g + threadIdx.x * 4, true);
}

// A warp's 16 rows × HS of a padded shared tile (rows row0..row0+15) as HS/16 A fragments.
template <int HS>
__device__ __forceinline__ void load_a_frags(u32 (*f)[4], const bf16* s, int row0, int lane) {
    constexpr int LD = HS + 8;
#pragma unroll
    for (int kk = 0; kk < HS / 16; ++kk) {
        u32 a = smem_addr(s + (row0 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
        ldsm_x4(a, f[kk][0], f[kk][1], f[kk][2], f[kk][3]);
    }
}

// acc[mt](16×64) += A[mt](16×HS) · Bᵀ for MT row tiles of 16, where B is a 64×HS shared tile (rows = the 64 output
// columns): the score products. Each B fragment is loaded once and used by all MT row tiles. A fragments from
// registers (af) or, when AREG is false, from shared rows aRow0 + MSTEP·mt.. of aS.
template <int HS, int MT, bool AREG, int MSTEP>
__device__ __forceinline__ void mma_abt(float (*acc)[8][4], const u32 (*af)[HS / 16][4], const bf16* aS,
                                        int aRow0, const bf16* bS, int lane) {
    constexpr int LD = HS + 8;
#pragma unroll
    for (int kk = 0; kk < HS / 16; ++kk) {
        u32 a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            if constexpr (AREG) {
                a[mt][0] = af[mt][kk][0]; a[mt][1] = af[mt][kk][1];
                a[mt][2] = af[mt][kk][2]; a[mt][3] = af[mt][kk][3];
            } else {
                ldsm_x4(smem_addr(aS + (aRow0 + mt * MSTEP + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8),
                        a[mt][0], a[mt][1], a[mt][2], a[mt][3]);
            }
        }
#pragma unroll
        for (int np = 0; np < 4; ++np) {
            u32 b0, b1, b2, b3;
            ldsm_x4(smem_addr(bS + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8),
                    b0, b1, b2, b3);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma16816(acc[mt][2 * np], a[mt], b0, b1);
                mma16816(acc[mt][2 * np + 1], a[mt], b2, b3);
            }
        }
    }
}

// acc[mt](16×HS) += P[mt](16×64, C fragments rounded to bf16) · B where B is a 64×HS shared tile (rows = the 64
// keys); each B fragment serves all MT row tiles.
template <int HS, int MT>
__device__ __forceinline__ void mma_pb(float (*acc)[HS / 8][4], const float (*p)[8][4], const bf16* bS, int lane) {
    constexpr int LD = HS + 8;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        u32 a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            a[mt][0] = pack_bf16(p[mt][2 * kk][0], p[mt][2 * kk][1]);
            a[mt][1] = pack_bf16(p[mt][2 * kk][2], p[mt][2 * kk][3]);
            a[mt][2] = pack_bf16(p[mt][2 * kk + 1][0], p[mt][2 * kk + 1][1]);
            a[mt][3] = pack_bf16(p[mt][2 * kk + 1][2], p[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < HS / 16; ++dp) {
            u32 b0, b1, b2, b3;
            ldsm_x4_t(smem_addr(bS + (kk * 16 + (lane & 15)) * LD + dp * 16 + (lane >> 4) * 8), b0, b1, b2, b3);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                mma16816(acc[mt][2 * dp], a[mt], b0, b1);
                mma16816(acc[mt][2 * dp + 1], a[mt], b2, b3);
            }
        }
    }
}

// Writes a warp's 16×HS f32 accumulator (times mul) as bf16 rows row0.. of the (T, C) matrix at g, staged through
// the warp's own 16 rows of the padded shared tile s so that the global stores are 16 bytes wide.
template <int HS>
__device__ __forceinline__ void store_rows(bf16* g, bf16* s, const float (*acc)[4], float mul0, float mul1,
                                           int sRow0, int row0, int T, int C, int lane) {
    constexpr int LD = HS + 8;
    constexpr int CPR = HS / 8;
    int gq = lane >> 2, tq = lane & 3;
    __syncwarp();
#pragma unroll
    for (int nt = 0; nt < HS / 8; ++nt) {
        *reinterpret_cast<u32*>(s + (sRow0 + gq) * LD + nt * 8 + 2 * tq) =
            pack_bf16(acc[nt][0] * mul0, acc[nt][1] * mul0);
        *reinterpret_cast<u32*>(s + (sRow0 + gq + 8) * LD + nt * 8 + 2 * tq) =
            pack_bf16(acc[nt][2] * mul1, acc[nt][3] * mul1);
    }
    __syncwarp();
#pragma unroll
    for (int c = lane; c < 16 * CPR; c += 32) {
        int r = c / CPR;
        int cc = c - r * CPR;
        int t = row0 + r;
        if (t < T) {
            *reinterpret_cast<uint4*>(g + (size_t)t * C + cc * 8) =
                *reinterpret_cast<const uint4*>(s + (sRow0 + r) * LD + cc * 8);
        }
    }
}

// Visibility bits of keys k0..k0+63 (bit j: key k0+j exists and is not padding); uniform across the warp.
__device__ __forceinline__ u64 key_bits(const int* mask, int k0, int T, int lane) {
    int j0 = k0 + lane, j1 = k0 + 32 + lane;
    bool v0 = j0 < T && (mask == nullptr || mask[j0] != 0);
    bool v1 = j1 < T && (mask == nullptr || mask[j1] != 0);
    u32 lo = __ballot_sync(0xffffffffu, v0);
    u32 hi = __ballot_sync(0xffffffffu, v1);
    return (u64)lo | ((u64)hi << 32);
}

// Visibility of the 16 keys k0 + 8·nt + 2·tq + {0, 1} (nt = 0..7) to query row `row`, as bits 8·nt + {0, 1} of the
// result: the tile's key bits, cut to keys ≤ row (causal), shifted to this thread's column pair.
__device__ __forceinline__ u64 row_bits(u64 bits, int k0, int row, int tq) {
    int n = row - k0 + 1;  // keys k0 .. row are causally visible
    u64 causal = n >= 64 ? ~0ull : (n <= 0 ? 0ull : ((1ull << n) - 1));
    return (bits & causal) >> (2 * tq);
}

// The query blocks qb ≥ kb whose CSR row (ascending key blocks, rows rowPtr[qb]..rowPtr[qb + 1] of colIdx) holds key
// block kb, in ascending order: the dK/dV pass's column of a causal layout, read from the CSR so that no transposed
// copy is built. Each call of next() is warp-uniform: lane l tests row c0 + l by binary search, a ballot collects
// 32 rows at a time, and the set bits are handed out lowest first. Start with c0 = kb − 32, pend = 0.
struct ColumnWalk {
    const int* rowPtr;  // the head's nB + 1 row offsets
    const int* colIdx;
    int kb, nB, c0;
    u32 pend;

    __device__ __forceinline__ bool holds(int qb) const {
        int lo = rowPtr[qb], hi = rowPtr[qb + 1];
        while (lo < hi) {
            int mid = (lo + hi) >> 1;
            int c = colIdx[mid];
            if (c == kb) return true;
            if (c < kb) lo = mid + 1; else hi = mid;
        }
        return false;
    }

    // The next query block of the column, or nB when the column is exhausted.
    __device__ __forceinline__ int next(int lane) {
        while (pend == 0) {
            c0 += 32;
            if (c0 >= nB) return nB;
            int qb = c0 + lane;
            pend = __ballot_sync(0xffffffffu, qb < nB && holds(qb));
        }
        int i = __ffs(pend) - 1;
        pend &= pend - 1;
        return c0 + i;
    }
};

// ------------------------------------------------------------------------------------------------ forward

// One CTA: BQ = MT·16·NW query rows, NW warps, warp w owning rows 16w + 16·NW·mt + 0..15. Block lists need BQ = 64
// (one layout block per CTA); the dense list takes any BQ that is a multiple of 64.
template <int HS, int MT, int NW>
__device__ __forceinline__ void attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                  const bf16* __restrict__ v, bf16* __restrict__ out,
                                                  float* __restrict__ lse, const int* __restrict__ keyMask,
                                                  const int* __restrict__ rowPtr, const int* __restrict__ colIdx,
                                                  int T, int NH, float scale, int qb, int h, int b) {
    constexpr int LD = HS + 8;
    constexpr int KT = HS / 16;
    constexpr int NDT = HS / 8;
    constexpr int BQ = MT * 16 * NW;
    constexpr int NT = 32 * NW;
    constexpr bool LIST = BQ == kTile;
    constexpr bool QREGS = MT == 1 || HS <= 64;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* sQ = reinterpret_cast<bf16*>(smem);  // BQ × LD
    bf16* sK = sQ + BQ * LD;                   // 2 × 64 × LD
    bf16* sV = sK + 2 * kTile * LD;            // 2 × 64 × LD

    const int nB = (T + kTile - 1) / kTile;
    const int C = NH * HS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tq = lane & 3;
    const size_t base = (size_t)b * T * C + (size_t)h * HS;
    const int* mask = keyMask ? keyMask + (size_t)b * T : nullptr;
    const int q0 = qb * BQ;

    int it0, it1;
    if (LIST && rowPtr) {
        it0 = rowPtr[h * nB + qb];
        it1 = rowPtr[h * nB + qb + 1];
    } else {
        it0 = 0;
        it1 = min((qb + 1) * (BQ / kTile), nB);
    }

    load_tile<HS, BQ, NT>(sQ, q + base, q0, T, C);
    if (it0 < it1) {
        int kb = (LIST && rowPtr) ? colIdx[it0] : it0;
        load_tile<HS, kTile, NT>(sK, k + base, kb * kTile, T, C);
        load_tile<HS, kTile, NT>(sV, v + base, kb * kTile, T, C);
    }
    cp_async_commit();

    const int r0 = q0 + warp * 16 + gq;  // this thread's query rows r0 + 64·mt and r0 + 64·mt + 8
    const float sl2 = scale * kLog2e;
    float o[MT][NDT][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int i = 0; i < NDT; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }
    u32 qf[QREGS ? MT : 1][KT][4];

    for (int it = it0; it < it1; ++it) {
        const int buf = (it - it0) & 1;
        const int kb = (LIST && rowPtr) ? colIdx[it] : it;
        const int k0 = kb * kTile;
        const u64 bits = key_bits(mask, k0, T, lane);
        cp_async_wait<0>();
        __syncthreads();
        if constexpr (QREGS) {
            if (it == it0) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) load_a_frags<HS>(qf[mt], sQ, warp * 16 + mt * 16 * NW, lane);
            }
        }
        if (it + 1 < it1) {
            int kn = (LIST && rowPtr) ? colIdx[it + 1] : it + 1;
            load_tile<HS, kTile, NT>(sK + (buf ^ 1) * kTile * LD, k + base, kn * kTile, T, C);
            load_tile<HS, kTile, NT>(sV + (buf ^ 1) * kTile * LD, v + base, kn * kTile, T, C);
        }
        cp_async_commit();

        float s[MT][8][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int i = 0; i < 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
        mma_abt<HS, MT, QREGS, 16 * NW>(s, qf, sQ, warp * 16, sK + buf * kTile * LD, lane);

#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            // Scaled log2 scores; −∞ where masked (causal, padding, past T). The mask is skipped when the whole
            // tile is visible to all 16 rows of this row tile.
            const int rmin = q0 + mt * 16 * NW + warp * 16;
            // Raw scores, −∞ where masked (causal, padding, past T); the mask is skipped (a branch uniform over
            // the warp) when the whole tile is visible to all 16 rows of this row tile.
            if (!(bits == ~0ull && k0 + kTile - 1 <= rmin)) {
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    u64 rb = row_bits(bits, k0, r0 + mt * 16 * NW + r * 8, tq);
#pragma unroll
                    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                        for (int c = 0; c < 2; ++c) {
                            if (!((rb >> (nt * 8 + c)) & 1)) s[mt][nt][2 * r + c] = -INFINITY;
                        }
                    }
                }
            }
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[mt][nt][e]);
            }
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            }
            // Running max m in log2 units of the scaled score (scale > 0, so max commutes with the scaling);
            // p = exp2(s·scale·log2e − m) as one fused multiply-add and one exp2.
            float use[2], alpha[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float mn = fmaxf(m[mt][r], mx[r] * sl2);
                use[r] = mn == -INFINITY ? 0.f : mn;
                alpha[r] = exp2f(m[mt][r] - use[r]);
                m[mt][r] = mn;
            }
            float rs[2] = {0.f, 0.f};
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    s[mt][nt][e] = exp2f(fmaf(s[mt][nt][e], sl2, -use[e >> 1]));
                    rs[e >> 1] += s[mt][nt][e];
                }
            }
#pragma unroll
            for (int r = 0; r < 2; ++r) l[mt][r] = l[mt][r] * alpha[r] + rs[r];
#pragma unroll
            for (int i = 0; i < NDT; ++i) {
                o[mt][i][0] *= alpha[0]; o[mt][i][1] *= alpha[0];
                o[mt][i][2] *= alpha[1]; o[mt][i][3] *= alpha[1];
            }
        }
        mma_pb<HS, MT>(o, s, sV + buf * kTile * LD, lane);
    }
    cp_async_wait<0>();
    __syncthreads();

#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        float inv[2], ls[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float lt = l[mt][r];
            lt += __shfl_xor_sync(0xffffffffu, lt, 1);
            lt += __shfl_xor_sync(0xffffffffu, lt, 2);
            inv[r] = lt > 0.f ? 1.f / lt : 0.f;
            ls[r] = lt > 0.f ? (m[mt][r] + log2f(lt)) * kLn2 : -INFINITY;
        }
        const int ra = r0 + mt * 16 * NW;
        if (tq == 0) {
            float* lrow = lse + ((size_t)b * NH + h) * T;
            if (ra < T) lrow[ra] = ls[0];
            if (ra + 8 < T) lrow[ra + 8] = ls[1];
        }
        store_rows<HS>(out + base, sQ, o[mt], inv[0], inv[1], warp * 16 + mt * 16 * NW, q0 + mt * 16 * NW + warp * 16, T, C,
                       lane);
    }
}

// ------------------------------------------------------------------------------------------------ backward

// acc + Σ_e g[e]·y[e] over 8 bf16 at 16-byte aligned g and y, one fma per element in order.
__device__ __forceinline__ float dot8_bf16(const bf16* g, const bf16* y, float acc) {
    uint4 gv = *reinterpret_cast<const uint4*>(g);
    uint4 yv = *reinterpret_cast<const uint4*>(y);
    const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
    const __nv_bfloat162* y2 = reinterpret_cast<const __nv_bfloat162*>(&yv);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        float2 a = __bfloat1622float2(g2[e]);
        float2 c2 = __bfloat1622float2(y2[e]);
        acc = fmaf(a.x, c2.x, acc);
        acc = fmaf(a.y, c2.y, acc);
    }
    return acc;
}

// D_i = Σ_d dOut_i[d]·out_i[d] and lse2_i of one (b, h, t) per thread, t fastest, so that a warp covers 32
// consecutive positions of one (b, h): its lse reads and dPad/lse2Pad stores are 32 consecutive floats. When HS/8
// divides 32 the warp reads its rows cooperatively: G = HS/8 lanes hold one row's 16-byte chunks, 32/G rows per
// load, so every load instruction reads whole 128-byte lines; the G lanes' partial sums are added by an xor
// butterfly and the row's sum is handed to the lane of its position. Otherwise each thread reads its own row.
// Either way the sum runs over the same 8-element chunks; only the order in which chunk sums are combined differs.
template <int HS>
__device__ __forceinline__ void attention_backward_prep(const bf16* __restrict__ dOut, const bf16* __restrict__ out,
                                                        const float* __restrict__ lse, float* __restrict__ dPad,
                                                        float* __restrict__ lse2Pad, int B, int T, int NH) {
    constexpr int G = HS / 8;                              // 16-byte chunks per head row
    constexpr bool kCoop = HS % 8 == 0 && 32 % G == 0;
    constexpr int RP = kCoop ? 32 / G : 1;                 // rows per cooperative load
    const int Tp = (T + kTile - 1) / kTile * kTile;        // a multiple of 64: warps never straddle two (b, h)
    const int C = NH * HS;
    const long long total = (long long)B * Tp * NH;
    const int lane = threadIdx.x & 31;
    for (long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x; id - lane < total;
         id += (long long)gridDim.x * blockDim.x) {
        const bool live = id < total;                      // whole warps run the loop: the shuffles need all lanes
        const int t = (int)(id % Tp);
        const long long bh = id / Tp;
        const int h = (int)(bh % NH);
        const int b = (int)(bh / NH);
        float acc = 0.f;
        if constexpr (kCoop) {
            const int t0 = t - lane;                       // the warp's first position
            const int sub = lane / G;                      // the row of a load this lane reads
            const int chunk = lane % G;
            float part[32 / RP];
#pragma unroll
            for (int it = 0; it < 32 / RP; ++it) {
                const int tr = t0 + it * RP + sub;
                part[it] = 0.f;
                if (live && tr < T) {
                    const size_t row = ((size_t)b * T + tr) * C + (size_t)h * HS + chunk * 8;
                    part[it] = dot8_bf16(dOut + row, out + row, part[it]);
                }
            }
#pragma unroll
            for (int it = 0; it < 32 / RP; ++it) {
#pragma unroll
                for (int o = G / 2; o > 0; o >>= 1) {
                    part[it] += __shfl_xor_sync(0xffffffffu, part[it], o);
                }
                // position t0 + it·RP + r's sum is in lanes r·G .. r·G + G − 1; lane it·RP + r takes it
                float d = __shfl_sync(0xffffffffu, part[it], (lane % RP) * G);
                if (lane / RP == it) {
                    acc = d;
                }
            }
        } else if (live && t < T) {
            const bf16* g = dOut + ((size_t)b * T + t) * C + (size_t)h * HS;
            const bf16* y = out + ((size_t)b * T + t) * C + (size_t)h * HS;
#pragma unroll
            for (int c = 0; c < HS / 8; ++c) {
                acc = dot8_bf16(g + c * 8, y + c * 8, acc);
            }
        }
        if (!live) {
            continue;
        }
        const size_t o = (size_t)bh * Tp + t;
        if (t >= T) {
            dPad[o] = 0.f;
            lse2Pad[o] = INFINITY;
            continue;
        }
        float ls = lse[((size_t)b * NH + h) * T + t];
        dPad[o] = acc;
        lse2Pad[o] = ls == -INFINITY ? INFINITY : ls * kLog2e;
    }
}

// dK, dV of BK = 16·NW keys starting at k0 = BK·blockIdx.x: warp w owns keys k0 + 16w + {gq, gq + 8}; block lists
// need BK = 64. KV_REGS keeps the warp's K and V rows as MMA fragments in registers (else re-read from shared memory
// for every query tile).
template <int HS, bool KV_REGS, int NW>
__device__ __forceinline__ void attention_backward_dkdv(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ dOut, const int* __restrict__ keyMask, const float* __restrict__ lse2Pad,
    const float* __restrict__ dPad, const int* __restrict__ rowPtr, const int* __restrict__ colIdx,
    bf16* __restrict__ dK, bf16* __restrict__ dV, int T, int NH, float scale, int kblk, int h, int b) {
    constexpr int LD = HS + 8;
    constexpr int KT = HS / 16;
    constexpr int NDT = HS / 8;
    constexpr int BK = 16 * NW;
    constexpr int NT = 32 * NW;
    constexpr bool LIST = BK == kTile;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* sK = reinterpret_cast<bf16*>(smem);  // BK × LD
    bf16* sV = sK + BK * LD;                   // BK × LD
    bf16* sQ = sV + BK * LD;                   // 2 × 64 × LD
    bf16* sG = sQ + 2 * kTile * LD;            // 2 × 64 × LD (dOut)
    float* sL = reinterpret_cast<float*>(sG + 2 * kTile * LD);  // 2 × 64 lse2
    float* sD = sL + 2 * kTile;                                 // 2 × 64 D

    const int nB = (T + kTile - 1) / kTile;
    const int Tp = nB * kTile;
    const int kb = kblk * (BK / kTile);  // first layout block of the CTA
    const int C = NH * HS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tq = lane & 3;
    const size_t base = (size_t)b * T * C + (size_t)h * HS;
    const size_t sbase = ((size_t)b * NH + h) * Tp;
    const int k0 = kblk * BK;

    // The query blocks of the column: dense, kb..nB−1; listed, those whose CSR row holds kb, ascending (qb is the
    // current one, qn the next, nB when there is none).
    const bool listed = LIST && rowPtr;
    ColumnWalk walk{listed ? rowPtr + h * nB : nullptr, colIdx, kb, nB, kb - 32, 0u};
    int qb = listed ? walk.next(lane) : kb;
    int qn = qb >= nB ? nB : (listed ? walk.next(lane) : qb + 1);

    load_tile<HS, BK, NT>(sK, k + base, k0, T, C);
    load_tile<HS, BK, NT>(sV, v + base, k0, T, C);
    if (qb < nB) {
        load_tile<HS, kTile, NT>(sQ, q + base, qb * kTile, T, C);
        load_tile<HS, kTile, NT>(sG, dOut + base, qb * kTile, T, C);
        load_stats(sL, lse2Pad + sbase + qb * kTile);
        load_stats(sD, dPad + sbase + qb * kTile);
    }
    cp_async_commit();

    const int j0 = k0 + warp * 16 + gq;  // this thread's keys j0 and j0 + 8
    bool kvis[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        int j = j0 + r * 8;
        kvis[r] = j < T && (keyMask == nullptr || keyMask[(size_t)b * T + j] != 0);
    }
    const bool allVis = __all_sync(0xffffffffu, kvis[0] && kvis[1]);
    const float sl2 = scale * kLog2e;
    float dk[1][NDT][4], dv[1][NDT][4];
#pragma unroll
    for (int i = 0; i < NDT; ++i) {
        dk[0][i][0] = dk[0][i][1] = dk[0][i][2] = dk[0][i][3] = 0.f;
        dv[0][i][0] = dv[0][i][1] = dv[0][i][2] = dv[0][i][3] = 0.f;
    }
    u32 kf[1][KT][4], vf[1][KT][4];

    for (int step = 0; qb < nB; ++step, qb = qn, qn = qn >= nB ? nB : (listed ? walk.next(lane) : qn + 1)) {
        const int buf = step & 1;
        const int i0 = qb * kTile;
        cp_async_wait<0>();
        __syncthreads();
        if constexpr (KV_REGS) {
            if (step == 0) {
                load_a_frags<HS>(kf[0], sK, warp * 16, lane);
                load_a_frags<HS>(vf[0], sV, warp * 16, lane);
            }
        }
        if (qn < nB) {
            load_tile<HS, kTile, NT>(sQ + (buf ^ 1) * kTile * LD, q + base, qn * kTile, T, C);
            load_tile<HS, kTile, NT>(sG + (buf ^ 1) * kTile * LD, dOut + base, qn * kTile, T, C);
            load_stats(sL + (buf ^ 1) * kTile, lse2Pad + sbase + qn * kTile);
            load_stats(sD + (buf ^ 1) * kTile, dPad + sbase + qn * kTile);
        }
        cp_async_commit();
        const bf16* cQ = sQ + buf * kTile * LD;
        const bf16* cG = sG + buf * kTile * LD;
        const float* cL = sL + buf * kTile;
        const float* cD = sD + buf * kTile;

        // S^T (16 keys × 64 queries) and dP^T.
        float st[1][8][4], dpt[1][8][4];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            st[0][i][0] = st[0][i][1] = st[0][i][2] = st[0][i][3] = 0.f;
            dpt[0][i][0] = dpt[0][i][1] = dpt[0][i][2] = dpt[0][i][3] = 0.f;
        }
        mma_abt<HS, 1, KV_REGS, 0>(st, kf, sK, warp * 16, cQ, lane);
        mma_abt<HS, 1, KV_REGS, 0>(dpt, vf, sV, warp * 16, cG, lane);

        // P^T = exp2(s·scale·log2e − lse2_i) where key j is visible to query i, else 0; dS^T = P^T∘(dP^T − D_i).
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            int ii = nt * 8 + 2 * tq;
            float2 l2 = *reinterpret_cast<const float2*>(cL + ii);
#pragma unroll
            for (int e = 0; e < 4; ++e) st[0][nt][e] = exp2f(fmaf(st[0][nt][e], sl2, -((e & 1) ? l2.y : l2.x)));
        }
        // Mask (a branch uniform over the warp): key j visible to query i iff j is visible and j ≤ i, i.e.
        // 8·nt + c ≥ j − i0 − 2·tq for the thread's query column 8·nt + 2·tq + c.
        if (!(allVis && k0 + warp * 16 + 15 <= i0)) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                int lim = kvis[r] ? j0 + r * 8 - i0 - 2 * tq : 1 << 20;
#pragma unroll
                for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                    for (int c = 0; c < 2; ++c) {
                        if (nt * 8 + c < lim) st[0][nt][2 * r + c] = 0.f;
                    }
                }
            }
        }
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            float2 d2 = *reinterpret_cast<const float2*>(cD + nt * 8 + 2 * tq);
#pragma unroll
            for (int e = 0; e < 4; ++e) dpt[0][nt][e] = st[0][nt][e] * (dpt[0][nt][e] - ((e & 1) ? d2.y : d2.x));
        }
        mma_pb<HS, 1>(dv, st, cG, lane);
        mma_pb<HS, 1>(dk, dpt, cQ, lane);
    }
    cp_async_wait<0>();
    __syncthreads();
    store_rows<HS>(dK + base, sK, dk[0], scale, scale, warp * 16, k0 + warp * 16, T, C, lane);
    store_rows<HS>(dV + base, sV, dv[0], 1.f, 1.f, warp * 16, k0 + warp * 16, T, C, lane);
}

// dQ of one CTA of BQ = MT·16·NW queries (block lists need BQ = 64): warp w owns queries 16w + 16·NW·mt + {gq, gq + 8}.
template <int HS, int MT, int NW>
__device__ __forceinline__ void attention_backward_dq(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ dOut, const int* __restrict__ keyMask, const float* __restrict__ lse2Pad,
    const float* __restrict__ dPad, const int* __restrict__ rowPtr, const int* __restrict__ colIdx,
    bf16* __restrict__ dQ, int T, int NH, float scale, int qb, int h, int b) {
    constexpr int LD = HS + 8;
    constexpr int KT = HS / 16;
    constexpr int NDT = HS / 8;
    constexpr int BQ = MT * 16 * NW;
    constexpr int NT = 32 * NW;
    constexpr bool LIST = BQ == kTile;
    constexpr bool QG_REGS = MT == 1 && HS <= 64;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* sQ = reinterpret_cast<bf16*>(smem);  // BQ × LD
    bf16* sG = sQ + BQ * LD;                   // BQ × LD (dOut)
    bf16* sK = sG + BQ * LD;                   // 2 × 64 × LD
    bf16* sV = sK + 2 * kTile * LD;            // 2 × 64 × LD

    const int nB = (T + kTile - 1) / kTile;
    const int Tp = nB * kTile;
    const int C = NH * HS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gq = lane >> 2, tq = lane & 3;
    const size_t base = (size_t)b * T * C + (size_t)h * HS;
    const size_t sbase = ((size_t)b * NH + h) * Tp;
    const int* mask = keyMask ? keyMask + (size_t)b * T : nullptr;
    const int q0 = qb * BQ;

    int it0, it1;
    if (LIST && rowPtr) {
        it0 = rowPtr[h * nB + qb];
        it1 = rowPtr[h * nB + qb + 1];
    } else {
        it0 = 0;
        it1 = min((qb + 1) * (BQ / kTile), nB);
    }

    load_tile<HS, BQ, NT>(sQ, q + base, q0, T, C);
    load_tile<HS, BQ, NT>(sG, dOut + base, q0, T, C);
    if (it0 < it1) {
        int kb = (LIST && rowPtr) ? colIdx[it0] : it0;
        load_tile<HS, kTile, NT>(sK, k + base, kb * kTile, T, C);
        load_tile<HS, kTile, NT>(sV, v + base, kb * kTile, T, C);
    }
    cp_async_commit();

    const int r0 = q0 + warp * 16 + gq;
    float l2[MT][2], dd[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        // Rows past T of the last CTA of a dense BQ = 128 grid may lie past Tp: they get P = 0 (l2 = +∞).
        int ra = r0 + mt * 16 * NW;
        l2[mt][0] = ra < Tp ? lse2Pad[sbase + ra] : INFINITY;
        l2[mt][1] = ra + 8 < Tp ? lse2Pad[sbase + ra + 8] : INFINITY;
        dd[mt][0] = ra < Tp ? dPad[sbase + ra] : 0.f;
        dd[mt][1] = ra + 8 < Tp ? dPad[sbase + ra + 8] : 0.f;
    }
    const float sl2 = scale * kLog2e;
    float dq[MT][NDT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < NDT; ++i) dq[mt][i][0] = dq[mt][i][1] = dq[mt][i][2] = dq[mt][i][3] = 0.f;
    u32 qf[QG_REGS ? MT : 1][KT][4], gf[QG_REGS ? MT : 1][KT][4];

    for (int it = it0; it < it1; ++it) {
        const int buf = (it - it0) & 1;
        const int kb = (LIST && rowPtr) ? colIdx[it] : it;
        const int k0 = kb * kTile;
        const u64 bits = key_bits(mask, k0, T, lane);
        cp_async_wait<0>();
        __syncthreads();
        if constexpr (QG_REGS) {
            if (it == it0) {
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    load_a_frags<HS>(qf[mt], sQ, warp * 16 + mt * 16 * NW, lane);
                    load_a_frags<HS>(gf[mt], sG, warp * 16 + mt * 16 * NW, lane);
                }
            }
        }
        if (it + 1 < it1) {
            int kn = (LIST && rowPtr) ? colIdx[it + 1] : it + 1;
            load_tile<HS, kTile, NT>(sK + (buf ^ 1) * kTile * LD, k + base, kn * kTile, T, C);
            load_tile<HS, kTile, NT>(sV + (buf ^ 1) * kTile * LD, v + base, kn * kTile, T, C);
        }
        cp_async_commit();
        const bf16* cK = sK + buf * kTile * LD;
        const bf16* cV = sV + buf * kTile * LD;

        float s[MT][8][4], dp[MT][8][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
                dp[mt][i][0] = dp[mt][i][1] = dp[mt][i][2] = dp[mt][i][3] = 0.f;
            }
        mma_abt<HS, MT, QG_REGS, 16 * NW>(s, qf, sQ, warp * 16, cK, lane);
        mma_abt<HS, MT, QG_REGS, 16 * NW>(dp, gf, sG, warp * 16, cV, lane);

#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][nt][e] = exp2f(fmaf(s[mt][nt][e], sl2, -l2[mt][e >> 1]));
            }
            if (!(bits == ~0ull && k0 + kTile - 1 <= q0 + mt * 16 * NW + warp * 16)) {
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    u64 rb = row_bits(bits, k0, r0 + mt * 16 * NW + r * 8, tq);
#pragma unroll
                    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                        for (int c = 0; c < 2; ++c) {
                            if (!((rb >> (nt * 8 + c)) & 1)) s[mt][nt][2 * r + c] = 0.f;
                        }
                    }
                }
            }
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) dp[mt][nt][e] = s[mt][nt][e] * (dp[mt][nt][e] - dd[mt][e >> 1]);
            }
        }
        mma_pb<HS, MT>(dq, dp, cK, lane);
    }
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
        store_rows<HS>(dQ + base, sQ, dq[mt], scale, scale, warp * 16 + mt * 16 * NW, q0 + mt * 16 * NW + warp * 16, T, C,
                       lane);
}

}  // namespace

// Entry points: the block-list kernels (64-row CTAs of 4 warps) serve dense (null list) and sparse attention.
// MINB_F / MINB_B cap the registers so that that many CTAs fit on an SM (the forward at 4 CTAs, 16 warps, spills
// nothing at HS ≤ 80; fewer at larger HS, where the accumulators need more registers).
// Grids put the block index in z, the slowest-varying launch index, and the heads and sequences in x and y, so the
// longest CTAs (the last query blocks of the forward and dQ, the first key blocks of dK/dV, above all the sink
// column of a sparse layout) are all dispatched first instead of being spread through the launch order. The
// backward is one launch: even z = 2i is the dK/dV CTA of key block i, odd z = 2i + 1 the dQ CTA of query block
// nB − 1 − i (longest first in both passes), so the short CTAs of either pass fill the SMs around the long ones.
#define ATTENTION_ENTRY_POINTS(HS, MINB_F, MINB_B)                                                                  \
    extern "C" __global__ void __launch_bounds__(128, MINB_F) attention_forward_bf16_hs##HS(                      \
        const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const int* keyMask,                  \
        const int* rowPtr, const int* colIdx, int T, int NH, float scale) {                                       \
        const int nB = (T + kTile - 1) / kTile;                                                                   \
        attention_forward<HS, 1, 4>(q, k, v, out, lse, keyMask, rowPtr, colIdx, T, NH, scale,                     \
                                    nB - 1 - (int)blockIdx.z, blockIdx.x, blockIdx.y);                            \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256) attention_backward_prep_bf16_hs##HS(                        \
        const bf16* dOut, const bf16* out, const float* lse, float* dPad, float* lse2Pad, int B, int T, int NH) { \
        attention_backward_prep<HS>(dOut, out, lse, dPad, lse2Pad, B, T, NH);                                     \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(128, MINB_B) attention_backward_bf16_hs##HS(                     \
        const bf16* q, const bf16* k, const bf16* v, const bf16* dOut, const int* keyMask,                       \
        const float* lse2Pad, const float* dPad, const int* rowPtr, const int* colIdx, bf16* dQ, bf16* dK,       \
        bf16* dV, int T, int NH, float scale) {                                                                   \
        const int nB = (T + kTile - 1) / kTile;                                                                   \
        const int i = blockIdx.z >> 1;                                                                            \
        if ((blockIdx.z & 1) == 0) {                                                                              \
            attention_backward_dkdv<HS, false, 4>(q, k, v, dOut, keyMask, lse2Pad, dPad, rowPtr, colIdx, dK, dV,  \
                                                  T, NH, scale, i, blockIdx.x, blockIdx.y);                       \
        } else {                                                                                                  \
            attention_backward_dq<HS, 1, 4>(q, k, v, dOut, keyMask, lse2Pad, dPad, rowPtr, colIdx, dQ, T, NH,     \
                                            scale, nB - 1 - i, blockIdx.x, blockIdx.y);                           \
        }                                                                                                         \
    }

ATTENTION_ENTRY_POINTS(32, 4, 3)
ATTENTION_ENTRY_POINTS(64, 4, 3)
ATTENTION_ENTRY_POINTS(80, 4, 3)
ATTENTION_ENTRY_POINTS(96, 3, 2)
ATTENTION_ENTRY_POINTS(128, 3, 2)

#ifdef ATTENTION_VARIANTS
// Tuning variants, built only for the device benchmark (tools/device/attention_check.py): 128-row CTAs of 8 warps
// for the dense list, grid (ceil(T / 128), NH, B), which halve the K/V (Q/dOut) tile traffic through L2 and give
// the same bits as the list kernels. Measured slower on H200 (cuda/notes/attention.md), so not used.
#define ATTENTION_VARIANT_ENTRY_POINTS(HS)                                                                          \
    extern "C" __global__ void __launch_bounds__(256, 2) attention_forward_dense128_bf16_hs##HS(                  \
        const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, const int* keyMask, int T, int NH,   \
        float scale) {                                                                                            \
        attention_forward<HS, 1, 8>(q, k, v, out, lse, keyMask, nullptr, nullptr, T, NH, scale,                   \
                                    (T + 127) / 128 - 1 - (int)blockIdx.x, blockIdx.y, blockIdx.z);               \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 1) attention_backward_dkdv_dense128_bf16_hs##HS(            \
        const bf16* q, const bf16* k, const bf16* v, const bf16* dOut, const int* keyMask,                       \
        const float* lse2Pad, const float* dPad, bf16* dK, bf16* dV, int T, int NH, float scale) {               \
        attention_backward_dkdv<HS, false, 8>(q, k, v, dOut, keyMask, lse2Pad, dPad, nullptr, nullptr, dK, dV, T, \
                                              NH, scale, blockIdx.x, blockIdx.y, blockIdx.z);                     \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(256, 1) attention_backward_dq_dense128_bf16_hs##HS(              \
        const bf16* q, const bf16* k, const bf16* v, const bf16* dOut, const int* keyMask,                       \
        const float* lse2Pad, const float* dPad, bf16* dQ, int T, int NH, float scale) {                          \
        attention_backward_dq<HS, 1, 8>(q, k, v, dOut, keyMask, lse2Pad, dPad, nullptr, nullptr, dQ, T, NH,       \
                                        scale, (T + 127) / 128 - 1 - (int)blockIdx.x, blockIdx.y, blockIdx.z);    \
    }
ATTENTION_VARIANT_ENTRY_POINTS(64)
ATTENTION_VARIANT_ENTRY_POINTS(80)
#endif
