package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.longexposure.testkit.GradCheck.assertGradient;
import static org.longexposure.testkit.GradCheck.dot;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.testkit.Rng;

/** RefLinear's backward proven by central differences of L = Σ dOut·out on awkward shapes. */
class RefLinearTest {
    @ParameterizedTest
    @CsvSource({"1, 1, 1", "3, 5, 7", "4, 9, 2", "2, 3, 11"})
    void backwardMatchesCentralDifferences(int m, int n, int k) {
        Rng rng = new Rng(31L * m + 7L * n + k);
        double[] x = rng.normal(m * k);
        double[] w = rng.normal(n * k);
        double[] b = rng.normal(n);
        double[] dOut = rng.normal(m * n);

        double[] dX = new double[m * k];
        RefLinear.backwardInput(dX, dOut, w, 1.0, false, m, n, k);
        double[] dW = new double[n * k];
        double[] dB = new double[n];
        RefLinear.backwardWeight(dW, dB, dOut, x, 1.0, m, n, k);

        assertGradient("linear dInp", dX, xs -> loss(dOut, xs, w, b, m, n, k), x);
        assertGradient("linear dWeight", dW, ws -> loss(dOut, x, ws, b, m, n, k), w);
        assertGradient("linear dBias", dB, bs -> loss(dOut, x, w, bs, m, n, k), b);
    }

    @ParameterizedTest
    @CsvSource({"3, 5, 7, 0.75", "2, 1, 4, -2.5"})
    void scaledAccumulatingFormsMatchCentralDifferences(int m, int n, int k, double alpha) {
        Rng rng = new Rng(99L + m * n * k);
        double[] x = rng.normal(m * k);
        double[] w = rng.normal(n * k);
        double[] base = rng.normal(m * n);
        double[] dOut = rng.normal(m * n);

        // out = base + alpha·x·Wᵀ: its gradients are the alpha-scaled backward forms.
        double[] dX = rng.normal(m * k);
        double[] dXBefore = dX.clone();
        RefLinear.backwardInput(dX, dOut, w, alpha, true, m, n, k);
        double[] dW = rng.normal(n * k);
        double[] dWBefore = dW.clone();
        RefLinear.backwardWeight(dW, null, dOut, x, alpha, m, n, k);
        double[] gX = new double[m * k];
        double[] gW = new double[n * k];
        for (int i = 0; i < gX.length; i++) {
            gX[i] = dX[i] - dXBefore[i];
        }
        for (int i = 0; i < gW.length; i++) {
            gW[i] = dW[i] - dWBefore[i];
        }
        assertGradient("linear accumulate dInp", gX, xs -> accLoss(dOut, base, xs, w, alpha, m, n, k), x);
        assertGradient("linear accumulate dWeight", gW, ws -> accLoss(dOut, base, x, ws, alpha, m, n, k), w);
    }

    @ParameterizedTest
    @CsvSource({"3, 5, 7"})
    void overwriteIgnoresPreviousContents(int m, int n, int k) {
        Rng rng = new Rng(5);
        double[] dOut = rng.normal(m * n);
        double[] w = rng.normal(n * k);
        double[] a = rng.normal(m * k);
        double[] b = new double[m * k];
        RefLinear.backwardInput(a, dOut, w, 1.5, false, m, n, k);
        RefLinear.backwardInput(b, dOut, w, 1.5, false, m, n, k);
        assertThat(a).containsExactly(b);
    }

    private static double loss(double[] dOut, double[] x, double[] w, double[] b, int m, int n, int k) {
        double[] out = new double[m * n];
        RefLinear.forward(out, x, w, b, m, n, k);
        return dot(dOut, out);
    }

    private static double accLoss(double[] dOut, double[] base, double[] x, double[] w, double alpha, int m, int n,
                                  int k) {
        double[] out = base.clone();
        RefLinear.forwardAccumulate(out, x, w, alpha, m, n, k);
        return dot(dOut, out);
    }
}
