package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.testkit.GradCheck.assertGradient;
import static org.longexposure.testkit.GradCheck.dot;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;

/**
 * RefSparseMlp: its backward proven by central differences of L = Σ dOut·out (awkward sizes, a partial last neuron
 * block, token blocks that list nothing); a full layout equal to the dense RefLinear → ReLU → RefLinear chain; a
 * sparse layout equal to the dense chain with the unlisted neurons' W1 rows and biases zeroed.
 */
class RefSparseMlpTest {
    /** Float64 sums in a different order: a few ulp of the largest partial sum. */
    private static final Tolerances.Tol F64 = new Tolerances.Tol(1e-12, 1e-12);

    @ParameterizedTest
    @CsvSource({
            "5, 4, 11, 3, 2, 0.5, 1",    // 4 blocks, the last of 2 neurons; 3 token blocks, the last of 1 row
            "6, 3, 7, 1, 6, 0.6, 2",     // BN = 1, one token block
            "7, 5, 9, 4, 3, 0.3, 3",     // sparse: some token blocks list nothing
            "4, 2, 5, 8, 1, 1.0, 4"})    // BN > H: one partial block; one row per token block
    void backwardMatchesCentralDifferences(int n, int c, int h, int bn, int tokenBlock, double keep, long seed) {
        Rng rng = new Rng(seed);
        RefSparseMlp.Layout layout = randomLayout(rng, n, tokenBlock, h, bn, keep);
        double[] x = rng.normal(n * c);
        double[] w1 = rng.normal(h * c);
        double[] b1 = rng.normal(h);
        double[] w2 = rng.normal(c * h);
        double[] b2 = rng.normal(c);
        double[] dOut = rng.normal(n * c);
        // ReLU has a kink at 0: a difference quotient is only valid if no computed pre-activation is within a step
        // of it. The steps move a pre-activation by at most 1e-6·Σ|w| ≈ 1e-5 here.
        assertThat(minAbsPreActivation(layout, x, w1, b1, c, h)).as("distance of pre-activations from the kink")
                .isGreaterThan(1e-3);

        double[] out = new double[n * c];
        double[] hidden = new double[n * layout.width()];
        RefSparseMlp.forward(out, hidden, x, w1, b1, w2, b2, layout, c, h);
        double[] dX = new double[n * c];
        double[] dB1 = new double[h];
        double[] dB2 = new double[c];
        RefSparseMlp.backward(dX, dB1, dB2, dOut, hidden, w1, w2, layout, c, h);

        assertGradient("sparse mlp dInp", dX, xs -> loss(dOut, xs, w1, b1, w2, b2, layout, c, h), x);
        // Every neuron, listed or not: an unlisted neuron's bias does not reach the output, so its gradient is 0.
        assertGradient("sparse mlp dB1", dB1, bs -> loss(dOut, x, w1, bs, w2, b2, layout, c, h), b1);
        assertGradient("sparse mlp dB2", dB2, bs -> loss(dOut, x, w1, b1, w2, bs, layout, c, h), b2);
    }

    @Test
    void biasGradientsAccumulateAndLeaveUnlistedNeuronsAlone() {
        Rng rng = new Rng(11);
        int n = 6;
        int c = 3;
        int h = 10;
        // Two token blocks of 3 rows; neuron blocks of 4 (the last of 2): block 1 is listed by nobody.
        RefSparseMlp.Layout layout = new RefSparseMlp.Layout(n, 3, 4, 2, new int[] {0, 1, 3},
                new int[] {0, 0, 2});
        double[] x = rng.normal(n * c);
        double[] w1 = rng.normal(h * c);
        double[] w2 = rng.normal(c * h);
        double[] dOut = rng.normal(n * c);
        double[] out = new double[n * c];
        double[] hidden = new double[n * layout.width()];
        RefSparseMlp.forward(out, hidden, x, w1, null, w2, null, layout, c, h);

        double[] dB1Prior = rng.normal(h);
        double[] dB2Prior = rng.normal(c);
        double[] dB1 = dB1Prior.clone();
        double[] dB2 = dB2Prior.clone();
        double[] dX = new double[n * c];
        RefSparseMlp.backward(dX, dB1, dB2, dOut, hidden, w1, w2, layout, c, h);
        double[] gB1 = new double[h];
        double[] gB2 = new double[c];
        RefSparseMlp.backward(dX, gB1, gB2, dOut, hidden, w1, w2, layout, c, h);
        for (int u = 0; u < h; u++) {
            assertThat(dB1[u]).as("dB1[%d]", u).isEqualTo(dB1Prior[u] + gB1[u]);
        }
        for (int o = 0; o < c; o++) {
            assertThat(dB2[o]).as("dB2[%d]", o).isEqualTo(dB2Prior[o] + gB2[o]);
        }
        for (int u = 4; u < 8; u++) {
            assertThat(dB1[u]).as("unlisted dB1[%d]", u).isEqualTo(dB1Prior[u]);
        }
    }

