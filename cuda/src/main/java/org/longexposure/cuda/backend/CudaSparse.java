package org.longexposure.cuda.backend;

import static org.longexposure.cuda.backend.CudaBackend.ptr;

import java.util.HashMap;
import java.util.Map;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.SparseOps;
import org.longexposure.cuda.CudaException;
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
 *       least {@link CudaOptions#sparseMlpGemmRows()} rows). For a group of token blocks (all of them, or as many
 *       as {@link #GROUP_BYTES} of gathered operands hold), {@code sparse_mlp_gather} copies each token block's
 *       listed W1 rows into W1c_r (HW, C), the matching W2 columns into W2c_r (C, HW) and b1 into b1c_r (HW) bf16,
 *       zeros in the slots past the token block's count (so the padded hidden columns are relu(0) = 0 and add
 *       nothing); then dense products on {@link CublasGemm}, at cuBLASLt's rate, strided-batched over the group's
 *       full token blocks (a partial last token block gets a call of its own):
 * <pre>
 *   forward   hidden_r = relu(inp_r·W1c_rᵀ + b1c_r)   cuBLASLt, RELU_BIAS epilogue (as linearForwardRelu)
 *             out_r    = hidden_r·W2c_rᵀ + b2 (+ res_r) cuBLASLt, BIAS epilogue (residual: C, beta = 1)
 *   backward  dH_r     = dOut_r·W2c_r                  cuBLASLt into a bf16 scratch
 *             dH ⊙= (hidden &gt; 0), per-64-row-slab column sums       sparse_mlp_relu_grad
 *             dB1[listed neurons] += Σ slabs, in order               sparse_mlp_bias1_grad
 *             dInp_r   = dH_r·W1c_r (overwrite)        cuBLASLt
 * </pre>
 *       The backward gathers again rather than keeping the forward's copies (2·HW·C bf16 per layer, 67 MB at
 *       OPT-1.3B's full width: 1.6 GB over 24 layers, for a copy that costs a few % of the products).</li>
 *   <li><b>direct</b> tensor-core kernels of {@code sparse_mlp.cu} (token blocks of fewer rows, where gathering per
 *       token block would multiply the weight traffic by the number of token blocks): one CTA per (output tile of
 *       128 columns, row tile of TM = 128 rows, or 64 when TB = 64·odd), each CTA looping only over its token
 *       block's listed neuron blocks, weights read in place:
 * <pre>
 *   forward   hidden (N, HW) = relu(inp·W1_Sᵀ + b1_S) compacted, 0 past nS_r    sparse_mlp_fc1   grid (HW/128, N/TM)
 *             out (N, C)     = hidden·W2_Sᵀ + b2 (+ residual)                   sparse_mlp_fc2   grid (C/128, N/TM)
 *   backward  dH (N, HW)     = (dOut·W2_S) ⊙ (hidden &gt; 0), bf16 scratch        sparse_mlp_dhidden
 *             dInp (N, C)    = dH·W1_S (overwrite)                              sparse_mlp_dinp
 *             dB1 += Σ_rows dH at listed neurons: per-(row tile, column) partials, then sparse_mlp_bias1_grad
 * </pre></li>
 * </ul>
 * <b>Rule</b> (host-known values only): direct iff {@code min(TB, N) < sparseMlpGemmRows} (default
 * {@link CudaOptions#DEFAULT_SPARSE_MLP_GEMM_ROWS} = 256) and the direct kernels support the layout (TB a multiple of
 * 64, BN ∈ {64, 128}); otherwise gather. The crossover, measured on an H200 at OPT-1.3B shapes (N = 4096, C 2048,
 * H 8192, BN 128; forward + backward, each path forced; cuda/notes/sparse-mlp.md): the direct kernels' time hardly
 * depends on TB (1.90-1.98 ms at full density, 0.54-0.58 at 25 %, 0.19-0.20 at 5 %); gathering moves 2·HW·C bf16
 * each way per token block, twice per step, so its time falls with TB: at TB = 128 the direct kernels win at every
 * density (gathered: 3.72 / 0.92 / 0.24 ms), at TB = 256 the two are even at full density and gathering wins below
 * (2.08 / 0.54 / 0.16), from TB = 512 gathering wins everywhere (1.41 / 0.38 / 0.13), and one token block of all
 * 4096 rows runs at dense cuBLASLt's rate (0.96 / 0.31 / 0.12; dense 0.90).
 * Both paths: {@code dB2 += Σ_rows dOut} as 64-row slab sums ({@code sparse_mlp_relu_grad} without a mask) added
 * in order ({@code sparse_mlp_slab_sum}); HW = 0 (a layer that computes no neuron) writes out = b2 (+ residual)
 * per row ({@code sparse_mlp_bias_rows}, or zeros), dInp = 0, and leaves dB1 untouched. A residual joins out in
 * the second product (the gather path's epilogue C, the fc2 kernel's epilogue): no pass of its own.
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
 * forward + backward; the gather moves 2·HW·C bf16 per token block each way, twice per forward + backward. Memory:
 * one grow-only device scratch holds, during a call, a group's gathered W1c, W2c, b1c (2·HW·C + HW bf16 per token
 * block) and in backward the group's dH (rows·HW bf16) and slab sums (f32); the direct path's backward holds dH
 * (N·HW) and its per-tile partials; both dB2's slab sums (ceil(N / 64)·C f32). Nothing is kept between calls. All
 * work is queued on the backend's stream.
 */
final class CudaSparse implements SparseOps {
    private static final int THREADS = 256;
    private static final int TILE_N = 128;
    private static final int BK = 64;
    private static final int STAGES = 3;
    /** Rows per slab of sparse_mlp_relu_grad's column sums (the kernel's kSlab). */
    private static final int SLAB = 64;
    /**
     * Gathered operands per group of token blocks at most (at least one token block): 256 MiB, three token blocks
     * of OPT-1.3B's full width, 85 at 5 % density.
     */
    private static final long GROUP_BYTES = 256L << 20;

    private final CudaBackend backend;
    private final CudaAttention attention;
    private final CublasGemm gemm;
    private final DeviceScratch scratch;
    private final int gemmRows;
    private final Map<String, CudaFunction> functions = new HashMap<>();
    /** cuBLASLt refused a strided-batched product once: the gather path then runs one call per token block. */
    private boolean batchRefused;

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
                                 Tensor residual, NeuronLayout layout) {
        String op = "sparseMlpForward";
        Plan p = Plan.of(op, layout, w1, w2, gemmRows);
        p.requireRows(op, "out", out);
        p.requireHidden(op, hidden);
        p.requireRows(op, "inp", inp);
        p.requireBias(op, "b1", b1, p.h);
        p.requireBias(op, "b2", b2, p.c);
        if (residual != null) {
            p.requireRows(op, "residual", residual);
        }
        if (p.hw == 0) {
            if (b2 == null && residual == null) {
                backend.stream().memsetD8(ptr(out), (byte) 0, (long) p.n * p.c * 2);
            } else {
                int grid = OpChecks.strideBlocks((long) p.n * p.c, THREADS, 4096);
                backend.stream().launch(function("sparse_mlp_bias_rows", 0), grid, 1, 1, THREADS, 1, 1, 0,
                        KernelArgs.of(out, opt(b2), opt(residual), p.n, p.c));
            }
            return;
        }
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        if (p.direct) {
            launch(p, "sparse_mlp_fc1", false, ceilDiv(p.hw, TILE_N),
                    KernelArgs.of(inp, w1, opt(b1), rowPtr, blocks, hidden, p.n, p.c, p.h, p.bn, p.hw, p.tb));
            launch(p, "sparse_mlp_fc2", false, ceilDiv(p.c, TILE_N),
                    KernelArgs.of(hidden, w2, opt(b2), opt(residual), rowPtr, blocks, out, p.n, p.c, p.h, p.bn, p.hw,
                            p.tb));
            return;
        }
        Scratch sc = Scratch.of(p, false, false, scratch);
        long b2s = b2 == null ? 0 : backend.shadows().of(b2);
        for (int r0 = 0; r0 < p.nTB; r0 += sc.group) {
            int cnt = Math.min(sc.group, p.nTB - r0);
            long row0 = p.rowStart(r0);
            gather(p, w1, w2, b1, layout, r0, cnt, sc, b1 != null);
            long hid = ptr(hidden) + row0 * p.hw * 2;
            // hidden = relu(inp·W1cᵀ + b1c), then out = hidden·W2cᵀ + b2 (+ residual: C of the epilogue, beta 1)
            groupProduct(p, r0, cnt, true, p.hw, p.c, ptr(inp) + row0 * p.c * 2, p.c, sc.w1c, p.c, sc.strideW,
                    0, hid, p.hw, b1 != null ? sc.b1c : 0, sc.strideB, true);
            groupProduct(p, r0, cnt, true, p.c, p.hw, hid, p.hw, sc.w2c, p.hw, sc.strideW,
                    residual != null ? ptr(residual) + row0 * p.c * 2 : 0, ptr(out) + row0 * p.c * 2, p.c, b2s, 0,
                    false);
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
        Scratch sc = Scratch.of(p, true, dB1 != null, scratch);
        if (p.hw == 0) {
            backend.stream().memsetD8(ptr(dInp), (byte) 0, (long) p.n * p.c * 2);
        } else if (p.direct) {
            directBackward(p, dInp, dB1, dOut, hidden, w1, w2, layout, sc);
        } else {
            gatherBackward(p, dInp, dB1, dOut, hidden, w1, w2, layout, sc);
        }
        if (dB2 != null) {
            // dB2 += Σ_rows dOut: 64-row slab sums (the ReLU pass without a mask), then the slabs in order.
            int slabs = ceilDiv(p.n, SLAB);
            backend.stream().launch(function("sparse_mlp_relu_grad", 0), ceilDiv(p.c, 256), slabs, 1, 32, 8, 1, 0,
                    KernelArgs.of(dOut, 0L, sc.dB2Partial, p.n, p.c, p.n));
            backend.stream().launch(function("sparse_mlp_slab_sum", 0), OpChecks.strideBlocks(p.c, THREADS, 4096),
                    1, 1, THREADS, 1, 1, 0, KernelArgs.of(dB2, sc.dB2Partial, slabs, p.c));
        }
    }

    private void gatherBackward(Plan p, Tensor dInp, Tensor dB1, Tensor dOut, Tensor hidden, Tensor w1, Tensor w2,
                                NeuronLayout layout, Scratch sc) {
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        for (int r0 = 0; r0 < p.nTB; r0 += sc.group) {
            int cnt = Math.min(sc.group, p.nTB - r0);
            long row0 = p.rowStart(r0);
            int rows = (int) (Math.min(p.n, p.rowStart(r0 + cnt)) - row0);
            int spt = ceilDiv(Math.min(p.tb, rows), SLAB);
            gather(p, w1, w2, null, layout, r0, cnt, sc, false);
            // dH = dOut·W2c, masked by hidden > 0 in place with per-slab column sums, then dInp = dH·W1c.
            groupProduct(p, r0, cnt, false, p.hw, p.c, ptr(dOut) + row0 * p.c * 2, p.c, sc.w2c, p.hw, sc.strideW,
                    0, sc.dH, p.hw, 0, 0, false);
            backend.stream().launch(function("sparse_mlp_relu_grad", 0), ceilDiv(p.hw, 256), cnt * spt, 1, 32, 8, 1,
                    0, KernelArgs.of(sc.dH, ptr(hidden) + row0 * p.hw * 2, sc.partial, rows, p.hw, p.tb));
            if (dB1 != null) {
                backend.stream().launch(function("sparse_mlp_bias1_grad", 0),
                        OpChecks.strideBlocks(p.h, THREADS, 4096), 1, 1, THREADS, 1, 1, 0,
                        KernelArgs.of(dB1, sc.partial, rowPtr, blocks, r0, cnt * spt, spt, p.h, p.bn, p.hw));
            }
            groupProduct(p, r0, cnt, false, p.c, p.hw, sc.dH, p.hw, sc.w1c, p.c, sc.strideW,
                    0, ptr(dInp) + row0 * p.c * 2, p.c, 0, 0, false);
        }
    }

    private void directBackward(Plan p, Tensor dInp, Tensor dB1, Tensor dOut, Tensor hidden, Tensor w1, Tensor w2,
                                NeuronLayout layout, Scratch sc) {
        long rowPtr = ptr(layout.rowPtr());
        long blocks = ptr(layout.blockIdx());
        launch(p, "sparse_mlp_dhidden", true, ceilDiv(p.hw, TILE_N),
                KernelArgs.of(dOut, w2, hidden, rowPtr, blocks, sc.dH, sc.partial, p.n, p.c, p.h, p.bn, p.hw, p.tb));
        if (dB1 != null) {
            int grid = OpChecks.strideBlocks(p.h, THREADS, 4096);
            backend.stream().launch(function("sparse_mlp_bias1_grad", 0), grid, 1, 1, THREADS, 1, 1, 0,
                    KernelArgs.of(dB1, sc.partial, rowPtr, blocks, 0, p.tiles, p.tb / p.tm, p.h, p.bn, p.hw));
        }
        launch(p, "sparse_mlp_dinp", true, ceilDiv(p.c, TILE_N),
                KernelArgs.of(sc.dH, w1, rowPtr, blocks, dInp, p.n, p.c, p.h, p.bn, p.hw, p.tb));
    }

    /**
     * One product over a group of {@code cnt} token blocks from r0, row-major {@code D_i (m_i, n) = A_i·op(B_i)
     * (+ bias_i, ReLU) (+ C_i)}: A_i, C_i and D_i are token block i's rows (a, c, d: the group's first row; row
     * strides lda, ldd, ldd; c = 0 for no C),
     * B_i the gathered operand of item i (b + i·strideB elements), bias_i at {@code bias + i·strideBias}. The full
     * token blocks go in one strided-batched cuBLASLt call, a partial last one in a call of its own. Should cuBLASLt
     * refuse a batched form, the items run one call each (and batching is not tried again).
     */
    private void groupProduct(Plan p, int r0, int cnt, boolean transB, int n, int k, long a, int lda, long b, int ldb,
                              long strideB, long c, long d, int ldd, long bias, long strideBias, boolean relu) {
        float beta = c != 0 ? 1f : 0f;
        long cc = c != 0 ? c : d;
        int full = cnt;
        if (p.rowsOf(r0 + cnt - 1) < p.tb) {
            full--;
        }
        if (full > 1 && !batchRefused) {
            try {
                gemm.matmulStridedBatched(false, transB, p.tb, n, k, 1f, a, lda, (long) p.tb * lda, b, ldb, strideB,
                        beta, cc, d, ldd, (long) p.tb * ldd, full, DType.BF16, bias, strideBias, DType.BF16, relu,
                        backend.stream());
            } catch (CudaException e) {
                batchRefused = true;
            }
        }
        int first = full > 1 && !batchRefused ? full : 0;
        for (int i = first; i < cnt; i++) {
            int m = p.rowsOf(r0 + i);
            long rowOff = (long) i * p.tb;
            gemm.matmul(false, transB, m, n, k, 1f, a + rowOff * lda * 2, lda, b + i * strideB * 2, ldb, beta,
                    cc + rowOff * ldd * 2, d + rowOff * ldd * 2, ldd, DType.BF16,
                    bias == 0 ? 0 : bias + i * strideBias * 2, DType.BF16, relu, backend.stream());
        }
    }

    /**
     * Device addresses of one call's scratch, all in the one grow-only buffer: the gathered operands of a group of
     * {@code group} token blocks (W1c and W2c at {@code strideW} elements per item, b1c at {@code strideB}), the
     * backward's dH of the group's rows (or of all N rows on the direct path) with its column-sum partials, and
     * dB2's slab sums. Unused parts are 0.
     */
    private record Scratch(int group, long strideW, long strideB, long w1c, long w2c, long b1c, long dH,
                           long partial, long dB2Partial) {
        static Scratch of(Plan p, boolean backward, boolean wantDB1, DeviceScratch scratch) {
            long strideW = roundUp((long) p.hw * p.c, 128);
            long strideB = roundUp(p.hw, 128);
            boolean gathered = p.hw > 0 && !p.direct;
            int group = 1;
            long w = 0;
            long bb = 0;
            long dHBytes = 0;
            long partialBytes = 0;
            if (gathered) {
                group = (int) Math.max(1, Math.min(p.nTB, GROUP_BYTES / (4 * strideW + 2 * strideB)));
                w = align(group * strideW * 2);
                bb = align(group * strideB * 2);
                if (backward) {
                    int rows = (int) Math.min(p.n, (long) group * p.tb);
                    dHBytes = align((long) rows * p.hw * 2);
                    partialBytes = wantDB1 ? align((long) group * ceilDiv(Math.min(p.tb, rows), SLAB) * p.hw * 4) : 0;
                }
            } else if (p.hw > 0 && backward) {
                dHBytes = align((long) p.n * p.hw * 2);
                partialBytes = wantDB1 ? align((long) p.tiles * p.hw * 4) : 0;
            }
            long dB2Bytes = backward ? align((long) ceilDiv(p.n, SLAB) * p.c * 4) : 0;
            long base = scratch.address(Math.max(256, 2 * w + bb + dHBytes + partialBytes + dB2Bytes));
            long dH = base + 2 * w + bb;
            return new Scratch(group, strideW, strideB, gathered ? base : 0, gathered ? base + w : 0,
                    gathered ? base + 2 * w : 0, dHBytes > 0 ? dH : 0, partialBytes > 0 ? dH + dHBytes : 0,
                    dB2Bytes > 0 ? dH + dHBytes + partialBytes : 0);
        }
    }

    /** Queues sparse_mlp_gather for token blocks [r0, r0 + cnt): W1c, W2c and (when {@code withBias}) b1c. */
    private void gather(Plan p, Tensor w1, Tensor w2, Tensor b1, NeuronLayout layout, int r0, int cnt, Scratch sc,
                        boolean withBias) {
        long chunks = (long) p.hw * p.c / 8;
        int grid = OpChecks.strideBlocks(chunks, THREADS, Math.max(1, 8 * backend.context().multiprocessorCount()
                / cnt));
        backend.stream().launch(function("sparse_mlp_gather", 0), grid, withBias ? 3 : 2, cnt, THREADS, 1, 1, 0,
                KernelArgs.of(w1, w2, opt(b1), ptr(layout.rowPtr()), ptr(layout.blockIdx()), r0, sc.w1c, sc.w2c,
                        withBias ? sc.b1c : 0L, sc.strideW, sc.strideB, p.c, p.h, p.bn, p.hw));
    }

    /** Whether cuBLASLt refused a strided-batched product (tests: the batched form must be available). */
    boolean batchRefused() {
        return batchRefused;
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

    private static long roundUp(long a, int multiple) {
        return (a + multiple - 1) / multiple * multiple;
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
