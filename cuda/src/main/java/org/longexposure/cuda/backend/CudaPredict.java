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
 * double exp/log (≤ 1 ulp, vs. Java's) reorders masses equal to the last bit. Each selection on its own is two
 * launches on the backend's stream: one CTA per row writes its kept candidates into a list scratch, then one CTA
 * scans the rows' counts into rowPtr and copies the lists into colIdx. {@link #predictTiles} and
 * {@link #predictNeuronBlocks} are one launch each: the CTAs that compute the masses or scores also select, and the
 * last CTA to finish (an arrival counter in device memory, zero between launches) builds the CSR. Nothing is read
 * back to the host.
 */
public final class CudaPredict implements PredictOps {
    private static final String STEM = "predict";
    /** Threads of a pooling CTA (predict.cu's POOL_THREADS, its launch bound). */
    private static final int POOL_THREADS = 128;
    private static final int ROW_THREADS = 64;
    /** Threads of a tile-mass CTA: one warp per sequence of the micro-batch at a time. */
    private static final int MASS_THREADS = 128;
    /** Threads of a fused neuron-block CTA (predict.cu's SCAN_THREADS bounds every CSR-building CTA). */
    private static final int FUSED_NEURON_THREADS = 256;
    /** Rows of a token block per neuron-block CTA (predict.cu's CHUNK_ROWS, at most FUSED_NEURON_THREADS). */
    private static final int CHUNK_ROWS = 64;
    /** Keys truth.cu's tile-mass kernel stages per pass (its kKeys). */
    private static final int TRUTH_KEYS = 32;
    private static final int NEURON_THREADS = 256;
    private static final int SCAN_THREADS = 256;
    /** The selections and tile masses keep one row in shared memory: default limit without opting in. */
    private static final int MAX_SMEM = 48 * 1024;
    /** Dynamic shared memory of the fused launches: the default limit less their static arrays (a 256-int scan). */
    private static final int FUSED_SMEM = MAX_SMEM - 2048;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final DeviceScratch scratch;
    /** Arrival counters (I32) of the fused launches: [0] predictTiles, [1..] predictNeuronBlocks. */
    private final Zeroed counters;
    /** Fixed-point score accumulators (U64) and real-row counts (I32) of the neuron-block kernel. */
    private final Zeroed accumulators;
    private final PredictChecks checks = new PredictChecks(OpChecks::require, DType.BF16);

    public CudaPredict(CudaBackend backend) {
        this.stream = backend.stream();
        this.kernels = backend.kernels();
        this.scratch = new DeviceScratch(backend.arena());
        this.counters = new Zeroed(backend);
        this.accumulators = new Zeroed(backend);
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
    public void tileMass(Tensor mass, Tensor qk, Tensor counts, Tensor gamma, int batchSize, int numHeads,
                         int rank) {
        int nB = checks.tileMass(mass, qk, counts, gamma, batchSize, numHeads, rank);
        int smem = smem("tileMass", "B·nB + nB", (batchSize + 1) * nB, 8);
        stream.launch(function("predict_tile_mass_bf16"), nB, numHeads, 1, MASS_THREADS, 1, 1, smem,
                KernelArgs.of(mass, qk, counts, gamma, batchSize, nB, numHeads, rank));
    }

    @Override
    public void selectTiles(BlockLayout layout, Tensor mass, double coverage, double maxRowFraction) {
        String op = "selectTiles";
        checks.selectTiles(layout, mass, coverage, maxRowFraction);
        int nh = layout.numHeads();
        int nB = layout.numBlocks();
        int rows = OpShapes.toInt(op, "NH·nB", (long) nh * nB);
        Lists l = reserve(rows, nB);
        stream.launch(function("predict_select_tiles"), nB, nh, 1, ROW_THREADS, 1, 1, smem(op, "nB", nB, 13),
                KernelArgs.of(l.lists(), l.counts(), mass, nB, coverage, maxRowFraction));
        csr(op, layout.rowPtr(), layout.colIdx(), l, rows, nB);
    }

    /**
     * One launch ({@code predict_tiles_bf16}): grid (nB, NH), each CTA its mass row, then its selection; the last CTA
     * builds the CSR.
     */
    @Override
    public void predictTiles(BlockLayout layout, Tensor mass, Tensor qk, Tensor counts, Tensor gamma, int batchSize,
                             int rank, double coverage, double maxRowFraction) {
        String op = "predictTiles";
        int nh = layout.numHeads();
        int nB = checks.tileMass(mass, qk, counts, gamma, batchSize, nh, rank);
        checks.selectTiles(layout, mass, coverage, maxRowFraction);
        int rows = OpShapes.toInt(op, "NH·nB", (long) nh * nB);
        Lists l = reserve(rows, nB);
        long smem = 8L * (batchSize + 1) * nB + 5L * nB + 4L * (rows + 1);
        if (smem > FUSED_SMEM) {
            throw new IllegalArgumentException(op + ": B = " + batchSize + ", nB = " + nB + " and NH = " + nh
                    + " need " + smem + " bytes of shared memory, more than " + FUSED_SMEM);
        }
        stream.launch(function("predict_tiles_bf16"), nB, nh, 1, MASS_THREADS, 1, 1, (int) smem,
                KernelArgs.of(mass, l.lists(), l.counts(), counters.address(4), layout.rowPtr(), layout.colIdx(), qk,
                        counts, gamma, batchSize, nB, nh, rank, coverage, maxRowFraction));
    }

    /** {@code predict_neuron_blocks_bf16} without the selection: the scores only. */
    @Override
    public void neuronBlockScores(Tensor scores, Tensor z, Tensor keyMask, int tokenBlock, int ffn,
                                  int neuronBlock) {
        int rows = checks.neuronBlockScores(scores, z, keyMask, tokenBlock, ffn, neuronBlock);
        int nb = PredictChecks.neuronBlocks(ffn, neuronBlock);
        launchNeuronBlocks("neuronBlockScores", scores, z, keyMask, rows, tokenBlock, ffn, neuronBlock, nb,
                new Lists(0, 0), 0, 0, 0.0, 0, false);
    }

    @Override
    public void selectNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor keyMask, double coverage) {
        String op = "selectNeuronBlocks";
        int nb = checks.selectNeuronBlocks(layout, scores, keyMask, coverage);
        int rows = layout.rows();
        int nTB = layout.numTokenBlocks();
        Lists l = reserve(nTB, nb);
        stream.launch(function("predict_select_neuron_blocks"), nTB, 1, 1, NEURON_THREADS, 1, 1,
                smem(op, "nb", nb, 13), KernelArgs.of(l.lists(), l.counts(), scores, keyMask, rows,
                        layout.tokenBlock(), nb, coverage, Math.min(layout.maxBlocks(), nb)));
        csr(op, layout.rowPtr(), layout.blockIdx(), l, nTB, nb);
    }

    /**
     * One launch ({@code predict_neuron_blocks_bf16}): grid nTB·chunks, each CTA adds 64 rows' fixed-point terms
     * into the token block's accumulators; the last CTA of a token block converts them and selects, the last token
     * block builds the CSR.
     */
    @Override
    public void predictNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor z, Tensor keyMask, int ffn,
                                    double coverage) {
        int tokenBlock = layout.tokenBlock();
        int rows = checks.neuronBlockScores(scores, z, keyMask, tokenBlock, ffn, layout.neuronBlock());
        int nb = checks.selectNeuronBlocks(layout, scores, keyMask, coverage);
        int nTB = layout.numTokenBlocks();
        Lists l = reserve(nTB, nb);
        launchNeuronBlocks("predictNeuronBlocks", scores, z, keyMask, rows, tokenBlock, ffn, layout.neuronBlock(), nb,
                l, CudaBackend.ptr(layout.rowPtr()), CudaBackend.ptr(layout.blockIdx()), coverage,
                Math.min(layout.maxBlocks(), nb), true);
    }

    private void launchNeuronBlocks(String op, Tensor scores, Tensor z, Tensor keyMask, int rows, int tokenBlock,
                                    int ffn, int neuronBlock, int nb, Lists l, long rowPtr, long blockIdx,
                                    double coverage, int limit, boolean select) {
        int nTB = (rows + tokenBlock - 1) / tokenBlock;
        int chunks = (tokenBlock + CHUNK_ROWS - 1) / CHUNK_ROWS;
        int smem = smem(op, "13·nb + 4·(nTB + 1) bytes", 13 * nb + 4 * (nTB + 1), 1);
        long acc = accumulators.address(8L * nTB * nb + 4L * nTB);
        stream.launch(function("predict_neuron_blocks_bf16"), OpShapes.toInt(op, "nTB·chunks", (long) nTB * chunks),
                1, 1, FUSED_NEURON_THREADS, 1, 1, smem,
                KernelArgs.of(scores, acc, acc + 8L * nTB * nb, l.lists(), l.counts(),
                        counters.address(4L * (2 + nTB)) + 4, rowPtr, blockIdx, z, keyMask, rows, tokenBlock, ffn,
                        neuronBlock, nb, chunks, coverage, limit, select ? 1 : 0));
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

    /** Device addresses of a selection's per-row lists (rows, width) and counts (rows), I32, in the scratch. */
    private record Lists(long lists, long counts) {
    }

    private Lists reserve(int rows, int width) {
        long lists = scratch.address(align(4L * rows * width) + 4L * rows);
        return new Lists(lists, lists + align(4L * rows * width));
    }

    /** The second launch of a selection: rowPtr and colIdx from the lists (one CTA). */
    private void csr(String op, Tensor rowPtr, Tensor colIdx, Lists l, int rows, int width) {
        stream.launch(function("predict_csr_from_lists"), 1, 1, 1, SCAN_THREADS, 1, 1,
                smem(op, "rows + 1", rows + 1, 4), KernelArgs.of(rowPtr, colIdx, l.lists(), l.counts(), rows, width));
    }

    /**
     * A grow-only device buffer that is all zero between launches: zeroed on the stream when it grows, and the kernels
     * that use it set back to zero what they changed (the last CTA to arrive resets the counter it counted on, the
     * neuron-block kernel zeroes the accumulators it read).
     */
    private static final class Zeroed {
        private final DeviceScratch scratch;
        private final CudaStream stream;
        private long bytes;

        Zeroed(CudaBackend backend) {
            this.scratch = new DeviceScratch(backend.arena());
            this.stream = backend.stream();
        }

        /** The address of at least {@code need} zero bytes. */
        long address(long need) {
            if (bytes < need) {
                long capacity = Math.max(4096, Long.highestOneBit(need) * 2);
                stream.memsetD32(scratch.address(capacity), 0, capacity / 4);
                bytes = capacity;
            }
            return scratch.address(bytes);
        }
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