    @ParameterizedTest
    @CsvSource({"5, 4, 11, 3, 2", "8, 6, 16, 4, 8", "3, 7, 5, 5, 1"})
    void fullLayoutEqualsTheDenseChain(int n, int c, int h, int bn, int tokenBlock) {
        Rng rng = new Rng(n * 100L + h);
        int nb = (h + bn - 1) / bn;
        boolean[][] all = new boolean[(n + tokenBlock - 1) / tokenBlock][nb];
        for (boolean[] row : all) {
            Arrays.fill(row, true);
        }
        RefSparseMlp.Layout layout = layoutOf(all, n, tokenBlock, bn);
        double[] x = rng.normal(n * c);
        double[] w1 = rng.normal(h * c);
        double[] b1 = rng.normal(h);
        double[] w2 = rng.normal(c * h);
        double[] b2 = rng.normal(c);
        double[] dOut = rng.normal(n * c);

        double[] out = new double[n * c];
        double[] hidden = new double[n * layout.width()];
        RefSparseMlp.forward(out, hidden, x, w1, b1, w2, b2, layout, c, h);
        double[] dX = new double[n * c];
        double[] dB1 = new double[h];
        double[] dB2 = new double[c];
        RefSparseMlp.backward(dX, dB1, dB2, dOut, hidden, w1, w2, layout, c, h);

        double[] pre = new double[n * h];
        RefLinear.forward(pre, x, w1, b1, n, h, c);
        double[] act = new double[n * h];
        RefActivation.forward(act, pre, RefActivation.Kind.RELU);
        double[] denseOut = new double[n * c];
        RefLinear.forward(denseOut, act, w2, b2, n, c, h);
        double[] dAct = new double[n * h];
        RefLinear.backwardInput(dAct, dOut, w2, 1, false, n, c, h);
        double[] dPre = new double[n * h];
        RefActivation.backward(dPre, dAct, pre, RefActivation.Kind.RELU);
        double[] denseDX = new double[n * c];
        RefLinear.backwardInput(denseDX, dPre, w1, 1, false, n, h, c);
        double[] denseDB1 = new double[h];
        RefLinear.backwardWeight(null, denseDB1, dPre, act, 1, n, h, h);
        double[] denseDB2 = new double[c];
        RefLinear.backwardWeight(null, denseDB2, dOut, act, 1, n, c, h);

        TensorAssert.assertClose("out", F64, out, denseOut, n, c);
        TensorAssert.assertClose("dInp", F64, dX, denseDX, n, c);
        TensorAssert.assertClose("dB1", F64, dB1, denseDB1, h);
        TensorAssert.assertClose("dB2", F64, dB2, denseDB2, c);
        // The full layout's compacted hidden is the dense activation, padded with zeros past H.
        int width = layout.width();
        for (int i = 0; i < n; i++) {
            for (int col = 0; col < width; col++) {
                assertThat(hidden[i * width + col]).as("hidden[%d, %d]", i, col)
                        .isEqualTo(col < h ? act[i * h + col] : 0.0);
            }
        }
    }

    @Test
    void oneTokenBlockEqualsTheDenseChainWithUnlistedNeuronsRemoved() {
        int n = 5;
        int c = 4;
        int h = 14;
        int bn = 4; // blocks 0..3, the last of 2 neurons
        int[] listed = {1, 3};
        Rng rng = new Rng(77);
        RefSparseMlp.Layout layout = new RefSparseMlp.Layout(n, n, bn, 2, new int[] {0, 2}, listed);
        double[] x = rng.normal(n * c);
        double[] w1 = rng.normal(h * c);
        double[] b1 = rng.normal(h);
        double[] w2 = rng.normal(c * h);
        double[] b2 = rng.normal(c);
        double[] out = new double[n * c];
        double[] hidden = new double[n * layout.width()];
        RefSparseMlp.forward(out, hidden, x, w1, b1, w2, b2, layout, c, h);

        // Neurons 4..7 (block 1) and 12..13 (block 3) survive; zeroing the others' W1 rows and biases makes their
        // activations relu(0) = 0, which is the masked computation.
        double[] w1Masked = w1.clone();
        double[] b1Masked = b1.clone();
        for (int u = 0; u < h; u++) {
            if (!((u >= 4 && u < 8) || u >= 12)) {
                Arrays.fill(w1Masked, u * c, (u + 1) * c, 0);
                b1Masked[u] = 0;
            }
        }
        double[] act = new double[n * h];
        RefLinear.forward(act, x, w1Masked, b1Masked, n, h, c);
        RefActivation.forward(act, act, RefActivation.Kind.RELU);
        double[] denseOut = new double[n * c];
        RefLinear.forward(denseOut, act, w2, b2, n, c, h);
        TensorAssert.assertClose("out", F64, out, denseOut, n, c);
        for (int i = 0; i < n; i++) {
            double[] expected = new double[layout.width()];
            for (int t = 0; t < 4; t++) {
                expected[t] = act[i * h + 4 + t];
            }
            expected[4] = act[i * h + 12];
            expected[5] = act[i * h + 13];
            for (int col = 0; col < layout.width(); col++) {
                assertThat(hidden[i * layout.width() + col]).as("hidden[%d, %d]", i, col).isEqualTo(expected[col]);
            }
        }
    }

