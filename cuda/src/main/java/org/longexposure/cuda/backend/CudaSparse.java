package org.longexposure.cuda.backend;

import static org.longexposure.cuda.backend.CudaBackend.ptr;

import java.util.HashMap;
import java.util.Map;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.SparseOps;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Long Exposure's dynamic sparse operators on the GPU (design note 6.1-6.2; CPU twins CpuSparseAttention and
 * {@link org.longexposure.backend.cpu.CpuSparseMlp}, same formats and semantics).
 *
 * <p>Block-sparse attention is {@link CudaAttention}'s flash kernels walking the {@link BlockLayout}'s tile lists
 * (block size 64; a full layout gives the dense bits).
 *
 * <p>The neuron-block-sparse ReLU MLP runs the tensor-core kernels of {@code sparse_mlp.cu}, one CTA per (output
 * tile of 128 columns, token block), each CTA looping only over its token block's listed neuron blocks:
 * <pre>
 *   forward   hidden (N, HW) = relu(inp·W1_Sᵀ + b1_S) compacted, 0 past nS_r    sparse_mlp_fc1   grid (HW/128, nTB)
 *             out (N, C)     = hidden·W2_Sᵀ + b2                                sparse_mlp_fc2   grid (C/128, nTB)
 *   backward  dH (N, HW)     = (dOut·W2_S) ⊙ (hidden &gt; 0), bf16 scratch        sparse_mlp_dhidden
 *             dInp (N, C)    = dH·W1_S (overwrite)                              sparse_mlp_dinp
 *             dB1 += Σ_rows dH at listed neurons: per-(token block, column) partials, then sparse_mlp_bias1_grad
 *             dB2 += Σ_rows dOut                                                linear.cu column_sum_bf16
 * </pre>
 * Dtypes: inp, out, hidden, dOut, dInp BF16 (fp32 accumulation, one rounding per output); W1 (H, C) and W2 (C, H)
 * BF16 device weights read in place ({@code adoptWeight}); b1, b2, dB1, dB2 F32. Supported layouts: token block
 * TB ∈ {64, 128} rows (the CTA's row tile), neuron block BN ∈ {64, 128} with H a multiple of BN (no partial last
 * block, unlike the CPU), C a multiple of 8 (16-byte rows); every operand 16-byte aligned. Anything else fails with
 * an IllegalArgumentException before work is queued. The layout's tensors are read on the device only (no host
 * round trip per layer) and are trusted, as in CudaAttention; a malformed one cannot make the kernels access
 * memory out of bounds (see the kernel file).
 *
 * <p>Work: {@code 2·Σ_r m_r·nS_r·C} flops per product, four products per forward + backward, proportional to the
 * density. Memory: one grow-only device scratch holds dH (N·HW bf16) and, when dB1 is wanted, the partials
 * (nTB·HW f32) during a backward call; nothing else is kept. All work is queued on the backend's stream.
 */
final class CudaSparse implements SparseOps {
    private static final int THREADS = 256;
    private static final int TILE_N = 128;
    private static final int BK = 64;
    private static final int STAGES = 3;

    private final CudaBackend backend;
    private final CudaAttention attention;
    private final DeviceScratch scratch;
    private final Map<String, CudaFunction> functions = new HashMap<>();

    CudaSparse(CudaBackend backend, CudaAttention attention) {
        this.backend = backend;
        this.attention = attention;
        this.scratch = new DeviceScratch(backend.arena());
    }

