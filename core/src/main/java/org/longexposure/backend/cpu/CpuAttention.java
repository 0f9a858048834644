package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.longexposure.backend.AttentionOps;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Causal multi-head attention with a key padding mask on the CPU ({@link AttentionOps}), computed flash-style.
 *
 * <p>What: {@code out = softmax(scale·q·kᵀ + causal mask + padding mask)·v} per head, as Hugging Face's OPT
 * attention computes it (eager and sdpa paths); the backward follows the FlashAttention-2 recurrences (Dao 2023,
 * Algorithm 2). A query with no visible key (e.g. the first rows under left padding) gets out = 0, lse = −∞ and no
 * gradient; HF leaves such rows at arbitrary values, and no loss reads them.
 *
 * <p>Shapes: q, k, v, out, dQ, dK, dV, dOut (B, T, C), C = NH·HS, head h = columns [h·HS, (h+1)·HS); keyMask
 * (B, T) I32; lse (B, NH, T). Query i of sequence b sees key j iff j ≤ i and keyMask[b, j] != 0.
 *
 * <p>Saved for backward: lse only ({@code lse_i = log Σ_j exp(scale·q_i·k_j)} over visible keys); out is the
 * forward's output.
 *
 * <p>Forward, per (b, h) and per tile of TQ query rows, online softmax over tiles of BK keys: with running max m and
 * sum l, a key tile with scores s gives {@code m' = max(m, max s)}, {@code l' = l·e^(m−m') + Σ e^(s−m')},
 * {@code acc' = acc·e^(m−m') + Σ e^(s−m')·v}; at the end {@code out = acc / l}, {@code lse = m + log l}.
 * Backward, per (b, h) and per query tile, recomputing P from lse: {@code D_i = dOut_i·out_i},
 * {@code P_ij = exp(scale·q_i·k_j − lse_i)}, {@code dV_j += P_ij dOut_i}, {@code dP_ij = dOut_i·v_j},
 * {@code dS_ij = P_ij (dP_ij − D_i)}, {@code dQ_i += scale·dS_ij k_j}, {@code dK_j += scale·dS_ij q_i}.
 *
 * <p>Memory: one task per (b, h) (B·NH tasks on the backend's threads), each owning the head's output columns, so
 * there are no races and no cross-task reductions: results are bit-identical for any thread count. A task copies its
 * head into heap scratch: the visible keys only (padding is dropped, so holes cost nothing), as rows padded to HSP
 * (HS rounded up to the vector length VL, zero-filled, so the HS-length axpys need no scalar tail) and as key panels
 * (VL keys × HS, transposed) for the score products; plus (TQ, BK) score tiles. That is O(T·HS) per task, never
 * (T, T).
 *
 * <p>Vectorisation: scores {@code q_r·k_j} are computed for VL keys at once (q_r[d] broadcast times a panel row,
 * fused multiply-add over d), the TQ = 4 query rows of a tile sharing each loaded panel row; the P·V and gradient
 * axpys run over HSP with the TQ rows sharing each loaded row; the exponentials are a lane-wise polynomial.
 *
 * <p>Determinism: besides the fixed task split, only lane-wise operations, fixed-order sums, an exact lane max and
 * scalar {@code Math.exp}/{@code Math.log} are used: no summing lane reduction (its order is unspecified) and no
 * library vector exp (its last bit may differ between JIT tiers). Results therefore depend neither on the thread
 * count nor on whether a loop runs interpreted or compiled. The tensors must be readable from the pool's threads
 * (a shared or global arena, not a confined one).
 */
public final class CpuAttention implements AttentionOps {
    private static final VectorSpecies<Float> SP = FloatVector.SPECIES_PREFERRED;
    private static final int VL = SP.length();
    /** Query rows per tile: each loaded key or value vector serves this many rows (the kernels unroll 4). */
    private static final int TQ = 4;
    /** Keys per online-softmax step: a multiple of VL. */
    private static final int BK = Math.max(VL, 64 / VL * VL);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    // Constants of the lane-wise exp: log2 e, ln 2 split in a float and its remainder, the float that rounds to an
    // integer when added (1.5·2^23), and the clamp range (e^-87 is near the smallest normal float).
    private static final float LOG2E = (float) (1 / Math.log(2));
    private static final float LN2_HI = (float) Math.log(2);
    private static final float LN2_LO = (float) (Math.log(2) - LN2_HI);
    private static final float ROUND = 0x1.8p23f;
    private static final float EXP_MIN = -87f;
    private static final float EXP_MAX = 88f;

    private final CpuThreads threads;

    /** Runs one task per (b, h) on {@code threads}; the result does not depend on its size. */
    public CpuAttention(CpuThreads threads) {
        this.threads = Objects.requireNonNull(threads, "threads");
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                 int numHeads, float scale) {
        Dims dims = Dims.of("attentionForward", q, numHeads);
        dims.requireBTC("attentionForward", "out", out);
        dims.requireBTC("attentionForward", "k", k);
        dims.requireBTC("attentionForward", "v", v);
        dims.requireLse("attentionForward", lse);
        dims.requireMask("attentionForward", keyMask);
        Head.Segments s = new Head.Segments(q.host(), k.host(), v.host(), out.host(), lse.host(), keyMask.host(),
                null, null, null, null);
        threads.parallelTasks(dims.B * dims.NH, task -> new Head(dims, s, task / dims.NH, task % dims.NH, scale)
                .forward());
    }

    @Override
    public void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                                  Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale) {
        Dims dims = Dims.of("attentionBackward", q, numHeads);
        dims.requireBTC("attentionBackward", "dQ", dQ);
        dims.requireBTC("attentionBackward", "dK", dK);
        dims.requireBTC("attentionBackward", "dV", dV);
        dims.requireBTC("attentionBackward", "dOut", dOut);
        dims.requireBTC("attentionBackward", "out", out);
        dims.requireBTC("attentionBackward", "k", k);
        dims.requireBTC("attentionBackward", "v", v);
        dims.requireLse("attentionBackward", lse);
        dims.requireMask("attentionBackward", keyMask);
        Head.Segments s = new Head.Segments(q.host(), k.host(), v.host(), out.host(), lse.host(), keyMask.host(),
                dQ.host(), dK.host(), dV.host(), dOut.host());
        threads.parallelTasks(dims.B * dims.NH, task -> new Head(dims, s, task / dims.NH, task % dims.NH, scale)
                .backward());
    }

    /** The sizes of one call, taken from q and checked against every other argument. */
    private record Dims(int B, int T, int C, int NH, int HS) {
        static Dims of(String op, Tensor q, int numHeads) {
            if (q.shape().rank() != 3) {
                throw new IllegalArgumentException(op + " q: expected shape (B, T, C), got " + q.shape());
            }
            q.requireDType(op + " q", DType.F32);
            int c = q.shape().idim(2);
            if (numHeads < 1 || c % numHeads != 0) {
                throw new IllegalArgumentException(op + " numHeads: expected a positive divisor of C = " + c
                        + ", got " + numHeads);
            }
            return new Dims(q.shape().idim(0), q.shape().idim(1), c, numHeads, c / numHeads);
        }

        void requireBTC(String op, String name, Tensor t) {
            t.requireShape(op + " " + name, B, T, C).requireDType(op + " " + name, DType.F32);
        }

        void requireLse(String op, Tensor lse) {
            lse.requireShape(op + " lse", B, NH, T).requireDType(op + " lse", DType.F32);
        }

        void requireMask(String op, Tensor keyMask) {
            keyMask.requireShape(op + " keyMask", B, T).requireDType(op + " keyMask", DType.I32);
        }
    }

    /** One (b, h) task: its visible keys, its scratch, and the forward/backward loops over query tiles. */
    private static final class Head {
        /** The host memory of the call's tensors (gradient ones null in the forward). */
        record Segments(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse,
                        MemorySegment keyMask, MemorySegment dQ, MemorySegment dK, MemorySegment dV,
                        MemorySegment dOut) {
        }

        private final Dims dims;
        private final Segments seg;
        private final int b;
        private final int h;
        private final float scale;
        private final int hsp;        // HS rounded up to a multiple of VL
        private final int[] visible;  // (nv) positions of the real keys of sequence b, ascending
        private final int[] seen;     // (T) seen[i] = number of visible keys j ≤ i
        private final int nv;

        Head(Dims dims, Segments seg, int b, int h, float scale) {
            this.dims = dims;
            this.seg = seg;
            this.b = b;
            this.h = h;
            this.scale = scale;
            this.hsp = (dims.HS + VL - 1) / VL * VL;
            int T = dims.T;
            int[] vis = new int[T];
            int n = 0;
            this.seen = new int[T];
            for (int t = 0; t < T; t++) {
                if (seg.keyMask.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, (long) b * T + t) != 0) {
                    vis[n++] = t;
                }
                seen[t] = n;
            }
            this.visible = Arrays.copyOf(vis, n);
            this.nv = n;
        }

        /** Byte offset of element (b, t, h·HS) of a (B, T, C) tensor. */
        private long rowOffset(int t) {
            return (((long) b * dims.T + t) * dims.C + (long) h * dims.HS) * Float.BYTES;
        }

        private long lseIndex(int t) {
            return ((long) b * dims.NH + h) * dims.T + t;
        }

        // --- forward

        void forward() {
            int HS = dims.HS;
            float[] kPanels = panels(seg.k);                 // (nv/VL, HS, VL)
            float[] vRows = rows(seg.v);                     // (nv, HSP)
            float[] qTile = new float[TQ * hsp];             // (TQ, HSP)
            float[] sTile = new float[TQ * BK];              // (TQ, BK) scores, then probabilities
            float[] acc = new float[TQ * hsp];               // (TQ, HSP) un-normalised output rows
            float[] m = new float[TQ];
            double[] l = new double[TQ];
            int[] cnt = new int[TQ];
            for (int i0 = 0; i0 < dims.T; i0 += TQ) {
                int rows = Math.min(TQ, dims.T - i0);
                loadTile(seg.q, i0, rows, qTile);
                for (int r = 0; r < TQ; r++) {
                    cnt[r] = r < rows ? seen[i0 + r] : 0;
                }
                Arrays.fill(acc, 0f);
                Arrays.fill(m, Float.NEGATIVE_INFINITY);
                Arrays.fill(l, 0);
                int nMax = cnt[rows - 1];
                for (int n0 = 0; n0 < nMax; n0 += BK) {
                    int n1 = Math.min(n0 + BK, nMax);
                    scoreTile(qTile, kPanels, n0, n1, sTile);
                    for (int r = 0; r < TQ; r++) {
                        softmaxStep(sTile, r, n0, n1, cnt[r], m, l, acc);
                    }
                    accumulateTile(acc, sTile, vRows, n0, n1);
                }
                for (int r = 0; r < rows; r++) {
                    long o = rowOffset(i0 + r);
                    if (cnt[r] == 0) {
                        for (int d = 0; d < HS; d++) {
                            seg.out.set(F32, o + (long) d * Float.BYTES, 0f);
                        }
                        seg.lse.setAtIndex(F32, lseIndex(i0 + r), Float.NEGATIVE_INFINITY);
                        continue;
                    }
                    for (int d = 0; d < HS; d++) {
                        acc[r * hsp + d] = (float) (acc[r * hsp + d] / l[r]);
                    }
                    MemorySegment.copy(acc, r * hsp, seg.out, F32, o, HS);
                    seg.lse.setAtIndex(F32, lseIndex(i0 + r), (float) (m[r] + Math.log(l[r])));
                }
            }
        }

        /**
         * Online-softmax step of query row r over keys [n0, n1): turns its scores in {@code sTile} into
         * e^(scale·s − m') (0 beyond the row's {@code cnt} visible keys), updates m, l and rescales its acc row.
         */
        private void softmaxStep(float[] sTile, int r, int n0, int n1, int cnt, float[] m, double[] l, float[] acc) {
            int base = r * BK - n0;
            int e = Math.min(n1, cnt);
            if (e <= n0) {
                Arrays.fill(sTile, r * BK, r * BK + (n1 - n0), 0f);
                return;
            }
            // Scaled scores, −∞ past the row's last visible key; their max. A max does not depend on the order of
            // the lanes (+ 0f turns a −0 into +0), so the lane reduction is exact.
            FloatVector vMax = FloatVector.broadcast(SP, Float.NEGATIVE_INFINITY);
            for (int n = n0; n < e; n += VL) {
                FloatVector s = FloatVector.fromArray(SP, sTile, base + n).mul(scale)
                        .blend(Float.NEGATIVE_INFINITY, SP.indexInRange(n, e).not());
                s.intoArray(sTile, base + n);
                vMax = vMax.max(s);
            }
            float mNew = Math.max(m[r], vMax.reduceLanes(VectorOperators.MAX) + 0f);
            // p = e^(s − m'), summed lane-wise over the tile, then over the lanes in a fixed order.
            FloatVector vSum = FloatVector.zero(SP);
            for (int n = n0; n < e; n += VL) {
                FloatVector p = exp(FloatVector.fromArray(SP, sTile, base + n).sub(mNew));
                p.intoArray(sTile, base + n);
                vSum = vSum.add(p);
            }
            double sum = 0;
            for (int i = 0; i < VL; i++) {
                sum += vSum.lane(i);
            }
            Arrays.fill(sTile, base + e, base + n1, 0f);
            if (m[r] != Float.NEGATIVE_INFINITY && m[r] != mNew) {
                float alpha = (float) Math.exp(m[r] - mNew);
                l[r] *= alpha;
                FloatVector a = FloatVector.broadcast(SP, alpha);
                for (int d = r * hsp; d < (r + 1) * hsp; d += VL) {
                    FloatVector.fromArray(SP, acc, d).mul(a).intoArray(acc, d);
                }
            }
            l[r] += sum;
            m[r] = mNew;
        }

        // --- backward

        void backward() {
            int HS = dims.HS;
            float[] kPanels = panels(seg.k);                 // (nv/VL, HS, VL)
            float[] vPanels = panels(seg.v);                 // (nv/VL, HS, VL)
            float[] kRows = rows(seg.k);                     // (nv, HSP)
            float[] dKRows = new float[nv * hsp];            // (nv, HSP) accumulated over all query tiles
            float[] dVRows = new float[nv * hsp];            // (nv, HSP)
            float[] qTile = new float[TQ * hsp];             // (TQ, HSP)
            float[] gTile = new float[TQ * hsp];             // (TQ, HSP) dOut rows
            float[] dQTile = new float[TQ * hsp];            // (TQ, HSP)
            float[] pTile = new float[TQ * BK];              // (TQ, BK) scores, then P
            float[] dSTile = new float[TQ * BK];             // (TQ, BK) dP, then scale·dS
            float[] outRow = new float[HS];
            float[] lseR = new float[TQ];
            float[] dR = new float[TQ];
            int[] cnt = new int[TQ];
            for (int i0 = 0; i0 < dims.T; i0 += TQ) {
                int rows = Math.min(TQ, dims.T - i0);
                loadTile(seg.q, i0, rows, qTile);
                loadTile(seg.dOut, i0, rows, gTile);
                for (int r = 0; r < TQ; r++) {
                    cnt[r] = r < rows ? seen[i0 + r] : 0;
                    if (cnt[r] > 0) {
                        MemorySegment.copy(seg.out, F32, rowOffset(i0 + r), outRow, 0, HS);
                        double dot = 0;
                        for (int d = 0; d < HS; d++) {
                            dot += (double) gTile[r * hsp + d] * outRow[d];
                        }
                        dR[r] = (float) dot;
                        lseR[r] = seg.lse.getAtIndex(F32, lseIndex(i0 + r));
                    }
                }
                Arrays.fill(dQTile, 0f);
                int nMax = cnt[rows - 1];
                for (int n0 = 0; n0 < nMax; n0 += BK) {
                    int n1 = Math.min(n0 + BK, nMax);
                    scoreTile(qTile, kPanels, n0, n1, pTile);
                    scoreTile(gTile, vPanels, n0, n1, dSTile);
                    for (int r = 0; r < TQ; r++) {
                        int base = r * BK - n0;
                        int e = Math.max(n0, Math.min(n1, cnt[r]));
                        for (int n = n0; n < e; n += VL) {
                            FloatVector p = exp(FloatVector.fromArray(SP, pTile, base + n).mul(scale).sub(lseR[r]));
                            p.intoArray(pTile, base + n);
                            p.mul(FloatVector.fromArray(SP, dSTile, base + n).sub(dR[r])).mul(scale)
                                    .intoArray(dSTile, base + n);
                        }
                        Arrays.fill(pTile, base + e, base + n1, 0f);
                        Arrays.fill(dSTile, base + e, base + n1, 0f);
                    }
                    accumulateTile(dQTile, dSTile, kRows, n0, n1);
                    scatterTile(dVRows, pTile, gTile, n0, n1);
                    scatterTile(dKRows, dSTile, qTile, n0, n1);
                }
                for (int r = 0; r < rows; r++) {
                    MemorySegment.copy(dQTile, r * hsp, seg.dQ, F32, rowOffset(i0 + r), HS);
                }
            }
            float[] zero = new float[HS];
            int n = 0;
            for (int t = 0; t < dims.T; t++) {
                long o = rowOffset(t);
                if (n < nv && visible[n] == t) {
                    MemorySegment.copy(dKRows, n * hsp, seg.dK, F32, o, HS);
                    MemorySegment.copy(dVRows, n * hsp, seg.dV, F32, o, HS);
                    n++;
                } else {
                    MemorySegment.copy(zero, 0, seg.dK, F32, o, HS);
                    MemorySegment.copy(zero, 0, seg.dV, F32, o, HS);
                }
            }
        }

        // --- shared kernels

        /**
         * e^x lane by lane, from lane-wise operations only (so the result is the same in every JIT tier and on any
         * thread): x = n·ln 2 + r with n = round(x·log2 e) and |r| ≤ ln 2 / 2, e^r by its Taylor polynomial of
         * degree 7 (truncation below 1e-8 relative, under float rounding), times 2^n built in the exponent bits.
         * Within 2 ulp of the exact value; x below {@link #EXP_MIN} (−∞ included) gives 0.
         */
        static FloatVector exp(FloatVector x) {
            VectorMask<Float> underflow = x.lt(EXP_MIN);
            FloatVector xc = x.max(EXP_MIN).min(EXP_MAX);
            FloatVector n = xc.fma(LOG2E, ROUND).sub(ROUND);
            FloatVector r = n.fma(FloatVector.broadcast(SP, -LN2_HI), xc);
            r = n.fma(FloatVector.broadcast(SP, -LN2_LO), r);
            FloatVector p = r.fma(1f / 5040, 1f / 720);
            p = p.fma(r, FloatVector.broadcast(SP, 1f / 120));
            p = p.fma(r, FloatVector.broadcast(SP, 1f / 24));
            p = p.fma(r, FloatVector.broadcast(SP, 1f / 6));
            p = p.fma(r, FloatVector.broadcast(SP, 0.5f));
            p = p.fma(r, FloatVector.broadcast(SP, 1f));
            p = p.fma(r, FloatVector.broadcast(SP, 1f));
            IntVector bits = ((IntVector) n.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
            return p.mul(bits.reinterpretAsFloats()).blend(0f, underflow);
        }

        /** Rows i0.. i0+rows−1 of this head of {@code src} into a (TQ, HSP) tile; the rest stays zero. */
        private void loadTile(MemorySegment src, int i0, int rows, float[] tile) {
            Arrays.fill(tile, 0f);
            for (int r = 0; r < rows; r++) {
                MemorySegment.copy(src, F32, rowOffset(i0 + r), tile, r * hsp, dims.HS);
            }
        }

        /** The visible keys' rows of this head of {@code src} as (nv, HSP), zero-padded columns. */
        private float[] rows(MemorySegment src) {
            float[] a = new float[nv * hsp];
            for (int n = 0; n < nv; n++) {
                MemorySegment.copy(src, F32, rowOffset(visible[n]), a, n * hsp, dims.HS);
            }
            return a;
        }

        /**
         * The visible keys' rows of this head of {@code src} transposed into panels of VL keys:
         * {@code a[(c·HS + d)·VL + lane] = src[visible[c·VL + lane], d]}, zero beyond nv.
         */
        private float[] panels(MemorySegment src) {
            int HS = dims.HS;
            int np = (nv + VL - 1) / VL;
            float[] a = new float[np * HS * VL];
            float[] row = new float[HS];
            for (int n = 0; n < nv; n++) {
                MemorySegment.copy(src, F32, rowOffset(visible[n]), row, 0, HS);
                int base = (n / VL) * HS * VL + n % VL;
                for (int d = 0; d < HS; d++) {
                    a[base + d * VL] = row[d];
                }
            }
            return a;
        }

        /**
         * {@code s[r, n − n0] = x_r·y_n} for the TQ rows of {@code xTile} (TQ, HSP) and keys n in [n0, n1) of the
         * panels {@code yPanels}, VL keys at a time; n0 is a multiple of VL, keys past nv read the zero padding.
         */
        private void scoreTile(float[] xTile, float[] yPanels, int n0, int n1, float[] s) {
            int HS = dims.HS;
            int x1 = hsp;
            int x2 = 2 * hsp;
            int x3 = 3 * hsp;
            for (int c0 = n0; c0 < n1; c0 += VL) {
                int p = (c0 / VL) * HS * VL;
                FloatVector a0 = FloatVector.zero(SP);
                FloatVector a1 = FloatVector.zero(SP);
                FloatVector a2 = FloatVector.zero(SP);
                FloatVector a3 = FloatVector.zero(SP);
                for (int d = 0; d < HS; d++) {
                    FloatVector y = FloatVector.fromArray(SP, yPanels, p + d * VL);
                    a0 = y.fma(FloatVector.broadcast(SP, xTile[d]), a0);
                    a1 = y.fma(FloatVector.broadcast(SP, xTile[x1 + d]), a1);
                    a2 = y.fma(FloatVector.broadcast(SP, xTile[x2 + d]), a2);
                    a3 = y.fma(FloatVector.broadcast(SP, xTile[x3 + d]), a3);
                }
                int o = c0 - n0;
                a0.intoArray(s, o);
                a1.intoArray(s, BK + o);
                a2.intoArray(s, 2 * BK + o);
                a3.intoArray(s, 3 * BK + o);
            }
        }

        /** {@code acc[r, :] += Σ_{n ∈ [n0, n1)} w[r, n − n0]·y[n, :]} for the TQ rows; acc (TQ, HSP), y (nv, HSP). */
        private void accumulateTile(float[] acc, float[] w, float[] y, int n0, int n1) {
            for (int d = 0; d < hsp; d += VL) {
                FloatVector a0 = FloatVector.fromArray(SP, acc, d);
                FloatVector a1 = FloatVector.fromArray(SP, acc, hsp + d);
                FloatVector a2 = FloatVector.fromArray(SP, acc, 2 * hsp + d);
                FloatVector a3 = FloatVector.fromArray(SP, acc, 3 * hsp + d);
                for (int n = n0; n < n1; n++) {
                    FloatVector yv = FloatVector.fromArray(SP, y, n * hsp + d);
                    int o = n - n0;
                    a0 = yv.fma(FloatVector.broadcast(SP, w[o]), a0);
                    a1 = yv.fma(FloatVector.broadcast(SP, w[BK + o]), a1);
                    a2 = yv.fma(FloatVector.broadcast(SP, w[2 * BK + o]), a2);
                    a3 = yv.fma(FloatVector.broadcast(SP, w[3 * BK + o]), a3);
                }
                a0.intoArray(acc, d);
                a1.intoArray(acc, hsp + d);
                a2.intoArray(acc, 2 * hsp + d);
                a3.intoArray(acc, 3 * hsp + d);
            }
        }

        /** {@code dst[n, :] += Σ_r w[r, n − n0]·x[r, :]} for keys n in [n0, n1); dst (nv, HSP), x (TQ, HSP). */
        private void scatterTile(float[] dst, float[] w, float[] x, int n0, int n1) {
            for (int d = 0; d < hsp; d += VL) {
                FloatVector x0 = FloatVector.fromArray(SP, x, d);
                FloatVector x1 = FloatVector.fromArray(SP, x, hsp + d);
                FloatVector x2 = FloatVector.fromArray(SP, x, 2 * hsp + d);
                FloatVector x3 = FloatVector.fromArray(SP, x, 3 * hsp + d);
                for (int n = n0; n < n1; n++) {
                    int o = n - n0;
                    int at = n * hsp + d;
                    FloatVector a = FloatVector.fromArray(SP, dst, at);
                    a = x0.fma(FloatVector.broadcast(SP, w[o]), a);
                    a = x1.fma(FloatVector.broadcast(SP, w[BK + o]), a);
                    a = x2.fma(FloatVector.broadcast(SP, w[2 * BK + o]), a);
                    a = x3.fma(FloatVector.broadcast(SP, w[3 * BK + o]), a);
                    a.intoArray(dst, at);
                }
            }
        }
    }
}
