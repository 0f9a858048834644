package org.longexposure.sparsity.predict;

import java.util.Arrays;
import org.longexposure.backend.Backend;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.SelectionRule;
import org.longexposure.sparsity.mask.NeuronLayouts;

/**
 * One layer's MLP neuron-block predictor (design note 5.2 and 13: a per-layer linear scorer of the MLP input; one
 * neuron block BN shared by predictor, layout and kernels): predicts, per token, how many neurons of each block are
 * active, and chooses each token block's neuron blocks by score.
 *
 * <pre>
 * score    â[t][j] = clamp(W[j]·x_t + b[j], 0, w_j)          x_t (C) the MLP input, w_j the block's width
 * union    Ŝ[R][j] = Σ_{real t in R} â[t][j]                  per token block R of {@code tokenBlock} rows
 * layout   per R: the blocks of largest Ŝ until they cover {@code coverage} of Σ_j Ŝ[R][j], at most
 *          {@link #maxBlocks()} of them; coverage ≥ 1 keeps every block (the maxBlocks largest under a budget) of a
 *          token block with a real row; a token block of padding only computes nothing
 * </pre>
 * W, b are the least-squares fit of the true counts a[t][j] = #{n in block j : h[t, n] > 0} on the training tokens
 * (closed form, ridge-regularised normal equations), so Ŝ estimates the active (token, neuron) pairs a block
 * holds in R, and the kept share of Σ Ŝ estimates the recall, the fraction of true active neurons kept.
 * {@code coverage} is calibrated on training data so that the realised recall reaches the target (see
 * {@link PredictorFit}). Parameters: {@code weight} (nb, C + 1), the last column being b, float.
 */
public final class MlpPredictor {
    final int dim;
    final int ffn;
    final int neuronBlock;
    final int tokenBlock;
    final float[] weight;
    double coverage;
    /** The budget of neuron blocks per token block; negative = none (every block may be kept). */
    int budget = -1;

    MlpPredictor(int dim, int ffn, int neuronBlock, int tokenBlock, float[] weight, double coverage) {
        int nb = NeuronLayouts.blockCount(ffn, neuronBlock);
        if (weight.length != nb * (dim + 1)) {
            throw new IllegalArgumentException("MLP predictor: expected a weight of " + nb + " x " + (dim + 1)
                    + ", got " + weight.length + " values");
        }
        if (tokenBlock < 1) {
            throw new IllegalArgumentException("MLP predictor: token block must be >= 1, got " + tokenBlock);
        }
        this.dim = dim;
        this.ffn = ffn;
        this.neuronBlock = neuronBlock;
        this.tokenBlock = tokenBlock;
        this.weight = weight;
        this.coverage = coverage;
    }

    public int neuronBlock() {
        return neuronBlock;
    }

    public int tokenBlock() {
        return tokenBlock;
    }

    /** The calibrated fraction of each token block's predicted activity the layout covers (≥ 1: every block). */
    public double coverage() {
        return coverage;
    }

    /**
     * The most neuron blocks a token block keeps (nb without a budget): the layout's maxBlocks, so the compacted
     * hidden state is (N, maxBlocks·BN) and the sparse MLP's work is bounded by it.
     */
    public int maxBlocks() {
        return budget < 0 ? numBlocks() : Math.min(budget, numBlocks());
    }

    /** Sets the budget of {@link #maxBlocks()}: 0 ≤ blocks (≥ nb: no budget). */
    public void maxBlocks(int blocks) {
        if (blocks < 0) {
            throw new IllegalArgumentException("MLP predictor: max blocks must be >= 0, got " + blocks);
        }
        this.budget = blocks >= numBlocks() ? -1 : blocks;
    }

    int numBlocks() {
        return NeuronLayouts.blockCount(ffn, neuronBlock);
    }

    /** Ŝ[R][j] for the MLP input x (rows, C) on the host. */
    double[][] blockScores(float[] x, int[] mask, int rows) {
        return blockScores(x, mask, rows, HostLoop.SEQUENTIAL);
    }

    /**
     * {@link #blockScores(float[], int[], int)} with the rows' clamped scores computed in chunks of 64 rows through
     * {@code loop} (each chunk writes its own rows), then added into their token blocks in row order: the same sums.
     */
    double[][] blockScores(float[] x, int[] mask, int rows, HostLoop loop) {
        int nb = numBlocks();
        int d = dim + 1;
        double[] clamped = new double[rows * nb];   // (rows, nb): min(max(z, 0), width) of the real rows
        loop.run((rows + 63) / 64, chunk -> {
            for (int t = chunk * 64; t < Math.min(rows, chunk * 64 + 64); t++) {
                if (mask[t] == 0) {
                    continue;
                }
                int off = t * dim;
                for (int j = 0; j < nb; j++) {
                    int w = j * d;
                    double z = weight[w + dim];
                    for (int e = 0; e < dim; e++) {
                        z += weight[w + e] * x[off + e];
                    }
                    int width = Math.min(neuronBlock, ffn - j * neuronBlock);
                    clamped[t * nb + j] = Math.min(Math.max(z, 0), width);
                }
            }
        });
        double[][] s = new double[(rows + tokenBlock - 1) / tokenBlock][nb];
        for (int t = 0; t < rows; t++) {
            if (mask[t] == 0) {
                continue;
            }
            for (int j = 0; j < nb; j++) {
                s[t / tokenBlock][j] += clamped[t * nb + j];
            }
        }
        return s;
    }

    /** The kept blocks [nTB][nb] for scores Ŝ and the real rows per token block, without a budget. */
    static boolean[][] select(double[][] scores, int[] realRows, double coverage) {
        return select(scores, realRows, coverage, Integer.MAX_VALUE);
    }

    /**
     * The kept blocks [nTB][nb]: per token block with a real row, {@link SelectionRule} on Ŝ[R] with nothing forced
     * and the budget {@code limit} blocks.
     */
    static boolean[][] select(double[][] scores, int[] realRows, double coverage, int limit) {
        int nb = scores.length == 0 ? 0 : scores[0].length;
        boolean[][] keep = new boolean[scores.length][nb];
        for (int r = 0; r < scores.length; r++) {
            if (realRows[r] != 0) {
                SelectionRule.choose(scores[r], nb, coverage, limit, keep[r]);
            }
        }
        return keep;
    }

    boolean[][] keep(float[] x, int[] mask, int rows) {
        return select(blockScores(x, mask, rows), GroundTruth.realRows(mask, rows, tokenBlock), coverage, maxBlocks());
    }

    /** The layout for the MLP input x (rows, C) of one micro-batch, allocated on {@code be}. */
    public NeuronLayout layout(Backend be, float[] x, int[] mask, int rows) {
        return NeuronLayouts.fromBooleans(keep(x, mask, rows), rows, tokenBlock, ffn, neuronBlock, be);
    }
}
