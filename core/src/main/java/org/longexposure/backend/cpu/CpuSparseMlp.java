package org.longexposure.backend.cpu;

import static org.longexposure.backend.cpu.VecMath.F;
import static org.longexposure.backend.cpu.VecMath.load;
import static org.longexposure.backend.cpu.VecMath.store;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.OpShapes;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Long Exposure's neuron-block-sparse ReLU MLP on the CPU (the paper's sparse fc1/fc2; LONG_EXPOSURE.md 6.2 and the
 * operator checklist of section 13): OPT's {@code fc2(relu(fc1(x)))} restricted per token block to the neuron blocks
 * a {@link NeuronLayout} lists. For token block r with rows R and listed blocks S (ascending), block S[q] = j being
 * neurons {@code [j·BN, j·BN + w_j)}:
 * <pre>
 *   forward   hidden[R, q·BN + t] = relu(b1[j·BN + t] + inp[R, :]·W1[j·BN + t, :])     t &lt; w_j, else 0
 *             out[R, :]           = b2 + hidden[R, :]·W2_Sᵀ                          (W2_S: the listed columns)
 *   backward  dH_S   = (dOut[R, :]·W2_S) ⊙ (hidden[R, :] &gt; 0)
 *             dInp[R, :] = dH_S·W1_S (overwrite);  dB1[j·BN + t] += Σ_R dH_S[:, q·BN + t];  dB2 += Σ_rows dOut
 * </pre>
 * Shapes: inp, out, dInp, dOut (N, C); W1 (H, C) and W2 (C, H) in HF's {@code nn.Linear} layouts, F32, F16 or
 * BF16, read in place (half types are widened while the GEMM packs them); b1 (H), b2 (C) F32 or null; hidden
 * (N, maxBlocks·BN), the only thing saved for backward besides the weights. Nothing is computed for unlisted
 * blocks, and W1, W2 never get a gradient (frozen under PEFT).
 *
 * <p>A partial last block is allowed: when BN does not divide H, block {@code H/BN} holds the last {@code H mod BN}
 * neurons, and the compact columns past them stay zero (it can only be a token block's last listed block, so the
 * real columns of a token block are always {@code [0, nS)} with {@code nS = Σ_S w_j}).
 *
 * <p>Memory and work: per token block, the listed W1 row slabs (each contiguous, BN·C elements) and W2 column slabs
 * (C runs of BN elements) are copied, in the weight's own dtype, into a packed scratch: W1_S (nS, C) and W2_S
 * (C, nS). A token block whose blocks are consecutive (e.g. the full layout) reads the weights in place instead, and
 * a token block listing the same blocks as the last copied one reuses the copy. Then each of fc1, fc2, the dH
 * product and the dInp product is one {@link CpuGemm} call of M = token-block rows, N or K = nS: the work is
 * {@code 8·Σ_r m_r·nS_r·C} flops, proportional to the density; the copies cost nS·C elements per token block.
 * Copying and then running one GEMM per product measured as fast as or faster than one GEMM per listed block on the
 * slabs in place ({@code perblock-d} in SparseMlpBench), which repacks the activations for every block and runs
 * K = BN products. fc1 adds its bias by pre-filling the compacted columns and letting the GEMM accumulate (the
 * dense {@code CpuLinear} order), then applies ReLU in one pass over the block's compacted rows; the backward's ReLU
 * mask is a pass over its dH scratch (m, nS). Scratch (the copies, dH) lives in an arena of the call. Token blocks
 * run one after another, each product split over the threads by CpuGemm, so token blocks of a few rows leave
 * threads idle.
 *
 * <p>Numerics: every element is computed by a fixed sequence of float operations (CpuGemm's k order; bias sums over
 * rows in row order, vector lanes being separate columns), so results do not depend on the thread count. With a
 * full layout each product is the dense path's product with the same operands, so the result equals fc1 → ReLU →
 * fc2 through {@link CpuLinear} and {@link CpuActivation}.
 */
public final class CpuSparseMlp {
    /** Below this many elements a row-wise pass runs on the calling thread. */
    private static final long PARALLEL_MIN = 1 << 15;

