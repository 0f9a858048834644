package org.longexposure.backend;

import static org.longexposure.backend.OpShapes.lastDim;
import static org.longexposure.backend.OpShapes.numel;
import static org.longexposure.backend.OpShapes.positive;
import static org.longexposure.backend.OpShapes.toInt;

import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The argument checks of {@link PredictOps}, shared by its implementations: each method checks one op's operands
 * (dtypes, element counts, layout capacities, scalar ranges, with {@link OpShapes}' common checks) before any work
 * starts and fails with an IllegalArgumentException naming the op, the operand and what was expected. The backend
 * supplies what differs: where its tensors must live (the {@link Operand} check) and its activation dtype ACT.
 * Methods return the derived size the op needs next.
 */
public final class PredictChecks {
    /** A backend's check that {@code t} is a non-null tensor of {@code dtype} in its memory; returns {@code t}. */
    @FunctionalInterface
    public interface Operand {
        Tensor require(String op, String name, Tensor t, DType dtype);
    }

    private final Operand operand;
    private final DType act;

    /** Checks for a backend whose tensors pass {@code operand} and whose activations are {@code act}. */
    public PredictChecks(Operand operand, DType act) {
        this.operand = operand;
        this.act = act;
    }

    /** {@link PredictOps#blockMeanPool}; returns C. */
    public int blockMeanPool(Tensor pooled, Tensor counts, Tensor x, Tensor keyMask, int batchSize, int seqLen,
                             int block) {
        String op = "blockMeanPool";
        positive(op, "batchSize", batchSize);
        positive(op, "seqLen", seqLen);
        positive(op, "block", block);
        int c = lastDim(op, "x", operand.require(op, "x", x, act));
        long n = (long) batchSize * seqLen;
        int nB = (seqLen + block - 1) / block;
        long rows = (long) batchSize * nB;
        numel(op, "x", x, n * c, "(B·T, C) = (" + n + ", " + c + ")");
        numel(op, "keyMask", operand.require(op, "keyMask", keyMask, DType.I32), n, "(B·T)");
        numel(op, "pooled", operand.require(op, "pooled", pooled, act), rows * c,
                "(B·nB, C) = (" + rows + ", " + c + ")");
        numel(op, "counts", operand.require(op, "counts", counts, DType.I32), rows, "(B·nB)");
        toInt(op, "B·nB", rows);
        return c;
    }

    /** {@link PredictOps#tileMass}; returns nB. */
    public int tileMass(Tensor mass, Tensor qk, Tensor counts, Tensor gamma, int batchSize, int numHeads, int rank) {
        String op = "tileMass";
        positive(op, "batchSize", batchSize);
        positive(op, "numHeads", numHeads);
        positive(op, "rank", rank);
        operand.require(op, "counts", counts, DType.I32);
        if (counts.numel() % batchSize != 0) {
            throw new IllegalArgumentException(op + ": counts " + counts + " must hold B·nB elements, B = "
                    + batchSize);
        }
        int nB = toInt(op, "nB", counts.numel() / batchSize);
        long w = (long) numHeads * rank;
        long rows = (long) batchSize * nB;
        numel(op, "qk", operand.require(op, "qk", qk, act), rows * 2 * w,
                "(B·nB, 2·NH·R) = (" + rows + ", " + 2 * w + ")");
        numel(op, "gamma", operand.require(op, "gamma", gamma, DType.F32), numHeads, "(NH)");
        numel(op, "mass", operand.require(op, "mass", mass, DType.F64), (long) numHeads * nB * nB,
                "(NH, nB, nB) = (" + numHeads + ", " + nB + ", " + nB + ")");
        return nB;
    }

    /** {@link PredictOps#selectTiles}. */
    public void selectTiles(BlockLayout layout, Tensor mass, double coverage, double maxRowFraction) {
        String op = "selectTiles";
        int nh = layout.numHeads();
        int nB = layout.numBlocks();
        numel(op, "mass", operand.require(op, "mass", mass, DType.F64), (long) nh * nB * nB,
                "(NH, nB, nB) = (" + nh + ", " + nB + ", " + nB + ")");
        operand.require(op, "layout rowPtr", layout.rowPtr(), DType.I32);
        Tensor colIdx = operand.require(op, "layout colIdx", layout.colIdx(), DType.I32);
        long full = (long) nh * nB * (nB + 1) / 2;
        if (colIdx.numel() < full) {
            throw new IllegalArgumentException(op + ": layout colIdx " + colIdx + " must hold at least NH·nB·(nB+1)/2"
                    + " = " + full + " elements (the full causal layout)");
        }
        coverage(op, coverage);
        if (!(maxRowFraction > 0 && maxRowFraction <= 1)) {
            throw new IllegalArgumentException(op + ": maxRowFraction must be in (0, 1], got " + maxRowFraction);
        }
    }

    /** {@link PredictOps#neuronBlockScores}; returns N, the rows of z and keyMask. */
    public int neuronBlockScores(Tensor scores, Tensor z, Tensor keyMask, int tokenBlock, int ffn, int neuronBlock) {
        String op = "neuronBlockScores";
        positive(op, "tokenBlock", tokenBlock);
        positive(op, "ffn", ffn);
        positive(op, "neuronBlock", neuronBlock);
        int nb = neuronBlocks(ffn, neuronBlock);
        int rows = toInt(op, "N", operand.require(op, "keyMask", keyMask, DType.I32).numel());
        int nTB = (rows + tokenBlock - 1) / tokenBlock;
        numel(op, "z", operand.require(op, "z", z, act), (long) rows * nb, "(N, nb) = (" + rows + ", " + nb + ")");
        numel(op, "scores", operand.require(op, "scores", scores, DType.F64), (long) nTB * nb,
                "(nTB, nb) = (" + nTB + ", " + nb + ")");
        if ((long) Math.min(tokenBlock, rows) * Math.min(neuronBlock, ffn) >= 1L << 31) {
            throw new IllegalArgumentException(op + ": tokenBlock " + tokenBlock + " × neuronBlock " + neuronBlock
                    + " must stay below 2^31: a token block's score is summed in 32.32 fixed point");
        }
        return rows;
    }

    /** {@link PredictOps#selectNeuronBlocks}; returns nb (the budget is min(layout.maxBlocks, nb)). */
    public int selectNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor keyMask, double coverage) {
        String op = "selectNeuronBlocks";
        int rows = layout.rows();
        int nTB = layout.numTokenBlocks();
        numel(op, "keyMask", operand.require(op, "keyMask", keyMask, DType.I32), rows, "(N)");
        operand.require(op, "scores", scores, DType.F64);
        if (scores.numel() % nTB != 0 || scores.numel() == 0) {
            throw new IllegalArgumentException(op + ": scores " + scores + " must be (nTB, nb) with nTB = " + nTB);
        }
        int nb = toInt(op, "nb", scores.numel() / nTB);
        operand.require(op, "layout rowPtr", layout.rowPtr(), DType.I32);
        Tensor blockIdx = operand.require(op, "layout blockIdx", layout.blockIdx(), DType.I32);
        long most = (long) nTB * Math.min(layout.maxBlocks(), nb);
        if (blockIdx.numel() < most) {
            throw new IllegalArgumentException(op + ": layout blockIdx " + blockIdx + " must hold at least"
                    + " nTB·min(maxBlocks, nb) = " + most + " elements");
        }
        coverage(op, coverage);
        return nb;
    }

    /** {@link PredictOps#attentionTileMass}; returns HS. */
    public int attentionTileMass(Tensor mass, Tensor q, Tensor k, Tensor lse, Tensor keyMask, int batchSize,
                                 int seqLen, int numHeads, int block) {
        String op = "attentionTileMass";
        positive(op, "batchSize", batchSize);
        positive(op, "seqLen", seqLen);
        positive(op, "numHeads", numHeads);
        positive(op, "block", block);
        int c = lastDim(op, "q", operand.require(op, "q", q, act));
        if (c % numHeads != 0) {
            throw new IllegalArgumentException(op + ": C = " + c + " is not a multiple of numHeads = " + numHeads);
        }
        long n = (long) batchSize * seqLen;
        long nB = (seqLen + block - 1) / block;
        numel(op, "q", q, n * c, "(B·T, C) = (" + n + ", " + c + ")");
        numel(op, "k", operand.require(op, "k", k, act), n * c, "(B·T, C) = (" + n + ", " + c + ")");
        numel(op, "lse", operand.require(op, "lse", lse, DType.F32), (long) batchSize * numHeads * seqLen,
                "(B, NH, T) = (" + batchSize + ", " + numHeads + ", " + seqLen + ")");
        numel(op, "keyMask", operand.require(op, "keyMask", keyMask, DType.I32), n, "(B·T)");
        numel(op, "mass", operand.require(op, "mass", mass, DType.F64), batchSize * numHeads * nB * nB,
                "(B, NH, nB, nB) = (" + batchSize + ", " + numHeads + ", " + nB + ", " + nB + ")");
        return c / numHeads;
    }

    /** nb = ceil(ffn / neuronBlock), the number of neuron blocks of an MLP of {@code ffn} neurons. */
    public static int neuronBlocks(int ffn, int neuronBlock) {
        return (int) ((ffn + (long) neuronBlock - 1) / neuronBlock);
    }

    private static void coverage(String op, double coverage) {
        if (!(coverage >= 0)) {
            throw new IllegalArgumentException(op + ": coverage must be >= 0, got " + coverage);
        }
    }
}
