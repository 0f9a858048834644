package org.longexposure.cuda.backend;

import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.OpShapes;
import org.longexposure.backend.PredictChecks;
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
    private static final int POOL_THREADS = 128;
    private static final int ROW_THREADS = 64;
    /** Keys truth.cu's tile-mass kernel stages per pass (its kKeys). */
    private static final int TRUTH_KEYS = 32;
    private static final int NEURON_THREADS = 256;
    private static final int CHUNK_THREADS = 64;
    private static final int SCAN_THREADS = 1024;
    /** The selections and tile masses keep one row in shared memory: default limit without opting in. */
    private static final int MAX_SMEM = 48 * 1024;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final DeviceScratch scratch;
    private final PredictChecks checks = new PredictChecks(OpChecks::require, DType.BF16);

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
        int c = checks.blockMeanPool(pooled, counts, x, keyMask, batchSize, seqLen, block);
        int gx = batchSize * ((seqLen + block - 1) / block);
        int gy = (c + 2 * POOL_THREADS - 1) / (2 * POOL_THREADS);   // two columns per thread
        stream.launch(function("predict_block_mean_pool_bf16"), gx, gy, 1, POOL_THREADS, 1, 1, 0,
                KernelArgs.of(pooled, counts, x, keyMask, batchSize, seqLen, c, block));
    }

    @Override
    public void tileMass(Tensor mass, Tensor qt, Tensor kt, Tensor counts, Tensor gamma, int batchSize, int numHeads,
                         int rank) {
        int nB = checks.tileMass(mass, qt, kt, counts, gamma, batchSize, numHeads, rank);
        int smem = smem("tileMass", "nB", nB, 16);
        stream.launch(function("predict_tile_mass_bf16"), nB, numHeads, 1, ROW_THREADS, 1, 1, smem,
                KernelArgs.of(mass, qt, kt, counts, gamma, batchSize, nB, numHeads, rank));
    }

    @Override
    public void selectTiles(BlockLayout layout, Tensor mass, double coverage, double maxRowFraction) {
        String op = "selectTiles";
        checks.selectTiles(layout, mass, coverage, maxRowFraction);
        int nh = layout.numHeads();
        int nB = layout.numBlocks();
        int rows = OpShapes.toInt(op, "NH·nB", (long) nh * nB);
        long flags = reserve(op, rows, nB);
        long counts = flags + align((long) rows * nB);
        stream.launch(function("predict_select_tiles"), nB, nh, 1, ROW_THREADS, 1, 1, smem(op, "nB", nB, 13),
                KernelArgs.of(flags, counts, mass, nB, coverage, maxRowFraction));
        stream.launch(function("predict_csr_from_flags"), 1, 1, 1, SCAN_THREADS, 1, 1, 0,
                KernelArgs.of(layout.rowPtr(), layout.colIdx(), flags, counts, rows, nB));
    }

    @Override
    public void neuronBlockScores(Tensor scores, Tensor z, Tensor keyMask, int tokenBlock, int ffn,
                                  int neuronBlock) {
        int rows = checks.neuronBlockScores(scores, z, keyMask, tokenBlock, ffn, neuronBlock);
        int nb = PredictChecks.neuronBlocks(ffn, neuronBlock);
        int nTB = (rows + tokenBlock - 1) / tokenBlock;
        int chunks = (tokenBlock + PredictOps.SCORE_CHUNK - 1) / PredictOps.SCORE_CHUNK;
        long partial = scratch.address(8L * nTB * chunks * nb);
        stream.launch(function("predict_neuron_block_chunk_sums_bf16"), nTB * chunks,
                (nb + CHUNK_THREADS - 1) / CHUNK_THREADS, 1, CHUNK_THREADS, 1, 1, 0,
                KernelArgs.of(partial, z, keyMask, rows, tokenBlock, ffn, neuronBlock, nb, chunks));
        stream.launch(function("predict_neuron_block_scores_sum"), nTB, (nb + NEURON_THREADS - 1) / NEURON_THREADS,
                1, NEURON_THREADS, 1, 1, 0, KernelArgs.of(scores, partial, nTB, chunks, nb));
    }

    @Override
    public void selectNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor keyMask, double coverage) {
        String op = "selectNeuronBlocks";
        int nb = checks.selectNeuronBlocks(layout, scores, keyMask, coverage);
        int rows = layout.rows();
        int nTB = layout.numTokenBlocks();
        long flags = reserve(op, nTB, nb);
        long counts = flags + align((long) nTB * nb);
        stream.launch(function("predict_select_neuron_blocks"), nTB, 1, 1, NEURON_THREADS, 1, 1,
                smem(op, "nb", nb, 13), KernelArgs.of(flags, counts, scores, keyMask, rows, layout.tokenBlock(), nb,
                        coverage, Math.min(layout.maxBlocks(), nb)));
        stream.launch(function("predict_csr_from_flags"), 1, 1, 1, SCAN_THREADS, 1, 1, 0,
                KernelArgs.of(layout.rowPtr(), layout.blockIdx(), flags, counts, nTB, nb));
    }

    /**
     * {@code truth.cu}'s attention_tile_mass_bf16: grid (nB, NH, B), 64 threads, the CTA's query rows and 32 staged
     * keys in shared memory (block·(HS + 1) + 32·HS floats, within the default 48 KiB).
     */
    @Override
    public void attentionTileMass(Tensor mass, Tensor q, Tensor k, Tensor lse, Tensor keyMask, int batchSize,
                                  int seqLen, int numHeads, int block) {
        String op = "attentionTileMass";
        int hs = checks.attentionTileMass(mass, q, k, lse, keyMask, batchSize, seqLen, numHeads, block);
        int nB = (seqLen + block - 1) / block;
        long bytes = 4L * ((long) Math.min(block, seqLen) * (hs + 1) + (long) TRUTH_KEYS * hs);
        if (bytes > MAX_SMEM) {
            throw new IllegalArgumentException(op + ": block = " + block + " and HS = " + hs + " need " + bytes
                    + " bytes of shared memory, more than " + MAX_SMEM);
        }
        stream.launch(kernels.function("truth", "attention_tile_mass_bf16"), nB, numHeads, batchSize, ROW_THREADS,
                1, 1, (int) bytes, KernelArgs.of(mass, q, k, lse, keyMask, seqLen, numHeads, hs, block, nB,
                        (float) (1.0 / Math.sqrt(hs))));
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
}
