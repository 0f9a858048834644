package org.longexposure.cuda.backend;

import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.PredictOps;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The predictor ops on the GPU (kernels in {@code predict.cu}, whose header documents grids and formulas; CPU twin
 * {@link org.longexposure.backend.cpu.CpuPredict}): BF16 activations, F64 masses and scores, I32 masks and layouts.
 * Pooling sums in double and rounds once to BF16; tile masses, scores and selections are in double with the CPU's
 * order of summation, so given the same BF16 projections the layouts equal the CPU's except where CUDA's
 * double exp/log (≤ 1 ulp, vs. Java's) reorders masses equal to the last bit. Each selection is two launches on
 * the backend's stream: one CTA per row chooses its candidates into a byte-flag scratch, then one CTA scans the
 * rows' counts into rowPtr and lists the flagged columns. Nothing is read back to the host.
 */
public final class CudaPredict implements PredictOps {
    private static final String STEM = "predict";
    private static final int POOL_THREADS = 256;
    private static final int ROW_THREADS = 64;
    private static final int NEURON_THREADS = 256;
    private static final int SCAN_THREADS = 1024;
    /** The selections and tile masses keep one row in shared memory: default limit without opting in. */
    private static final int MAX_SMEM = 48 * 1024;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final DeviceScratch scratch;

    public CudaPredict(CudaBackend backend) {
        this.stream = backend.stream();
        this.kernels = backend.kernels();
        this.scratch = new DeviceScratch(backend.arena());
    }

    private CudaFunction function(String symbol) {
        return kernels.function(STEM, symbol);
    }

    @Override
    public void blockMeanPool(Tensor pooled, Tensor counts, Tensor x, Tensor keyMask, int batchSize, int seqLen,
                              int block) {
        String op = "blockMeanPool";
        positive(op, "batchSize", batchSize);
        positive(op, "seqLen", seqLen);
        positive(op, "block", block);
        int c = OpChecks.lastDim(op, "x", OpChecks.require(op, "x", x, DType.BF16));
        long n = (long) batchSize * seqLen;
        int nB = (seqLen + block - 1) / block;
        long rows = (long) batchSize * nB;
        OpChecks.numel(op, "x", x, n * c, "(B·T, C) = (" + n + ", " + c + ")");
        OpChecks.numel(op, "keyMask", OpChecks.require(op, "keyMask", keyMask, DType.I32), n, "(B·T)");
        OpChecks.numel(op, "pooled", OpChecks.require(op, "pooled", pooled, DType.BF16), rows * c,
                "(B·nB, C) = (" + rows + ", " + c + ")");
        OpChecks.numel(op, "counts", OpChecks.require(op, "counts", counts, DType.I32), rows, "(B·nB)");
        int gx = OpChecks.toInt(op, "B·nB", rows);
        int gy = (c + POOL_THREADS - 1) / POOL_THREADS;
        stream.launch(function("predict_block_mean_pool_bf16"), gx, gy, 1, POOL_THREADS, 1, 1, 0,
                KernelArgs.of(pooled, counts, x, keyMask, batchSize, seqLen, c, block));
    }

    @Override
    public void tileMass(Tensor mass, Tensor qt, Tensor kt, Tensor counts, Tensor gamma, int batchSize, int numHeads,
                         int rank) {
        String op = "tileMass";
        positive(op, "batchSize", batchSize);
        positive(op, "numHeads", numHeads);
        positive(op, "rank", rank);
        OpChecks.require(op, "counts", counts, DType.I32);
        if (counts.numel() % batchSize != 0) {
            throw new IllegalArgumentException(op + ": counts " + counts + " must hold B·nB elements, B = "
                    + batchSize);
        }
        int nB = OpChecks.toInt(op, "nB", counts.numel() / batchSize);
        long w = (long) numHeads * rank;
        long rows = (long) batchSize * nB;
        OpChecks.numel(op, "qt", OpChecks.require(op, "qt", qt, DType.BF16), rows * w,
                "(B·nB, NH·R) = (" + rows + ", " + w + ")");
        OpChecks.numel(op, "kt", OpChecks.require(op, "kt", kt, DType.BF16), rows * w,
                "(B·nB, NH·R) = (" + rows + ", " + w + ")");
        OpChecks.numel(op, "gamma", OpChecks.require(op, "gamma", gamma, DType.F32), numHeads, "(NH)");
        OpChecks.numel(op, "mass", OpChecks.require(op, "mass", mass, DType.F64), (long) numHeads * nB * nB,
                "(NH, nB, nB) = (" + numHeads + ", " + nB + ", " + nB + ")");
        int smem = smem(op, "nB", nB, 16);
        stream.launch(function("predict_tile_mass_bf16"), nB, numHeads, 1, ROW_THREADS, 1, 1, smem,
                KernelArgs.of(mass, qt, kt, counts, gamma, batchSize, nB, numHeads, rank));
    }

    @Override
    public void selectTiles(BlockLayout layout, Tensor mass, double coverage) {
        String op = "selectTiles";
        int nh = layout.numHeads();
        int nB = layout.numBlocks();
        OpChecks.numel(op, "mass", OpChecks.require(op, "mass", mass, DType.F64), (long) nh * nB * nB,
                "(NH, nB, nB) = (" + nh + ", " + nB + ", " + nB + ")");
        Tensor rowPtr = OpChecks.require(op, "layout rowPtr", layout.rowPtr(), DType.I32);
        Tensor colIdx = OpChecks.require(op, "layout colIdx", layout.colIdx(), DType.I32);
        long full = (long) nh * nB * (nB + 1) / 2;
        if (colIdx.numel() < full) {
            throw new IllegalArgumentException(op + ": layout colIdx " + colIdx + " must hold at least NH·nB·(nB+1)/2"
                    + " = " + full + " elements (the full causal layout)");
        }
        coverage(op, coverage);
        int rows = OpChecks.toInt(op, "NH·nB", (long) nh * nB);
        long flags = reserve(op, rows, nB);
        long counts = flags + align((long) rows * nB);
        stream.launch(function("predict_select_tiles"), nB, nh, 1, ROW_THREADS, 1, 1, smem(op, "nB", nB, 13),
                KernelArgs.of(flags, counts, mass, nB, coverage));
        stream.launch(function("predict_csr_from_flags"), 1, 1, 1, SCAN_THREADS, 1, 1, 0,
                KernelArgs.of(rowPtr, colIdx, flags, counts, rows, nB));
    }

    @Override
    public void neuronBlockScores(Tensor scores, Tensor z, Tensor keyMask, int tokenBlock, int ffn,
                                  int neuronBlock) {
        String op = "neuronBlockScores";
        positive(op, "tokenBlock", tokenBlock);
        positive(op, "ffn", ffn);
        positive(op, "neuronBlock", neuronBlock);
        int nb = (int) ((ffn + (long) neuronBlock - 1) / neuronBlock);
        int rows = OpChecks.toInt(op, "N", OpChecks.require(op, "keyMask", keyMask, DType.I32).numel());
        int nTB = (rows + tokenBlock - 1) / tokenBlock;
        OpChecks.numel(op, "z", OpChecks.require(op, "z", z, DType.BF16), (long) rows * nb,
                "(N, nb) = (" + rows + ", " + nb + ")");
        OpChecks.numel(op, "scores", OpChecks.require(op, "scores", scores, DType.F64), (long) nTB * nb,
                "(nTB, nb) = (" + nTB + ", " + nb + ")");
        stream.launch(function("predict_neuron_block_scores_bf16"), nTB, (nb + NEURON_THREADS - 1) / NEURON_THREADS,
                1, NEURON_THREADS, 1, 1, 0, KernelArgs.of(scores, z, keyMask, rows, tokenBlock, ffn, neuronBlock, nb));
    }

    @Override
    public void selectNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor keyMask, double coverage) {
        String op = "selectNeuronBlocks";
        int rows = layout.rows();
        int nTB = layout.numTokenBlocks();
        OpChecks.numel(op, "keyMask", OpChecks.require(op, "keyMask", keyMask, DType.I32), rows, "(N)");
        OpChecks.require(op, "scores", scores, DType.F64);
        if (scores.numel() % nTB != 0 || scores.numel() == 0) {
            throw new IllegalArgumentException(op + ": scores " + scores + " must be (nTB, nb) with nTB = " + nTB);
        }
        int nb = OpChecks.toInt(op, "nb", scores.numel() / nTB);
        if (layout.maxBlocks() < nb) {
            throw new IllegalArgumentException(op + ": layout maxBlocks = " + layout.maxBlocks() + " must be >= nb = "
                    + nb + " (any selection must fit)");
        }
        Tensor rowPtr = OpChecks.require(op, "layout rowPtr", layout.rowPtr(), DType.I32);
        Tensor blockIdx = OpChecks.require(op, "layout blockIdx", layout.blockIdx(), DType.I32);
        if (blockIdx.numel() < (long) nTB * nb) {
            throw new IllegalArgumentException(op + ": layout blockIdx " + blockIdx + " must hold at least nTB·nb = "
                    + (long) nTB * nb + " elements");
        }
        coverage(op, coverage);
        long flags = reserve(op, nTB, nb);
        long counts = flags + align((long) nTB * nb);
        stream.launch(function("predict_select_neuron_blocks"), nTB, 1, 1, NEURON_THREADS, 1, 1,
                smem(op, "nb", nb, 13), KernelArgs.of(flags, counts, scores, keyMask, rows, layout.tokenBlock(), nb,
                        coverage));
        stream.launch(function("predict_csr_from_flags"), 1, 1, 1, SCAN_THREADS, 1, 1, 0,
                KernelArgs.of(rowPtr, blockIdx, flags, counts, nTB, nb));
    }

    /** Scratch for rows·width flag bytes and rows counts; the address of the flags. */
    private long reserve(String op, int rows, int width) {
        long bytes = align((long) rows * width) + 4L * rows;
        return scratch.address(bytes);
    }

    private static long align(long bytes) {
        return (bytes + 255) & ~255L;
    }

    /** Dynamic shared memory of {@code perItem} bytes for each of {@code n} candidates, within the default limit. */
    private static int smem(String op, String what, int n, int perItem) {
        long bytes = (long) n * perItem;
        if (bytes > MAX_SMEM) {
            throw new IllegalArgumentException(op + ": " + what + " = " + n + " candidates per row need " + bytes
                    + " bytes of shared memory, more than " + MAX_SMEM);
        }
        return (int) bytes;
    }

    private static void coverage(String op, double coverage) {
        if (!(coverage >= 0)) {
            throw new IllegalArgumentException(op + ": coverage must be >= 0, got " + coverage);
        }
    }

    private static void positive(String op, String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(op + ": " + name + " must be >= 1, got " + v);
        }
    }
}
