package org.longexposure.cuda.backend;

import static org.longexposure.cuda.backend.CudaBackend.ptr;

import java.util.HashMap;
import java.util.Map;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.SparseOps;
import org.longexposure.cuda.blas.CublasGemm;
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
 * <p>The neuron-block-sparse ReLU MLP has two paths; HW = maxBlocks·BN is the compacted width, S_r the listed neuron
 * blocks of token block r, m_r its rows.
 * <ul>
 *   <li><b>gather + cuBLASLt</b> (the main path: one token block spanning the micro-batch, or any token block of at
 *       least {@link CudaOptions#sparseMlpGemmRows()} rows). Per token block, {@code sparse_mlp_gather} copies the
 *       listed W1 rows into W1c (HW, C), the matching W2 columns into W2c (C, HW) and b1 into b1c (HW) bf16, zeros
 *       in the slots past the token block's count (so the padded hidden columns are relu(0) = 0 and add nothing);
 *       then plain dense products on {@link CublasGemm}, at cuBLASLt's rate:
 * <pre>
 *   forward   hidden_r = relu(inp_r·W1cᵀ + b1c)     cuBLASLt, RELU_BIAS epilogue (as linearForwardRelu)
 *             out_r    = hidden_r·W2cᵀ + b2          cuBLASLt, BIAS epilogue
 *   backward  dH       = dOut_r·W2c                  cuBLASLt into a bf16 scratch (m_r, HW)
 *             dH ⊙= (hidden_r &gt; 0), per-64-row-slab column sums    sparse_mlp_relu_grad
 *             dB1[listed neurons] += Σ slabs                          sparse_mlp_bias1_scatter (in slab order)
 *             dInp_r   = dH·W1c (overwrite)          cuBLASLt
 * </pre>
 *       The backward gathers again rather than keeping the forward's copies (2·HW·C bf16 per layer, 67 MB at
 *       OPT-1.3B's full width: 1.6 GB over 24 layers, for a copy that costs ~5 % of the products). Token blocks run
 *       one after another through one scratch; strided-batched products over token blocks are not used, since
 *       the rule sends only token blocks of ≥ 512 rows here, whose products already fill the GPU.</li>
 *   <li><b>direct</b> tensor-core kernels of {@code sparse_mlp.cu} (token blocks of fewer rows, where gathering per
 *       token block would multiply the weight traffic by the number of token blocks): one CTA per (output tile of
 *       128 columns, row tile of TM = 128 rows, or 64 when TB = 64·odd), each CTA looping only over its token
 *       block's listed neuron blocks, weights read in place:
 * <pre>
 *   forward   hidden (N, HW) = relu(inp·W1_Sᵀ + b1_S) compacted, 0 past nS_r    sparse_mlp_fc1   grid (HW/128, N/TM)
 *             out (N, C)     = hidden·W2_Sᵀ + b2                                sparse_mlp_fc2   grid (C/128, N/TM)
 *   backward  dH (N, HW)     = (dOut·W2_S) ⊙ (hidden &gt; 0), bf16 scratch        sparse_mlp_dhidden
 *             dInp (N, C)    = dH·W1_S (overwrite)                              sparse_mlp_dinp
 *             dB1 += Σ_rows dH at listed neurons: per-(row tile, column) partials, then sparse_mlp_bias1_grad
 * </pre></li>
 * </ul>
 * <b>Rule</b> (host-known values only): direct iff {@code min(TB, N) < sparseMlpGemmRows} and the direct kernels
 * support the layout (TB a multiple of 64, BN ∈ {64, 128}); otherwise gather. Measured on an H200 at OPT-1.3B
 * shapes (N = 4096, C 2048, H 8192, BN 128; cuda/notes/sparse-mlp.md): see {@link CudaOptions#DEFAULT_SPARSE_MLP_GEMM_ROWS}.
 * Both paths: {@code dB2 += Σ_rows dOut} by linear.cu's {@code column_sum_bf16}; HW = 0 (a layer that computes no
 * neuron) writes out = b2 per row ({@code sparse_mlp_bias_rows}, or zeros), dInp = 0, and leaves dB1 untouched.
 *
 * <p>Dtypes: inp, out, hidden, dOut, dInp BF16 (fp32 accumulation, one rounding per output); W1 (H, C) and W2 (C, H)
 * BF16 device weights ({@code adoptWeight}); b1, b2, dB1, dB2 F32. The gather path adds the biases in cuBLASLt's
 * epilogue, which takes only a bias of the output's dtype: b1 is rounded to bf16 while gathered and b2 is read
 * through its bf16 shadow, exactly as the dense {@link CudaLinear} does; the direct kernels add the f32 biases.
 * Supported layouts: H a multiple of BN (no partial last block, unlike the CPU), BN and C multiples of 8 (16-byte
 * rows); every operand 16-byte aligned. Anything else fails with an IllegalArgumentException before work is queued.
 * The layout's tensors are read on the device only (no host round trip per layer) and are trusted, as in
 * CudaAttention; a malformed one cannot make the kernels access memory out of bounds (counts clamped to
 * maxBlocks, block ids to [0, H/BN)).
 *
 * <p>Work: {@code 2·Σ_r m_r·HW·C} flops per product on the gather path (the padded slots of a token block listing
 * fewer than maxBlocks are computed as zeros), {@code 2·Σ_r m_r·nS_r·C} on the direct one; four products per
 * forward + backward. Memory: one grow-only device scratch holds, during a call, the gathered W1c, W2c, b1c
 * (2·HW·C + HW bf16) and in backward dH (m·HW bf16) and the slab sums (ceil(m / 64)·HW f32); the direct path's
 * backward holds dH (N·HW) and its partials. Nothing is kept between calls. All work is queued on the backend's
 * stream.
 */
final class CudaSparse implements SparseOps {
    private static final int THREADS = 256;
    private static final int TILE_N = 128;
    private static final int BK = 64;
    private static final int STAGES = 3;
    /** Rows per slab of sparse_mlp_relu_grad's column sums (the kernel's kSlab). */
    private static final int SLAB = 64;

    private final CudaBackend backend;
    private final CudaAttention attention;
    private final CublasGemm gemm;
    private final DeviceScratch scratch;
    private final int gemmRows;
    private final Map<String, CudaFunction> functions = new HashMap<>();

    CudaSparse(CudaBackend backend, CudaAttention attention) {
        this.backend = backend;
        this.attention = attention;
        this.gemm = backend.gemm();
        this.scratch = new DeviceScratch(backend.arena());
        this.gemmRows = backend.options().sparseMlpGemmRows();
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
        Plan p = Plan.of(op, layout, w1, w2, gemmRows);
        p.requireRows(op, "out", out);
        p.requireHidden(op, hidden);
        p.requireRows(op, "inp", inp);
        p.requireBias(op, "b1", b1, p.h);
        p.requireBias(op, "b2", b2, p.c);
        if (p.hw == 0) {
            if (b2 == null) {
                backend.stream().memsetD8(ptr(out), (byte) 0, (long) p.n * p.c * 2);
            } else {
                int grid = OpChecks.strideBlocks((long) p.n * p.c, THREADS, 4096);
                backend.stream().launch(function("sparse_mlp_bias_rows", 0), grid, 1, 1, THREADS, 1, 1, 0,
                        KernelArgs.of(out, b2, p.n, p.c));
            }
            return;
        }
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        if (p.direct) {
            launch(p, "sparse_mlp_fc1", false, ceilDiv(p.hw, TILE_N),
                    KernelArgs.of(inp, w1, opt(b1), rowPtr, blocks, hidden, p.n, p.c, p.h, p.bn, p.hw, p.tb));
            launch(p, "sparse_mlp_fc2", false, ceilDiv(p.c, TILE_N),
                    KernelArgs.of(hidden, w2, opt(b2), rowPtr, blocks, out, p.n, p.c, p.h, p.bn, p.hw, p.tb));
            return;
        }
        Gathered g = gatherScratch(p, 0);
        long b2s = b2 == null ? 0 : backend.shadows().of(b2);
        for (int r = 0; r < p.nTB; r++) {
            long r0 = p.rowStart(r);
            int m = p.rowsOf(r);
            gather(p, w1, w2, b1, layout, r, g, b1 != null);
            long hid = ptr(hidden) + r0 * p.hw * 2;
            gemm.matmul(false, true, m, p.hw, p.c, 1f, ptr(inp) + r0 * p.c * 2, p.c, g.w1c, p.c, 0f, hid, p.hw,
                    DType.BF16, b1 != null ? g.b1c : 0, DType.BF16, true, backend.stream());
            gemm.matmul(false, true, m, p.c, p.hw, 1f, hid, p.hw, g.w2c, p.hw, 0f, ptr(out) + r0 * p.c * 2, p.c,
                    DType.BF16, b2s, DType.BF16, false, backend.stream());
        }
    }

    @Override
    public void sparseMlpBackward(Tensor dInp, Tensor dB1, Tensor dB2, Tensor dOut, Tensor hidden, Tensor w1,
                                  Tensor w2, NeuronLayout layout) {
        String op = "sparseMlpBackward";
        Plan p = Plan.of(op, layout, w1, w2, gemmRows);
        p.requireRows(op, "dInp", dInp);
        p.requireBias(op, "dB1", dB1, p.h);
        p.requireBias(op, "dB2", dB2, p.c);
        p.requireRows(op, "dOut", dOut);
        p.requireHidden(op, hidden);
        backend.shadows().wrote(dB1);
        backend.shadows().wrote(dB2);
        if (p.hw == 0) {
            backend.stream().memsetD8(ptr(dInp), (byte) 0, (long) p.n * p.c * 2);
        } else if (p.direct) {
            directBackward(p, dInp, dB1, dOut, hidden, w1, w2, layout);
        } else {
            gatherBackward(p, dInp, dB1, dOut, hidden, w1, w2, layout);
        }
        if (dB2 != null) {
            CudaFunction f = backend.kernels().function("linear", "column_sum_bf16");
            backend.stream().launch(f, ceilDiv(p.c, 32), 1, 1, 32, 8, 1, 0, KernelArgs.of(dB2, dOut, 1f, p.n, p.c));
        }
    }

    private void gatherBackward(Plan p, Tensor dInp, Tensor dB1, Tensor dOut, Tensor hidden, Tensor w1, Tensor w2,
                                NeuronLayout layout) {
        int maxRows = p.rowsOf(0);
        int maxSlabs = ceilDiv(maxRows, SLAB);
        long dHBytes = align((long) maxRows * p.hw * 2);
        long partialBytes = dB1 == null ? 0 : align((long) maxSlabs * p.hw * 4);
        Gathered g = gatherScratch(p, dHBytes + partialBytes);
        long dH = g.extra;
        long partial = dB1 == null ? 0 : dH + dHBytes;
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        for (int r = 0; r < p.nTB; r++) {
            long r0 = p.rowStart(r);
            int m = p.rowsOf(r);
            int slabs = ceilDiv(m, SLAB);
            gather(p, w1, w2, null, layout, r, g, false);
            gemm.matmul(false, false, m, p.hw, p.c, 1f, ptr(dOut) + r0 * p.c * 2, p.c, g.w2c, p.hw, 0f, dH, p.hw,
                    DType.BF16, 0, null, false, backend.stream());
            backend.stream().launch(function("sparse_mlp_relu_grad", 0), ceilDiv(p.hw, 256), slabs, 1, 32, 8, 1, 0,
                    KernelArgs.of(dH, ptr(hidden) + r0 * p.hw * 2, partial, m, p.hw));
            if (dB1 != null) {
                int grid = OpChecks.strideBlocks(p.hw, THREADS, 4096);
                backend.stream().launch(function("sparse_mlp_bias1_scatter", 0), grid, 1, 1, THREADS, 1, 1, 0,
                        KernelArgs.of(dB1, partial, rowPtr, blocks, r, slabs, p.h, p.bn, p.hw));
            }
            gemm.matmul(false, false, m, p.c, p.hw, 1f, dH, p.hw, g.w1c, p.c, 0f, ptr(dInp) + r0 * p.c * 2, p.c,
                    DType.BF16, 0, null, false, backend.stream());
        }
    }

    private void directBackward(Plan p, Tensor dInp, Tensor dB1, Tensor dOut, Tensor hidden, Tensor w1, Tensor w2,
                                NeuronLayout layout) {
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        long dHBytes = align((long) p.n * p.hw * 2);
        long partialBytes = dB1 == null ? 0 : align((long) p.tiles * p.hw * 4);
        long dH = scratch.address(dHBytes + partialBytes);
        long partial = dB1 == null ? 0 : dH + dHBytes;
        launch(p, "sparse_mlp_dhidden", true, ceilDiv(p.hw, TILE_N),
                KernelArgs.of(dOut, w2, hidden, rowPtr, blocks, dH, partial, p.n, p.c, p.h, p.bn, p.hw, p.tb));
        if (dB1 != null) {
            int grid = OpChecks.strideBlocks(p.h, THREADS, 4096);
            backend.stream().launch(function("sparse_mlp_bias1_grad", 0), grid, 1, 1, THREADS, 1, 1, 0,
                    KernelArgs.of(dB1, partial, rowPtr, blocks, p.tiles, p.tm, p.tb, p.h, p.bn, p.hw));
        }
        launch(p, "sparse_mlp_dinp", true, ceilDiv(p.c, TILE_N),
                KernelArgs.of(dH, w1, rowPtr, blocks, dInp, p.n, p.c, p.h, p.bn, p.hw, p.tb));
    }

    /** Device addresses of the gathered operands in the scratch, then {@code extraBytes} more at {@code extra}. */
    private record Gathered(long w1c, long w2c, long b1c, long extra) {
    }

    private Gathered gatherScratch(Plan p, long extraBytes) {
        long wBytes = align((long) p.hw * p.c * 2);
        long bBytes = align((long) p.hw * 2);
        long base = scratch.address(2 * wBytes + bBytes + extraBytes);
        return new Gathered(base, base + wBytes, base + 2 * wBytes, base + 2 * wBytes + bBytes);
    }

    /** Queues sparse_mlp_gather for token block r: W1c, W2c and (when {@code withBias}) b1c. */
    private void gather(Plan p, Tensor w1, Tensor w2, Tensor b1, NeuronLayout layout, int r, Gathered g,
                        boolean withBias) {
        long chunks = (long) p.hw * p.c / 8;
        int grid = OpChecks.strideBlocks(chunks, THREADS, 8 * backend.context().multiprocessorCount());
        backend.stream().launch(function("sparse_mlp_gather", 0), grid, withBias ? 3 : 2, 1, THREADS, 1, 1, 0,
                KernelArgs.of(w1, w2, opt(b1), ptr(layout.rowPtr()), ptr(layout.blockIdx()), r, g.w1c, g.w2c,
                        withBias ? g.b1c : 0L, p.c, p.h, p.bn, p.hw));
    }

    /** One direct GEMM kernel of the row tile's instance, grid (tiles, N / TM). */
    private void launch(Plan p, String stem, boolean nn, int tiles, KernelArgs args) {
        int smem = smemBytes(p.tm, nn);
        backend.stream().launch(function(stem + "_tm" + p.tm, smem), tiles, p.tiles, 1, THREADS, 1, 1, smem, args);
    }

    /** Three pipeline stages of the A tile (TM × 64, rows padded to 72) and the B tile ([128][72] or [64][136]). */
    static int smemBytes(int rowTile, boolean nn) {
        int a = rowTile * (BK + 8);
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

    /** Whether the direct kernels support token block tb and neuron block bn (a row tile of 128 or 64 divides TB). */
    static boolean directSupports(int tb, int bn) {
        return tb % 64 == 0 && (bn == 64 || bn == 128);
    }

    /**
     * The path rule: the direct kernels for token blocks of fewer than {@code gemmRows} rows (min(TB, N)) that they
     * support, gather + cuBLASLt otherwise.
     */
    static boolean useDirect(int tb, int bn, int rows, int gemmRows) {
        return Math.min(tb, rows) < gemmRows && directSupports(tb, bn);
    }

    /**
     * The sizes of one call (N, C, H from the weights and layout; TB, BN, HW from the layout), the path, the direct
     * path's row tile TM and its count, and the checks.
     */
    private record Plan(int n, int c, int h, int tb, int bn, int hw, int nTB, boolean direct, int tm, int tiles) {
        static Plan of(String op, NeuronLayout layout, Tensor w1, Tensor w2, int gemmRows) {
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
            if (bn % 8 != 0) {
                throw new IllegalArgumentException(op + ": NeuronLayout neuronBlock " + bn + " is not supported on "
                        + "cuda (expected a multiple of 8 neurons: 16-byte weight runs)");
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
            if (hw * c / 8 > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(op + ": compacted width " + hw + " times C = " + c + " exceeds "
                        + "the gather's 2^34-element limit");
            }
            int n = layout.rows();
            boolean direct = useDirect(tb, bn, n, gemmRows);
            int tm = tb % 128 == 0 ? 128 : 64;
            int tiles = ceilDiv(n, tm);
            if (direct && tiles > 65535) {
                throw new IllegalArgumentException(op + ": " + tiles + " row tiles of " + tm + " exceed the grid "
                        + "limit 65535");
            }
            requireAligned(op, "w1", w1);
            requireAligned(op, "w2", w2);
            return new Plan(n, c, h, tb, bn, (int) hw, layout.numTokenBlocks(), direct, tm, tiles);
        }

        long rowStart(int r) {
            return (long) r * tb;
        }

        /** Rows of token block r (the last one may be partial). */
        int rowsOf(int r) {
            return (int) Math.min(tb, n - rowStart(r));
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