    private final CpuThreads threads;
    private final CpuGemm gemm;

    public CpuSparseMlp(CpuThreads threads, CpuGemm gemm) {
        this.threads = threads;
        this.gemm = gemm;
    }

    /** The forward below without a residual: {@code out = hidden·W2_Sᵀ + b2} (overwrite). */
    public void sparseMlpForward(Tensor out, Tensor hidden, Tensor inp, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                                 NeuronLayout layout) {
        sparseMlpForward(out, hidden, inp, w1, b1, w2, b2, null, layout);
    }

    /**
     * Neuron-block-sparse ReLU MLP (overwrite): {@code hidden = relu(inp·W1_Sᵀ + b1_S)} compacted per token block,
     * {@code out = hidden·W2_Sᵀ + b2 (+ residual)}; see {@code SparseOps#sparseMlpForward}. A residual is added
     * where b2 is: out's rows start as {@code residual + b2} and the second product accumulates on top.
     *
     * @param out      (N, C) F32
     * @param hidden   (N, maxBlocks·BN) F32, saved: the compacted post-ReLU hidden state
     * @param inp      (N, C) F32
     * @param w1       (H, C) fc1 weight, F32/F16/BF16
     * @param b1       (H) F32 or null
     * @param w2       (C, H) fc2 weight, F32/F16/BF16
     * @param b2       (C) F32 or null
     * @param residual (N, C) F32 not overlapping out, or out itself, or null
     */
    public void sparseMlpForward(Tensor out, Tensor hidden, Tensor inp, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                                 Tensor residual, NeuronLayout layout) {
        String op = "sparseMlpForward";
        Plan p = Plan.of(op, layout, w1, w2);
        p.requireRows(op, "out", out);
        p.requireHidden(op, hidden);
        p.requireRows(op, "inp", inp);
        p.requireBias(op, "b1", b1, p.h);
        p.requireBias(op, "b2", b2, p.c);
        if (residual != null) {
            p.requireRows(op, "residual", residual);
        }
        MemorySegment outSeg = out.host();
        MemorySegment resSeg = residual == null ? null : residual.host();
        MemorySegment hSeg = hidden.host();
        MemorySegment inpSeg = inp.host();
        try (Arena arena = Arena.ofShared()) {
            Slabs slabs = new Slabs(arena, p, w1, w2);
            float[] b1s = new float[p.maxNs];
            float[] b2s = b2 == null ? null : b2.host().toArray(ValueLayout.JAVA_FLOAT_UNALIGNED);
            for (int r = 0; r < p.nTB; r++) {
                int r0 = p.rowStart(r);
                int m = p.rowEnd(r) - r0;
                int ns = p.ns[r];
                slabs.select(r);
                // fc1 into the compacted columns: bias pre-filled (or zero beyond nS), then hidden (+)= inp·W1_Sᵀ.
                if (b1 != null) {
                    p.gatherBias(r, b1.host(), b1s);
                }
                fillRows(hSeg, (long) r0 * p.hw, m, p.hw, b1 == null ? null : b1s, ns);
                gemm.gemm(m, ns, p.c, 1f, MatrixRef.rowMajor(inpSeg, DType.F32, (long) r0 * p.c, p.c),
                        slabs.w1Transposed(), hSeg, (long) r0 * p.hw, p.hw, b1 != null);
                reluRows(hSeg, (long) r0 * p.hw, m, p.hw, ns);
                // fc2: out (+)= hidden[:, 0..nS)·W2_Sᵀ, the bias and the residual pre-filled.
                if (resSeg != null) {
                    residualRows(outSeg, resSeg, (long) r0 * p.c, m, p.c, b2s);
                } else if (b2 != null) {
                    fillRows(outSeg, (long) r0 * p.c, m, p.c, b2s, p.c);
                }
                gemm.gemm(m, p.c, ns, 1f, MatrixRef.rowMajor(hSeg, DType.F32, (long) r0 * p.hw, p.hw),
                        slabs.w2Transposed(), outSeg, (long) r0 * p.c, p.c, b2 != null || resSeg != null);
            }
        }
    }

