package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Applying Long Exposure's fitted predictors (design note 5) where the model runs, so that a layout is built from
 * a layer's input without the input or the layout passing through the host. The predictors' GEMMs (pooled input
 * times the per-head projections, MLP input times the neuron-block scorer) go through {@link LinearOps}; this
 * family holds the rest:
 *
 * <pre>
 * attention  x (B·T, C) ─blockMeanPool→ pooled (B·nB, C), counts (B·nB)
 *            pooled ─LinearOps→ qk = [q̃ | k̃] (B·nB, 2·NH·R)  (one product; bias = the projections' constant row)
 *            qk, counts, γ ─tileMass→ mass (NH, nB, nB) = Σ_b p̂[b]
 *            mass ─selectTiles→ BlockLayout (rowPtr, colIdx)
 * MLP        x (N, C) ─LinearOps→ z (N, nb) ─neuronBlockScores→ Ŝ (nTB, nb) ─selectNeuronBlocks→ NeuronLayout
 * </pre>
 * {@link #predictTiles} and {@link #predictNeuronBlocks} chain each pair of the last two steps; a device backend
 * runs each chain as one launch.
 * nB = ceil(T / block), nTB = ceil(N / tokenBlock). Masses and scores are F64: the selection compares them and
 * sums them, and doing so in double on every backend makes the layouts depend only on the inputs' values, not on
 * the backend's accumulation order, except through the exp/log of {@link #tileMass} (last-ulp differences).
 *
 * <p>The selection rule ({@link #selectTiles}, {@link #selectNeuronBlocks}) is the predictors' host rule, a coverage
 * target under a budget: over one row's candidate values v_0..v_{n-1} (all ≥ 0), some of them forced (kept
 * whatever happens), and a limit L ≥ #forced on the kept count, with {@code total = Σ v_i} summed in ascending i:
 * visit the candidates by descending value, equal values by ascending index, keeping a running sum
 * {@code covered} (from 0, in visiting order) and the kept count {@code kept} (from #forced). Before each visit,
 * stop when {@code kept ≥ L}, or when {@code coverage < 1} and not {@code covered < coverage·total}; otherwise the
 * visited candidate is kept (counted once if it was not forced) and its value added to {@code covered}.
 * So coverage 0 keeps only the forced candidates and so does a row of zeros with coverage &lt; 1; coverage ≥ 1
 * keeps the L largest (every candidate when L ≥ n, which is the unbudgeted rule).
 *
 * <p>ACT is the backend's activation dtype; masks are I32, nonzero for real tokens.
 */
public interface PredictOps {
    /**
     * Mean of the real tokens of each block of {@code block} tokens of each sequence (overwrite): pooled[b·nB + i] =
     * mean of x[b·T + t] over t in [i·block, min(T, (i+1)·block)) with keyMask[b·T + t] ≠ 0 (0 when none), the sum
     * accumulated in ascending t; counts[b·nB + i] = the number of those tokens.
     *
     * @param pooled (B·nB, C) ACT
     * @param counts (B·nB) I32
     * @param x      (B·T, C) ACT
     * @param keyMask (B·T) I32
     */
    void blockMeanPool(Tensor pooled, Tensor counts, Tensor x, Tensor keyMask, int batchSize, int seqLen, int block);

    /**
     * The attention predictor's tile distribution summed over the micro-batch (overwrite): for head h and
     * query block qb, mass[h][qb][kb] = Σ_b p̂[b][h][qb][kb] (b ascending, starting from 0) with
     * <pre>
     * s      = Σ_r q̃[b·nB + qb][h·R + r] · k̃[b·nB + kb][h·R + r]                      (double, r ascending)
 *          with q̃[row][i] = qk[row][i] and k̃[row][i] = qk[row][NH·R + i]
     * p̂[kb]  = softmax over kb ≤ qb with counts[b·nB + kb] &gt; 0 of  γ_h·s + log(n_kb),
     *          n_kb = counts[b·nB + kb], on the diagonal (n_kb + 1)/2; 0 elsewhere
     * </pre>
     * and p̂ = 0 for a query block without real tokens (counts[b·nB + qb] = 0). The softmax subtracts the row max,
     * sums the exponentials in ascending kb and divides. Entries above the diagonal are 0.
     *
     * @param mass   (NH, nB, nB) F64
     * @param qk     (B·nB, 2·NH·R) ACT, the pooled input's query-side projection q̃ in the first NH·R columns of
     *               each row, the key-side projection k̃ in the last NH·R
     * @param counts (B·nB) I32, from {@link #blockMeanPool}
     * @param gamma  (NH) F32, the fitted temperatures
     */
    void tileMass(Tensor mass, Tensor qk, Tensor counts, Tensor gamma, int batchSize, int numHeads, int rank);

    /**
     * Writes {@code layout}'s rowPtr and colIdx (overwrite) from the tile masses: in row (h, qb) the candidates
     * are kb ≤ qb with values mass[h][qb][0..qb]; key block qb (the diagonal) and key block 0 (the sink) are forced;
     * the budget is {@code L = max(#forced, ceil(maxRowFraction·(qb + 1)))} tiles, the ceiling taken of the double
     * product (maxRowFraction = 1: no budget). colIdx lists each row's key blocks ascending; its elements past
     * rowPtr[NH·nB] are left unspecified.
     *
     * @param layout the target: NH, T and the block size give nB; colIdx must hold at least NH·nB·(nB+1)/2
     *               elements (the full causal layout)
     * @param mass   (NH, nB, nB) F64, from {@link #tileMass}
     * @param maxRowFraction in (0, 1], the largest share of a row's causal tiles it may keep beyond the forced ones
     */
    void selectTiles(BlockLayout layout, Tensor mass, double coverage, double maxRowFraction);

    /**
     * {@link #tileMass} then {@link #selectTiles}: the attention predictor from its projections to the layout, the
     * masses written to {@code mass} as tileMass writes them. A device may run both in one launch; the layout is
     * the one the two calls give.
     *
     * @param layout the target, whose NH is tileMass's numHeads
     */
    default void predictTiles(BlockLayout layout, Tensor mass, Tensor qk, Tensor counts, Tensor gamma, int batchSize,
                              int rank, double coverage, double maxRowFraction) {
        tileMass(mass, qk, counts, gamma, batchSize, layout.numHeads(), rank);
        selectTiles(layout, mass, coverage, maxRowFraction);
    }

    /** Fraction bits of the fixed point in which {@link #neuronBlockScores} adds up its terms. */
    int SCORE_FRACTION_BITS = 32;

    /**
     * The MLP predictor's scores per token block (overwrite): scores[R][j] = Σ over the real rows t of token block
     * R of clamp(z[t][j], 0, w_j), with w_j = min(BN, H − j·BN) the width of neuron block j. Each term is taken in
     * double, truncated to a multiple of 2^-{@value #SCORE_FRACTION_BITS} and added as a 64-bit integer, and the
     * exact integer sum is converted to double (round to nearest) and scaled: the result does not depend on the
     * order of the rows, so a device may add them in any order and any grouping and still give the CPU's value to
     * the last bit. (Terms below 2^-32 count as 0; the sum of a token block is exact up to 2^31, which the op
     * checks: tokenBlock·min(BN, H) &lt; 2^31.)
     *
     * @param scores  (nTB, nb) F64, nTB = ceil(N / tokenBlock)
     * @param z       (N, nb) ACT, the scorer's output x·Wᵀ + b
     * @param keyMask (N) I32
     * @param ffn     H
     * @param neuronBlock BN, with nb = ceil(H / BN)
     */
    void neuronBlockScores(Tensor scores, Tensor z, Tensor keyMask, int tokenBlock, int ffn, int neuronBlock);

    /**
     * Writes {@code layout}'s rowPtr and blockIdx (overwrite) from the scores: a token block without a real row
     * lists nothing; otherwise the class rule on scores[R][0..nb) with nothing forced and the budget
     * {@code L = min(layout.maxBlocks, nb)} (so the compacted hidden state of width maxBlocks·BN always fits the
     * selection). blockIdx lists each row's blocks ascending; its elements past rowPtr[nTB] are left unspecified.
     *
     * @param layout  the target: rows N and tokenBlock give nTB; blockIdx must hold at least nTB·min(maxBlocks, nb)
     *                elements (and one at least)
     * @param scores  (nTB, nb) F64, from {@link #neuronBlockScores}
     * @param keyMask (N) I32
     */
    void selectNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor keyMask, double coverage);

    /**
     * {@link #neuronBlockScores} then {@link #selectNeuronBlocks}, with the layout's token and neuron blocks: the MLP
     * predictor from its scorer's output to the layout, the scores written to {@code scores} as neuronBlockScores
     * writes them. A device may run both in one launch; the layout is the one the two calls give.
     */
    default void predictNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor z, Tensor keyMask, int ffn,
                                     double coverage) {
        neuronBlockScores(scores, z, keyMask, layout.tokenBlock(), ffn, layout.neuronBlock());
        selectNeuronBlocks(layout, scores, keyMask, coverage);
    }

    /**
     * The predictors' ground truth from a dense forward (overwrite): the true attention probability mass of every
     * (query-block, key-block) tile,
     * <pre>
     * mass[b][h][qb][kb] = Σ_{real i in qb} Σ_{real j in kb, j ≤ i} exp(scale·(q_i·k_j) − lse[b][h][i]),
     * scale = 1/sqrt(HS)
     * </pre>
     * with q_i, k_j head h's HS-wide slices of rows b·T + i and b·T + j, real = keyMask ≠ 0, and 0 for tiles above
     * the diagonal. A real query row's masses add up to 1 (lse is its softmax's log denominator), so a query-block
     * row adds up to its real queries. The CPU sums in double in ascending i then j (the float64 definition of the
     * Exposer's TileMass); a device may accumulate the dot products in float.
     *
     * @param mass    (B, NH, nB, nB) F64, nB = ceil(T / block)
     * @param q       (B·T, C) ACT, the attention's queries before the scale
     * @param k       (B·T, C) ACT, its keys
     * @param lse     (B, NH, T) F32, the row log-sum-exp of the scaled, masked scores
     * @param keyMask (B·T) I32
     */
    void attentionTileMass(Tensor mass, Tensor q, Tensor k, Tensor lse, Tensor keyMask, int batchSize, int seqLen,
                           int numHeads, int block);
}
