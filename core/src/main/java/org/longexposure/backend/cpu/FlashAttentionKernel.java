package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The flash-style attention loops shared by {@link CpuAttention} (dense causal) and {@link CpuSparseAttention}
 * (block-sparse causal): one (b, h) head at a time, visiting the key tiles that a {@link KeyBlocks} list names for
 * each query block. Dense attention is the one-block case: block size T, query block 0 lists key block 0.
 *
 * <p>What: {@code out = softmax(scale·q·kᵀ + causal mask + padding mask + tile mask)·v} per head, where the tile
 * mask hides the keys of the key blocks a query block does not list; the backward follows the FlashAttention-2
 * recurrences (Dao 2023, Algorithm 2). A query with no visible key gets out = 0, lse = −∞ and no gradient.
 *
 * <p>Shapes: q, k, v, out, dQ, dK, dV, dOut (B, T, C), C = NH·HS, head h = columns [h·HS, (h+1)·HS); keyMask
 * (B, T) I32; lse (B, NH, T). Saved for backward: lse only ({@code lse_i = log Σ_j exp(scale·q_i·k_j)} over the
 * visible keys); out is the forward's output.
 *
 * <p>Forward, per query tile of TQ rows (tiles never straddle a query block, so all rows of a tile see the same key
 * blocks), online softmax over chunks of at most BK keys: with running max m and sum l, a chunk with scores s gives
 * {@code m' = max(m, max s)}, {@code l' = l·e^(m−m') + Σ e^(s−m')}, {@code acc' = acc·e^(m−m') + Σ e^(s−m')·v}; at
 * the end {@code out = acc / l}, {@code lse = m + log l}. Backward, per query tile, recomputing P from lse:
 * {@code D_i = dOut_i·out_i}, {@code P_ij = exp(scale·q_i·k_j − lse_i)}, {@code dV_j += P_ij dOut_i},
 * {@code dP_ij = dOut_i·v_j}, {@code dS_ij = P_ij (dP_ij − D_i)}, {@code dQ_i += scale·dS_ij k_j},
 * {@code dK_j += scale·dS_ij q_i}.
 *
 * <p>Key ranges: a head copies its visible keys only (padding dropped) and numbers them 0..nv−1 in position order.
 * A key block then is a contiguous range of those numbers, and the listed blocks of a query block become a few
 * ascending ranges (adjacent ones merged, so a full layout gives the single range the dense op walks). A chunk
 * starts at a multiple of the vector length VL (the key panels are VL keys wide): a range starting inside a panel
 * masks the lanes before its start, so work is proportional to the listed tiles, not to T². Causality inside the
 * diagonal block is the per-row limit {@code seen[i]} (keys at positions ≤ i), as in the dense op.
 *
 * <p>Memory: one task per (b, h), owning the head's output columns (and its dK, dV accumulators), so there are no
 * races and no cross-task reductions: results are bit-identical for any thread count. Heap scratch per task: the
 * visible keys as rows padded to HSP (HS rounded up to VL, zero-filled, so the HS-length axpys need no scalar tail)
 * and as key panels (VL keys × HS, transposed) for the score products; plus (TQ, BK) score tiles. O(T·HS) per task,
 * never (T, T).
 *
 * <p>Vectorisation: scores {@code q_r·k_j} are computed for VL keys at once (q_r[d] broadcast times a panel row,
 * fused multiply-add over d), the TQ = 4 query rows of a tile sharing each loaded panel row; the P·V and gradient
 * axpys run over HSP with the TQ rows sharing each loaded row; the exponentials are {@link VecMath#exp}.
 *
 * <p>Determinism: besides the fixed task split, only lane-wise operations, fixed-order sums, an exact lane max and
 * scalar {@code Math.exp}/{@code Math.log} are used: no summing lane reduction (its order is unspecified) and no
 * library vector exp. Results depend neither on the thread count nor on whether a loop runs interpreted or
 * compiled. A row's result does not depend on which tile it shares, so the full block layout of any block size
 * gives the dense op's bits. The tensors must be readable from the pool's threads (a shared or global arena).
 */
final class FlashAttentionKernel {
    static final VectorSpecies<Float> SP = FloatVector.SPECIES_PREFERRED;
    static final int VL = SP.length();
    /** Query rows per tile: each loaded key or value vector serves this many rows (the kernels unroll 4). */
    static final int TQ = 4;
    /** Keys per online-softmax step: a multiple of VL. */
    static final int BK = Math.max(VL, 64 / VL * VL);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private FlashAttentionKernel() {
    }

    /** The sizes of one call, taken from q and checked against every other argument. */
    record Dims(int B, int T, int C, int NH, int HS) {
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

    /** The host memory of one call's tensors (the gradient ones null in the forward). */
    record Segments(MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse,
                    MemorySegment keyMask, MemorySegment dQ, MemorySegment dK, MemorySegment dV,
                    MemorySegment dOut) {
    }

    /**
     * Which key blocks each query block visits, as compressed sparse rows over the NH·nQB query-block rows: row
     * {@code h·nQB + qb} lists {@code colIdx[rowPtr[row] .. rowPtr[row+1])}, ascending, each ≤ qb. Already
     * validated by the caller; shared read-only by all tasks.
     */
    record KeyBlocks(int blockSize, int numBlocks, int[] rowPtr, int[] colIdx) {
        /** Dense causal attention: one block of T tokens per head, visiting itself. */
        static KeyBlocks dense(int T, int numHeads) {
            int[] rowPtr = new int[numHeads + 1];
            for (int h = 0; h <= numHeads; h++) {
                rowPtr[h] = h;
            }
            return new KeyBlocks(T, 1, rowPtr, new int[numHeads]);
        }
    }

    /** One (b, h) task: its visible keys, its scratch, and the forward/backward loops over query tiles. */
    static final class Head {
        private final Dims dims;
        private final Segments seg;
        private final KeyBlocks blocks;
        private final int b;
        private final int h;
        private final float scale;
        private final int hsp;        // HS rounded up to a multiple of VL
        private final int[] visible;  // (nv) positions of the real keys of sequence b, ascending
        private final int[] seen;     // (T) seen[i] = number of visible keys j ≤ i
        private final int nv;
        private final int[] ranges;   // (2·nQB) the current query block's key ranges [start, end) in key numbers
        private final int[] cnt = new int[TQ];  // per tile row: visible keys at positions ≤ the row (causal limit)
        private final int[] vis = new int[TQ];  // per tile row: keys it sees in the current ranges

        Head(Dims dims, Segments seg, KeyBlocks blocks, int b, int h, float scale) {
            this.dims = dims;
            this.seg = seg;
            this.blocks = blocks;
            this.b = b;
            this.h = h;
            this.scale = scale;
            this.hsp = (dims.HS + VL - 1) / VL * VL;
            int T = dims.T;
            int[] vs = new int[T];
            int n = 0;
            this.seen = new int[T];
            for (int t = 0; t < T; t++) {
                if (seg.keyMask.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, (long) b * T + t) != 0) {
                    vs[n++] = t;
                }
                seen[t] = n;
            }
            this.visible = Arrays.copyOf(vs, n);
            this.nv = n;
            this.ranges = new int[2 * blocks.numBlocks];
        }

        /** Byte offset of element (b, t, h·HS) of a (B, T, C) tensor. */
        private long rowOffset(int t) {
            return (((long) b * dims.T + t) * dims.C + (long) h * dims.HS) * Float.BYTES;
        }

        private long lseIndex(int t) {
            return ((long) b * dims.NH + h) * dims.T + t;
        }

        /**
         * Fills {@link #ranges} with the key-number ranges of query block qb's listed key blocks, merging adjacent
         * ones and dropping empty ones (blocks of padding only); returns how many ranges.
         */
        private int keyRanges(int qb) {
            int bs = blocks.blockSize;
            int row = h * blocks.numBlocks + qb;
            int nr = 0;
            for (int p = blocks.rowPtr[row]; p < blocks.rowPtr[row + 1]; p++) {
                int kb = blocks.colIdx[p];
                int start = kb == 0 ? 0 : seen[kb * bs - 1];
                int end = seen[Math.min(kb * bs + bs, dims.T) - 1];
                if (start == end) {
                    continue;
                }
                if (nr > 0 && ranges[2 * nr - 1] == start) {
                    ranges[2 * nr - 1] = end;
                } else {
                    ranges[2 * nr] = start;
                    ranges[2 * nr + 1] = end;
                    nr++;
                }
            }
            return nr;
        }

        /**
         * Sets {@link #cnt} for the tile's rows (0 past the last row) and {@link #vis}, the keys each row sees in
         * the first nr ranges; returns nMax, the causal limit of the tile's last row (no row sees a key number
         * ≥ nMax).
         */
        private int tileLimits(int i0, int rows, int nr) {
            for (int r = 0; r < TQ; r++) {
                cnt[r] = r < rows ? seen[i0 + r] : 0;
                vis[r] = 0;
            }
            for (int k = 0; k < nr; k++) {
                for (int r = 0; r < TQ; r++) {
                    vis[r] += Math.max(0, Math.min(ranges[2 * k + 1], cnt[r]) - ranges[2 * k]);
                }
            }
            return cnt[rows - 1];
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
            int bs = blocks.blockSize;
            for (int qb = 0; qb < blocks.numBlocks; qb++) {
                int nr = keyRanges(qb);
                int q1 = Math.min(qb * bs + bs, dims.T);
                for (int i0 = qb * bs; i0 < q1; i0 += TQ) {
                    int rows = Math.min(TQ, q1 - i0);
                    loadTile(seg.q, i0, rows, qTile);
                    int nMax = tileLimits(i0, rows, nr);
                    Arrays.fill(acc, 0f);
                    Arrays.fill(m, Float.NEGATIVE_INFINITY);
                    Arrays.fill(l, 0);
                    for (int k = 0; k < nr && ranges[2 * k] < nMax; k++) {
                        int start = ranges[2 * k];
                        int end = Math.min(ranges[2 * k + 1], nMax);
                        for (int n0 = start / VL * VL; n0 < end; n0 += BK) {
                            int n1 = Math.min(n0 + BK, end);
                            int lo = Math.max(start, n0);
                            scoreTile(qTile, kPanels, n0, n1, sTile);
                            for (int r = 0; r < TQ; r++) {
                                softmaxStep(sTile, r, n0, lo, n1, cnt[r], m, l, acc);
                            }
                            accumulateTile(acc, sTile, vRows, n0, n1);
                        }
                    }
                    for (int r = 0; r < rows; r++) {
                        long o = rowOffset(i0 + r);
                        if (vis[r] == 0) {
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
        }

        /**
         * Online-softmax step of query row r over the chunk [n0, n1) whose keys below {@code lo} belong to no listed
         * range: turns its scores in {@code sTile} into e^(scale·s − m') (0 below lo and from the row's causal limit
         * {@code cnt} on), updates m, l and rescales its acc row.
         */
        private void softmaxStep(float[] sTile, int r, int n0, int lo, int n1, int cnt, float[] m, double[] l,
                                 float[] acc) {
            int base = r * BK - n0;
            int e = Math.min(n1, cnt);
            if (e <= lo) {
                Arrays.fill(sTile, r * BK, r * BK + (n1 - n0), 0f);
                return;
            }
            // Scaled scores, −∞ outside [lo, e); their max. A max does not depend on the order of the lanes (+ 0f
            // turns a −0 into +0), so the lane reduction is exact. Only the first vector can reach below lo.
            FloatVector vMax = FloatVector.broadcast(SP, Float.NEGATIVE_INFINITY);
            for (int n = n0; n < e; n += VL) {
                VectorMask<Float> keep = SP.indexInRange(n, e);
                if (n < lo) {
                    keep = keep.andNot(SP.indexInRange(n, lo));
                }
                FloatVector s = FloatVector.fromArray(SP, sTile, base + n).mul(scale)
                        .blend(Float.NEGATIVE_INFINITY, keep.not());
                s.intoArray(sTile, base + n);
                vMax = vMax.max(s);
            }
            float mNew = Math.max(m[r], vMax.reduceLanes(VectorOperators.MAX) + 0f);
            // p = e^(s − m'), summed lane-wise over the chunk, then over the lanes in a fixed order.
            FloatVector vSum = FloatVector.zero(SP);
            for (int n = n0; n < e; n += VL) {
                FloatVector p = VecMath.exp(FloatVector.fromArray(SP, sTile, base + n).sub(mNew));
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
            int bs = blocks.blockSize;
            for (int qb = 0; qb < blocks.numBlocks; qb++) {
                int nr = keyRanges(qb);
                int q1 = Math.min(qb * bs + bs, dims.T);
                for (int i0 = qb * bs; i0 < q1; i0 += TQ) {
                    int rows = Math.min(TQ, q1 - i0);
                    loadTile(seg.q, i0, rows, qTile);
                    loadTile(seg.dOut, i0, rows, gTile);
                    int nMax = tileLimits(i0, rows, nr);
                    for (int r = 0; r < TQ; r++) {
                        lseR[r] = 0;
                        dR[r] = 0;
                        if (vis[r] > 0) {
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
                    for (int k = 0; k < nr && ranges[2 * k] < nMax; k++) {
                        int start = ranges[2 * k];
                        int end = Math.min(ranges[2 * k + 1], nMax);
                        for (int n0 = start / VL * VL; n0 < end; n0 += BK) {
                            int n1 = Math.min(n0 + BK, end);
                            int lo = Math.max(start, n0);
                            scoreTile(qTile, kPanels, n0, n1, pTile);
                            scoreTile(gTile, vPanels, n0, n1, dSTile);
                            for (int r = 0; r < TQ; r++) {
                                int base = r * BK - n0;
                                int e = Math.max(lo, Math.min(n1, cnt[r]));
                                for (int n = n0; n < e; n += VL) {
                                    FloatVector p = VecMath.exp(FloatVector.fromArray(SP, pTile, base + n)
                                            .mul(scale).sub(lseR[r]));
                                    p.intoArray(pTile, base + n);
                                    p.mul(FloatVector.fromArray(SP, dSTile, base + n).sub(dR[r])).mul(scale)
                                            .intoArray(dSTile, base + n);
                                }
                                // Keys below lo (before the range, in the chunk's first panel) and from the row's
                                // causal limit on get P = dS = 0.
                                Arrays.fill(pTile, base + n0, base + lo, 0f);
                                Arrays.fill(dSTile, base + n0, base + lo, 0f);
                                Arrays.fill(pTile, base + e, base + n1, 0f);
                                Arrays.fill(dSTile, base + e, base + n1, 0f);
                            }
                            accumulateTile(dQTile, dSTile, kRows, n0, n1);
                            scatterTile(dVRows, pTile, gTile, n0, n1);
                            scatterTile(dKRows, dSTile, qTile, n0, n1);
                        }
                    }
                    for (int r = 0; r < rows; r++) {
                        MemorySegment.copy(dQTile, r * hsp, seg.dQ, F32, rowOffset(i0 + r), HS);
                    }
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