    /**
     * dInp {@code =} (overwrite) the input gradient; dB1 {@code +=} only at listed neurons; dB2 {@code +=}
     * Σ_rows dOut. No weight gradients: W1 and W2 are frozen. Reads only the compacted columns of {@code hidden}
     * that the layout fills.
     *
     * @param dInp   (N, C) F32
     * @param dB1    (H) F32 or null
     * @param dB2    (C) F32 or null
     * @param dOut   (N, C) F32
     * @param hidden (N, maxBlocks·BN) F32, the forward's saved hidden state
     */
    public void sparseMlpBackward(Tensor dInp, Tensor dB1, Tensor dB2, Tensor dOut, Tensor hidden, Tensor w1,
                                  Tensor w2, NeuronLayout layout) {
        String op = "sparseMlpBackward";
        Plan p = Plan.of(op, layout, w1, w2);
        p.requireRows(op, "dInp", dInp);
        p.requireBias(op, "dB1", dB1, p.h);
        p.requireBias(op, "dB2", dB2, p.c);
        p.requireRows(op, "dOut", dOut);
        p.requireHidden(op, hidden);
        MemorySegment dInpSeg = dInp.host();
        MemorySegment dOutSeg = dOut.host();
        MemorySegment hSeg = hidden.host();
        // acc[n]: Σ over rows, in row order, of dH at neuron n; touched[n]: n is listed by some token block.
        float[] acc = dB1 == null ? null : new float[p.h];
        boolean[] touched = dB1 == null ? null : new boolean[p.h];
        try (Arena arena = Arena.ofShared()) {
            Slabs slabs = new Slabs(arena, p, w1, w2);
            MemorySegment dH = arena.allocate(Math.max(1L, (long) p.maxRows * p.maxNs * Float.BYTES), 64);
            for (int r = 0; r < p.nTB; r++) {
                int r0 = p.rowStart(r);
                int m = p.rowEnd(r) - r0;
                int ns = p.ns[r];
                slabs.select(r);
                // dH_S (m, nS) = dOut·W2_S, then ⊙ (hidden > 0).
                gemm.gemm(m, ns, p.c, 1f, MatrixRef.rowMajor(dOutSeg, DType.F32, (long) r0 * p.c, p.c),
                        slabs.w2(), dH, 0, ns, false);
                maskRows(dH, hSeg, (long) r0 * p.hw, m, ns, p.hw);
                if (acc != null) {
                    columnSumsToNeurons(p, r, dH, m, acc, touched);
                }
                // dInp (m, C) = dH_S·W1_S (a zero fill when the token block lists nothing).
                gemm.gemm(m, p.c, ns, 1f, MatrixRef.rowMajor(dH, DType.F32, 0, ns), slabs.w1(), dInpSeg,
                        (long) r0 * p.c, p.c, false);
            }
        }
        if (dB1 != null) {
            MemorySegment db = dB1.host();
            for (int n = 0; n < p.h; n++) {
                if (touched[n]) {
                    float prev = db.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, n);
                    db.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, n, prev + acc[n]);
                }
            }
        }
        if (dB2 != null) {
            columnSums(dB2.host(), dOutSeg, p.n, p.c);
        }
    }

    // --- row passes over compacted (m, width) blocks; each element is independent, so any split gives the same bits

    /**
     * Rows [0, m) of the (·, ld) matrix at element {@code base}: columns [0, nS) = {@code values} (or left alone
     * when null, the GEMM then overwrites them), columns [nS, ld) = 0.
     */
    private void fillRows(MemorySegment seg, long base, int m, int ld, float[] values, int ns) {
        if (ld == 0) {
            return;
        }
        rows(m, (long) m * ld, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long row = base + (long) i * ld;
                if (values != null && ns > 0) {
                    MemorySegment.copy(values, 0, seg, ValueLayout.JAVA_FLOAT_UNALIGNED, row * Float.BYTES, ns);
                }
                if (ns < ld) {
                    seg.asSlice((row + ns) * Float.BYTES, (long) (ld - ns) * Float.BYTES).fill((byte) 0);
                }
            }
        });
    }

    /**
     * out[i, :] = residual[i, :] (+ values) for the m rows from element {@code base}, row length ld; each element is
     * read before it is written, so residual may be out itself.
     */
    private void residualRows(MemorySegment out, MemorySegment residual, long base, int m, int ld, float[] values) {
        rows(m, (long) m * ld, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long row = base + (long) i * ld;
                for (int j = 0; j < ld; j++) {
                    float v = residual.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j);
                    out.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j, values == null ? v : v + values[j]);
                }
            }
        });
    }

    /** hidden[i, 0..nS) = max(hidden[i, 0..nS), 0) for the m rows from element {@code base}, row length ld. */
    private void reluRows(MemorySegment h, long base, int m, int ld, int ns) {
        int upper = F.loopBound(ns);
        rows(m, (long) m * ns, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long row = base + (long) i * ld;
                int t = 0;
                for (; t < upper; t += F.length()) {
                    store(load(h, row + t).max(0f), h, row + t);
                }
                for (; t < ns; t++) {
                    float x = h.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + t);
                    h.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + t, Math.max(x, 0f));
                }
            }
        });
    }

    /** dH (m, nS) ⊙= (hidden[rows from hBase, 0..nS) > 0), hidden's row length hLd: ReLU's derivative. */
    private void maskRows(MemorySegment dH, MemorySegment h, long hBase, int m, int ns, int hLd) {
        int upper = F.loopBound(ns);
        FloatVector zero = FloatVector.zero(F);
        rows(m, (long) m * ns, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long d = (long) i * ns;
                long hr = hBase + (long) i * hLd;
                int t = 0;
                for (; t < upper; t += F.length()) {
                    FloatVector g = load(dH, d + t);
                    store(zero.blend(g, load(h, hr + t).compare(VectorOperators.GT, 0f)), dH, d + t);
                }
                for (; t < ns; t++) {
                    if (!(h.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, hr + t) > 0f)) {
                        dH.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, d + t, 0f);
                    }
                }
            }
        });
    }

    /** Runs body over rows [0, m), split over the threads when the pass touches enough elements. */
    private void rows(int m, long elements, CpuThreads.RangeBody body) {
        if (elements < PARALLEL_MIN || threads.size() == 1) {
            body.run(0, m);
        } else {
            threads.parallelChunks(m, body);
        }
    }

    // --- bias gradients: sums over rows in row order, one column per lane, columns split over the threads

    /**
     * acc[j·BN + t] += Σ_i dH[i, q·BN + t] for the listed blocks S[q] = j of token block r (distinct neurons, so the
     * slots can be split over the threads); marks those neurons touched.
     */
    private void columnSumsToNeurons(Plan p, int r, MemorySegment dH, int m, float[] acc, boolean[] touched) {
        int first = p.ptr[r];
        int count = p.ptr[r + 1] - first;
        int ns = p.ns[r];
        rows(count, (long) m * ns, (lo, hi) -> {
            for (int q = lo; q < hi; q++) {
                int n0 = p.idx[first + q] * p.bn;
                int w = Math.min(p.bn, p.h - n0);
                int upper = F.loopBound(w);
                for (int i = 0; i < m; i++) {
                    long d = (long) i * ns + (long) q * p.bn;
                    int t = 0;
                    for (; t < upper; t += F.length()) {
                        FloatVector.fromArray(F, acc, n0 + t).add(load(dH, d + t)).intoArray(acc, n0 + t);
                    }
                    for (; t < w; t++) {
                        acc[n0 + t] += dH.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, d + t);
                    }
                }
                Arrays.fill(touched, n0, n0 + w, true);
            }
        });
    }

    /** dB[j] += Σ_i dOut[i, j] over the n rows (row length c), rows summed in order. */
    private void columnSums(MemorySegment dB, MemorySegment dOut, int n, int c) {
        rows(c, (long) n * c, (lo, hi) -> {
            float[] sum = new float[hi - lo];
            int upper = F.loopBound(hi - lo);
            for (int i = 0; i < n; i++) {
                long row = (long) i * c + lo;
                int t = 0;
                for (; t < upper; t += F.length()) {
                    FloatVector.fromArray(F, sum, t).add(load(dOut, row + t)).intoArray(sum, t);
                }
                for (; t < hi - lo; t++) {
                    sum[t] += dOut.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + t);
                }
            }
            for (int j = lo; j < hi; j++) {
                float prev = dB.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, j);
                dB.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, j, prev + sum[j - lo]);
            }
        });
    }

    // --- the weights of the listed blocks: in place for consecutive blocks, else copied into packed slabs

    /**
     * The W1_S and W2_S operands of the current token block. Copies keep the weight's dtype: W1_S (nS, C) row-major
     * (the listed row slabs back to back), W2_S (C, nS) row-major (each row's listed runs back to back).
     */
    private final class Slabs {
        private final Arena arena;
        private final Plan p;
        private final MemorySegment w1;
        private final MemorySegment w2;
        private final DType w1Type;
        private final DType w2Type;
        private MemorySegment w1Copy;
        private MemorySegment w2Copy;
        /** The token block whose blocks the copies hold, or -1. */
        private int copied = -1;
        private int current;

        Slabs(Arena arena, Plan p, Tensor w1, Tensor w2) {
            this.arena = arena;
            this.p = p;
            this.w1 = w1.host();
            this.w2 = w2.host();
            this.w1Type = w1.dtype();
            this.w2Type = w2.dtype();
        }

        /** Makes token block r current, copying its slabs unless they are consecutive or already copied. */
        void select(int r) {
            current = r;
            if (p.ns[r] == 0 || p.consecutive[r] || (copied >= 0 && p.sameBlocks(copied, r))) {
                return;
            }
            if (w1Copy == null) {
                w1Copy = arena.allocate((long) p.maxNs * p.c * w1Type.byteSize(), 64);
                w2Copy = arena.allocate((long) p.maxNs * p.c * w2Type.byteSize(), 64);
            }
            copySlabs(r);
            copied = r;
        }

        /** Element offset of neuron 0 of token block r's first block (consecutive blocks read in place). */
        private long firstNeuron() {
            return p.ns[current] == 0 ? 0 : (long) p.idx[p.ptr[current]] * p.bn;
        }

        private boolean inPlace() {
            return p.ns[current] == 0 || p.consecutive[current];
        }

        /** W1_S as (nS, C): the B operand of dInp = dH·W1_S. */
        MatrixRef w1() {
            return inPlace() ? MatrixRef.rowMajor(w1, w1Type, firstNeuron() * p.c, p.c)
                    : MatrixRef.rowMajor(w1Copy, w1Type, 0, p.c);
        }

        /** W1_Sᵀ as (C, nS): the B operand of fc1. */
        MatrixRef w1Transposed() {
            return w1().transpose();
        }

        /** W2_S as (C, nS): the B operand of dH = dOut·W2_S. */
        MatrixRef w2() {
            return inPlace() ? MatrixRef.rowMajor(w2, w2Type, firstNeuron(), p.h)
                    : MatrixRef.rowMajor(w2Copy, w2Type, 0, p.ns[current]);
        }

        /** W2_Sᵀ as (nS, C): the B operand of fc2. */
        MatrixRef w2Transposed() {
            return w2().transpose();
        }

        private void copySlabs(int r) {
            int first = p.ptr[r];
            int count = p.ptr[r + 1] - first;
            int ns = p.ns[r];
            long e1 = w1Type.byteSize();
            long e2 = w2Type.byteSize();
            // W1: block j's rows [j·BN, j·BN + w) are one contiguous run of w·C elements.
            rows(count, (long) ns * p.c, (lo, hi) -> {
                for (int q = lo; q < hi; q++) {
                    long n0 = (long) p.idx[first + q] * p.bn;
                    long w = Math.min(p.bn, p.h - n0);
                    MemorySegment.copy(w1, n0 * p.c * e1, w1Copy, (long) q * p.bn * p.c * e1, w * p.c * e1);
                }
            });
            // W2: row c of W2_S is the listed runs of W2's row c.
            rows(p.c, (long) ns * p.c, (lo, hi) -> {
                for (int c = lo; c < hi; c++) {
                    long src = (long) c * p.h;
                    long dst = (long) c * ns;
                    for (int q = 0; q < count; q++) {
                        long n0 = (long) p.idx[first + q] * p.bn;
                        long w = Math.min(p.bn, p.h - n0);
                        MemorySegment.copy(w2, (src + n0) * e2, w2Copy, (dst + (long) q * p.bn) * e2, w * e2);
                    }
                }
            });
        }
    }

    // --- the layout, read from its I32 tensors and checked once per call

    /**
     * A checked copy of the layout and the op's sizes: N rows, C, H, BN, the compacted width hw = maxBlocks·BN, and
     * per token block its real compacted width nS and whether its blocks are consecutive.
     */
    private static final class Plan {
        final int n;
        final int c;
        final int h;
        final int bn;
        final int tokenBlock;
        final int nTB;
        final int hw;
        final int[] ptr;
        final int[] idx;
        final int[] ns;
        final boolean[] consecutive;
        final int maxNs;
        final int maxRows;

        private Plan(String op, NeuronLayout layout, int c, int h) {
            if (layout == null) {
                throw new IllegalArgumentException(op + ": layout must not be null");
            }
            this.n = layout.rows();
            this.c = c;
            this.h = h;
            this.bn = layout.neuronBlock();
            this.tokenBlock = layout.tokenBlock();
            this.nTB = layout.numTokenBlocks();
            long width = (long) layout.maxBlocks() * bn;
            if (width > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(op + ": compacted width maxBlocks·BN = " + layout.maxBlocks()
                        + "·" + bn + " exceeds " + Integer.MAX_VALUE);
            }
            this.hw = (int) width;
            this.maxRows = Math.min(tokenBlock, n);
            Tensor rowPtr = CpuChecks.require(op, "layout rowPtr", layout.rowPtr(), DType.I32);
            Tensor blockIdx = CpuChecks.require(op, "layout blockIdx", layout.blockIdx(), DType.I32);
            this.ptr = rowPtr.host().toArray(ValueLayout.JAVA_INT_UNALIGNED);
            int nBlocks = (int) ((h + (long) bn - 1) / bn);
            if (ptr[0] != 0) {
                throw new IllegalArgumentException(op + ": NeuronLayout rowPtr[0] must be 0, got " + ptr[0]);
            }
            for (int r = 0; r < nTB; r++) {
                if (ptr[r + 1] < ptr[r]) {
                    throw new IllegalArgumentException(op + ": NeuronLayout rowPtr must be non-decreasing, but rowPtr["
                            + (r + 1) + "] = " + ptr[r + 1] + " < rowPtr[" + r + "] = " + ptr[r]);
                }
                if (ptr[r + 1] - ptr[r] > layout.maxBlocks()) {
                    throw new IllegalArgumentException(op + ": NeuronLayout token block " + r + " lists "
                            + (ptr[r + 1] - ptr[r]) + " neuron blocks, more than maxBlocks = " + layout.maxBlocks());
                }
            }
            if (ptr[nTB] > blockIdx.numel()) {
                throw new IllegalArgumentException(op + ": NeuronLayout rowPtr[" + nTB + "] = " + ptr[nTB]
                        + " exceeds the " + blockIdx.numel() + " entries of blockIdx");
            }
            this.idx = blockIdx.host().asSlice(0, (long) ptr[nTB] * Integer.BYTES)
                    .toArray(ValueLayout.JAVA_INT_UNALIGNED);
            this.ns = new int[nTB];
            this.consecutive = new boolean[nTB];
            int widest = 0;
            for (int r = 0; r < nTB; r++) {
                boolean run = true;
                for (int e = ptr[r]; e < ptr[r + 1]; e++) {
                    int j = idx[e];
                    if (j < 0 || j >= nBlocks) {
                        throw new IllegalArgumentException(op + ": NeuronLayout blockIdx[" + e + "] = " + j
                                + " (token block " + r + ") is out of range: H = " + h + " with BN = " + bn + " has "
                                + nBlocks + " neuron blocks");
                    }
                    if (e > ptr[r] && j <= idx[e - 1]) {
                        throw new IllegalArgumentException(op + ": NeuronLayout blockIdx of token block " + r
                                + " must be strictly ascending, but blockIdx[" + e + "] = " + j + " follows "
                                + idx[e - 1]);
                    }
                    run &= e == ptr[r] || j == idx[e - 1] + 1;
                    ns[r] += (int) Math.min(bn, h - (long) j * bn);
                }
                consecutive[r] = run;
                widest = Math.max(widest, ns[r]);
            }
            this.maxNs = widest;
        }

        static Plan of(String op, NeuronLayout layout, Tensor w1, Tensor w2) {
            requireWeight(op, "w1", w1);
            requireWeight(op, "w2", w2);
            int h = w1.shape().idim(0);
            int c = w1.shape().idim(1);
            if (w2.shape().idim(0) != c || w2.shape().idim(1) != h) {
                throw new IllegalArgumentException(op + ": w1 " + w1.shape() + " is (H, C) = (" + h + ", " + c
                        + "), so w2 must be (C, H) = (" + c + ", " + h + "), got " + w2.shape());
            }
            return new Plan(op, layout, c, h);
        }

        private static void requireWeight(String op, String name, Tensor w) {
            if (w == null) {
                throw new IllegalArgumentException(op + ": " + name + " must not be null");
            }
            if (w.shape().rank() != 2) {
                throw new IllegalArgumentException(op + ": " + name + " must be 2-D, got " + w.shape());
            }
            if (w.dtype() != DType.F32 && w.dtype() != DType.F16 && w.dtype() != DType.BF16) {
                throw new IllegalArgumentException(op + ": " + name + " dtype " + w.dtype()
                        + " not supported (f32, f16, bf16)");
            }
            CpuChecks.require(op, name, w, w.dtype());
        }

        /** Fails unless t is an F32 (…, C) host tensor with N rows. */
        void requireRows(String op, String name, Tensor t) {
            CpuChecks.require(op, name, t, DType.F32);
            if (OpShapes.lastDim(op, name, t) != c || t.shape().rows() != n) {
                throw new IllegalArgumentException(op + ": " + name + " must be (N, C) = (" + n + ", " + c
                        + ") (N from the layout, C from w1), got " + t.shape());
            }
        }

        void requireHidden(String op, Tensor t) {
            CpuChecks.require(op, "hidden", t, DType.F32);
            if (t.shape().rank() == 0 || t.shape().idim(-1) != hw || t.shape().rows() != n) {
                throw new IllegalArgumentException(op + ": hidden must be (N, maxBlocks·BN) = (" + n + ", " + hw
                        + "), got " + t.shape());
            }
        }

        /** Fails unless t is null or an F32 host vector of length len. */
        void requireBias(String op, String name, Tensor t, int len) {
            if (t != null) {
                CpuChecks.require(op, name, t, DType.F32).requireShape(op + " " + name, len);
            }
        }

        int rowStart(int r) {
            return r * tokenBlock;
        }

        int rowEnd(int r) {
            return (int) Math.min(n, (long) (r + 1) * tokenBlock);
        }

        /** Whether token blocks a and b list the same neuron blocks. */
        boolean sameBlocks(int a, int b) {
            return Arrays.equals(idx, ptr[a], ptr[a + 1], idx, ptr[b], ptr[b + 1]);
        }

        /** out[q·BN + t] = bias[j·BN + t] over token block r's listed blocks S[q] = j. */
        void gatherBias(int r, MemorySegment bias, float[] out) {
            for (int e = ptr[r]; e < ptr[r + 1]; e++) {
                long n0 = (long) idx[e] * bn;
                int w = (int) Math.min(bn, h - n0);
                MemorySegment.copy(bias, ValueLayout.JAVA_FLOAT_UNALIGNED, n0 * Float.BYTES, out,
                        (e - ptr[r]) * bn, w);
            }
        }
    }
}