    @Test
    void invalidLayoutsAreRejected() {
        assertThatThrownBy(() -> new RefSparseMlp.Layout(4, 2, 3, 2, new int[] {0, 2, 1}, new int[] {0, 1}))
                .hasMessageContaining("token block 1");
        assertThatThrownBy(() -> new RefSparseMlp.Layout(4, 2, 3, 2, new int[] {0, 2, 3}, new int[] {1, 0, 2}))
                .hasMessageContaining("ascending");
        assertThatThrownBy(() -> new RefSparseMlp.Layout(4, 2, 3, 1, new int[] {0, 2, 2}, new int[] {0, 1}))
                .hasMessageContaining("maxBlocks");
        RefSparseMlp.Layout outOfRange = new RefSparseMlp.Layout(2, 2, 3, 1, new int[] {0, 1}, new int[] {4});
        assertThatThrownBy(() -> RefSparseMlp.forward(new double[4], new double[6], new double[4], new double[20],
                null, new double[20], null, outOfRange, 2, 10)).hasMessageContaining("out of range");
    }

    // --- helpers

    private static double loss(double[] dOut, double[] x, double[] w1, double[] b1, double[] w2, double[] b2,
                               RefSparseMlp.Layout layout, int c, int h) {
        double[] out = new double[layout.rows() * c];
        RefSparseMlp.forward(out, new double[layout.rows() * layout.width()], x, w1, b1, w2, b2, layout, c, h);
        return dot(dOut, out);
    }

    /** min |pre-activation| over the (row, neuron) pairs the layout computes. */
    private static double minAbsPreActivation(RefSparseMlp.Layout layout, double[] x, double[] w1, double[] b1, int c,
                                              int h) {
        int n = layout.rows();
        double[] pre = new double[n * h];
        RefLinear.forward(pre, x, w1, b1, n, h, c);
        boolean[] mask = layout.mask(h);
        double min = Double.POSITIVE_INFINITY;
        for (int i = 0; i < pre.length; i++) {
            if (mask[i]) {
                min = Math.min(min, Math.abs(pre[i]));
            }
        }
        return min;
    }

    /** Each (token block, neuron block) kept with probability keep. */
    private static RefSparseMlp.Layout randomLayout(Rng rng, int n, int tokenBlock, int h, int bn, double keep) {
        boolean[][] mask = new boolean[(n + tokenBlock - 1) / tokenBlock][(h + bn - 1) / bn];
        for (boolean[] row : mask) {
            for (int j = 0; j < row.length; j++) {
                row[j] = rng.nextDouble() < keep;
            }
        }
        return layoutOf(mask, n, tokenBlock, bn);
    }

    private static RefSparseMlp.Layout layoutOf(boolean[][] mask, int n, int tokenBlock, int bn) {
        int[] rowPtr = new int[mask.length + 1];
        int maxBlocks = 0;
        List<Integer> idx = new ArrayList<>();
        for (int r = 0; r < mask.length; r++) {
            for (int j = 0; j < mask[r].length; j++) {
                if (mask[r][j]) {
                    idx.add(j);
                }
            }
            rowPtr[r + 1] = idx.size();
            maxBlocks = Math.max(maxBlocks, rowPtr[r + 1] - rowPtr[r]);
        }
        int[] blockIdx = new int[Math.max(1, idx.size())];
        for (int e = 0; e < idx.size(); e++) {
            blockIdx[e] = idx.get(e);
        }
        return new RefSparseMlp.Layout(n, tokenBlock, bn, maxBlocks, rowPtr, blockIdx);
    }
}