    @Override
    public void blockSparseAttentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                            int numHeads, float scale, BlockLayout layout) {
        attention.blockSparseAttentionForward(out, lse, q, k, v, keyMask, numHeads, scale, layout);
    }

    @Override
    public void blockSparseAttentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                                             Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale,
                                             BlockLayout layout) {
        attention.blockSparseAttentionBackward(dQ, dK, dV, dOut, out, lse, q, k, v, keyMask, numHeads, scale, layout);
    }

    @Override
    public void sparseMlpForward(Tensor out, Tensor hidden, Tensor inp, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                                 NeuronLayout layout) {
        String op = "sparseMlpForward";
        Plan p = Plan.of(op, layout, w1, w2);
        p.requireRows(op, "out", out);
        p.requireHidden(op, hidden);
        p.requireRows(op, "inp", inp);
        p.requireBias(op, "b1", b1, p.h);
        p.requireBias(op, "b2", b2, p.c);
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        if (p.hw > 0) {
            launch(p, "sparse_mlp_fc1", false, ceilDiv(p.hw, TILE_N),
                    KernelArgs.of(inp, w1, opt(b1), rowPtr, blocks, hidden, p.n, p.c, p.h, p.bn, p.hw));
        }
        launch(p, "sparse_mlp_fc2", false, ceilDiv(p.c, TILE_N),
                KernelArgs.of(p.hw > 0 ? ptr(hidden) : 0L, w2, opt(b2), rowPtr, blocks, out, p.n, p.c, p.h, p.bn,
                        p.hw));
    }

    @Override
    public void sparseMlpBackward(Tensor dInp, Tensor dB1, Tensor dB2, Tensor dOut, Tensor hidden, Tensor w1,
                                  Tensor w2, NeuronLayout layout) {
        String op = "sparseMlpBackward";
        Plan p = Plan.of(op, layout, w1, w2);
        p.requireRows(op, "dInp", dInp);
        p.requireBias(op, "dB1", dB1, p.h);
        p.requireBias(op, "dB2", dB2, p.c);
        p.requireRows(op, "dOut", dOut);
        p.requireHidden(op, hidden);
        backend.shadows().wrote(dB1);
        backend.shadows().wrote(dB2);
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        long dHBytes = align((long) p.n * p.hw * 2);
        long partialBytes = dB1 == null ? 0 : align((long) p.nTB * p.hw * 4);
        long dH = 0;
        long partial = 0;
        if (p.hw > 0) {
            dH = scratch.address(dHBytes + partialBytes);
            partial = dB1 == null ? 0 : dH + dHBytes;
            launch(p, "sparse_mlp_dhidden", true, ceilDiv(p.hw, TILE_N),
                    KernelArgs.of(dOut, w2, hidden, rowPtr, blocks, dH, partial, p.n, p.c, p.h, p.bn, p.hw));
            if (dB1 != null) {
                int grid = OpChecks.strideBlocks(p.h, THREADS, 4096);
                backend.stream().launch(function("sparse_mlp_bias1_grad", 0), grid, 1, 1, THREADS, 1, 1, 0,
                        KernelArgs.of(dB1, partial, rowPtr, blocks, p.nTB, p.h, p.bn, p.hw));
            }
        }
        launch(p, "sparse_mlp_dinp", true, ceilDiv(p.c, TILE_N),
                KernelArgs.of(dH, w1, rowPtr, blocks, dInp, p.n, p.c, p.h, p.bn, p.hw));
        if (dB2 != null) {
            CudaFunction f = backend.kernels().function("linear", "column_sum_bf16");
            backend.stream().launch(f, ceilDiv(p.c, 32), 1, 1, 32, 8, 1, 0, KernelArgs.of(dB2, dOut, 1f, p.n, p.c));
        }
    }

    /** One GEMM kernel of the token-block size's instance, grid (tiles, nTB). */
    private void launch(Plan p, String stem, boolean nn, int tiles, KernelArgs args) {
        int smem = smemBytes(p.tb, nn);
        backend.stream().launch(function(stem + "_tb" + p.tb, smem), tiles, p.nTB, 1, THREADS, 1, 1, smem, args);
    }

    /** Three pipeline stages of the A tile (TB × 64, rows padded to 72) and the B tile ([128][72] or [64][136]). */
    static int smemBytes(int tokenBlock, boolean nn) {
        int a = tokenBlock * (BK + 8);
        int b = nn ? BK * (TILE_N + 8) : TILE_N * (BK + 8);
        return STAGES * (a + b) * 2;
    }

    private CudaFunction function(String symbol, int smem) {
        return functions.computeIfAbsent(symbol, s -> {
            CudaFunction f = backend.kernels().function("sparse_mlp", s);
            if (smem > 48 * 1024) {
                f.setMaxDynamicSharedBytes(smem);
            }
            return f;
        });
    }

    private static long opt(Tensor t) {
        return t == null ? 0L : ptr(t);
    }

    private static long align(long bytes) {
        return (bytes + 255) & ~255L;
    }

    private static int ceilDiv(long a, int b) {
        return Math.toIntExact((a + b - 1) / b);
    }

    /** The sizes of one call (N, C, H from the weights and layout; TB, BN, HW from the layout) and its checks. */
    private record Plan(int n, int c, int h, int tb, int bn, int hw, int nTB) {
        static Plan of(String op, NeuronLayout layout, Tensor w1, Tensor w2) {
            if (layout == null) {
                throw new IllegalArgumentException(op + ": layout must not be null");
            }
            OpChecks.require(op, "w1", w1, DType.BF16);
            OpChecks.require(op, "w2", w2, DType.BF16);
            if (w1.shape().rank() != 2) {
                throw new IllegalArgumentException(op + ": w1 must be 2-D (H, C), got " + w1.shape());
            }
            int h = w1.shape().idim(0);
            int c = w1.shape().idim(1);
            w2.requireShape(op + " w2 (C, H)", c, h);
            int tb = layout.tokenBlock();
            int bn = layout.neuronBlock();
            if (tb != 64 && tb != 128) {
                throw new IllegalArgumentException(op + ": NeuronLayout tokenBlock " + tb + " is not supported on "
                        + "cuda (expected 64 or 128 rows: the kernels' row tile)");
            }
            if (bn != 64 && bn != 128) {
                throw new IllegalArgumentException(op + ": NeuronLayout neuronBlock " + bn + " is not supported on "
                        + "cuda (expected 64 or 128 neurons)");
            }
            if (h % bn != 0) {
                throw new IllegalArgumentException(op + ": H = " + h + " (rows of w1) is not a multiple of the "
                        + "neuron block " + bn + "; cuda has no partial last neuron block");
            }
            if (c % 8 != 0) {
                throw new IllegalArgumentException(op + ": C = " + c + " (columns of w1) must be a multiple of 8 on "
                        + "cuda (16-byte rows)");
            }
            OpChecks.require(op, "layout rowPtr", layout.rowPtr(), DType.I32);
            OpChecks.require(op, "layout blockIdx", layout.blockIdx(), DType.I32);
            long hw = (long) layout.maxBlocks() * bn;
            if (hw > h) {
                throw new IllegalArgumentException(op + ": NeuronLayout maxBlocks " + layout.maxBlocks() + " exceeds"
                        + " the " + (h / bn) + " neuron blocks of H = " + h);
            }
            if (layout.numTokenBlocks() > 65535) {
                throw new IllegalArgumentException(op + ": " + layout.numTokenBlocks() + " token blocks exceed the "
                        + "grid limit 65535");
            }
            requireAligned(op, "w1", w1);
            requireAligned(op, "w2", w2);
            return new Plan(layout.rows(), c, h, tb, bn, (int) hw, layout.numTokenBlocks());
        }

        /** BF16 (N, C) on the device, 16-byte aligned. */
        void requireRows(String op, String name, Tensor t) {
            OpChecks.require(op, name, t, DType.BF16);
            if (t.shape().rank() == 0 || t.shape().idim(-1) != c || t.shape().rows() != n) {
                throw new IllegalArgumentException(op + ": " + name + " must be (N, C) = (" + n + ", " + c
                        + ") (N from the layout, C from w1), got " + t.shape());
            }
            requireAligned(op, name, t);
        }

        void requireHidden(String op, Tensor t) {
            OpChecks.require(op, "hidden", t, DType.BF16);
            if (t.shape().rank() == 0 || t.shape().idim(-1) != hw || leadingRows(t) != n) {
                throw new IllegalArgumentException(op + ": hidden must be (N, maxBlocks·BN) = (" + n + ", " + hw
                        + "), got " + t.shape());
            }
            if (hw > 0) {
                requireAligned(op, "hidden", t);
            }
        }

        void requireBias(String op, String name, Tensor t, int len) {
            if (t != null) {
                OpChecks.require(op, name, t, DType.F32);
                t.requireShape(op + " " + name, len);
            }
        }

        /** The product of all but the last dimension (Shape.rows() divides by the last, which may be 0 here). */
        private static long leadingRows(Tensor t) {
            long[] dims = t.shape().dims();
            long r = 1;
            for (int i = 0; i < dims.length - 1; i++) {
                r *= dims[i];
            }
            return r;
        }

        private static void requireAligned(String op, String name, Tensor t) {
            if (ptr(t) % 16 != 0) {
                throw new IllegalArgumentException(op + " " + name + ": device address " + ptr(t)
                        + " is not 16-byte aligned");
            }
        }
    }
}
