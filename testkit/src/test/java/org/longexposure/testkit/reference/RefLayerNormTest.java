package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.longexposure.testkit.GradCheck.assertGradient;
import static org.longexposure.testkit.GradCheck.dot;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.testkit.Rng;

/** RefLayerNorm: forward invariants and the backward proven by central differences. */
class RefLayerNormTest {
    private static final double EPS = 1e-5;

    @ParameterizedTest
    @CsvSource({"1, 7, true", "4, 13, true", "3, 5, false", "2, 1, true", "5, 2, false"})
    void backwardMatchesCentralDifferences(int m, int c, boolean affine) {
        Rng rng = new Rng(1000L * m + c);
        double[] x = rng.normal(m * c, 0.3, 1.7);
        double[] w = affine ? rng.normal(c, 1, 0.5) : null;
        double[] b = affine ? rng.normal(c) : null;
        double[] dOut = rng.normal(m * c);

        double[] out = new double[m * c];
        double[] mean = new double[m];
        double[] rstd = new double[m];
        RefLayerNorm.forward(out, mean, rstd, x, w, b, EPS, m, c);
        double[] dX = new double[m * c];
        double[] dW = affine ? new double[c] : null;
        double[] dB = affine ? new double[c] : null;
        RefLayerNorm.backward(dX, dW, dB, dOut, x, mean, rstd, w, false, m, c);

        assertGradient("layernorm dInp", dX, xs -> loss(dOut, xs, w, b, m, c), x);
        if (affine) {
            assertGradient("layernorm dWeight", dW, ws -> loss(dOut, x, ws, b, m, c), w);
            assertGradient("layernorm dBias", dB, bs -> loss(dOut, x, w, bs, m, c), b);
        }
    }

    @ParameterizedTest
    @CsvSource({"3, 13", "2, 64"})
    void accumulateAddsToInputGradientAndParameterGradients(int m, int c) {
        Rng rng = new Rng(77);
        double[] x = rng.normal(m * c);
        double[] w = rng.normal(c);
        double[] dOut = rng.normal(m * c);
        double[] out = new double[m * c];
        double[] mean = new double[m];
        double[] rstd = new double[m];
        RefLayerNorm.forward(out, mean, rstd, x, w, null, EPS, m, c);

        double[] fresh = new double[m * c];
        double[] freshW = new double[c];
        RefLayerNorm.backward(fresh, freshW, null, dOut, x, mean, rstd, w, false, m, c);
        double[] prior = rng.normal(m * c);
        double[] acc = prior.clone();
        double[] priorW = rng.normal(c);
        double[] accW = priorW.clone();
        RefLayerNorm.backward(acc, accW, null, dOut, x, mean, rstd, w, true, m, c);
        for (int i = 0; i < acc.length; i++) {
            assertThat(acc[i]).isCloseTo(prior[i] + fresh[i], within(1e-12));
        }
        for (int j = 0; j < c; j++) {
            assertThat(accW[j]).isCloseTo(priorW[j] + freshW[j], within(1e-12));
        }
    }

    @ParameterizedTest
    @CsvSource({"3, 13", "1, 100"})
    void normalisedRowsHaveZeroMeanAndVarianceShrunkByEps(int m, int c) {
        Rng rng = new Rng(3);
        double[] x = rng.normal(m * c, 5, 0.01);
        double[] out = new double[m * c];
        double[] mean = new double[m];
        double[] rstd = new double[m];
        RefLayerNorm.forward(out, mean, rstd, x, null, null, EPS, m, c);
        for (int i = 0; i < m; i++) {
            double s = 0;
            double s2 = 0;
            double raw = 0;
            for (int j = 0; j < c; j++) {
                s += out[i * c + j];
                s2 += out[i * c + j] * out[i * c + j];
                raw += x[i * c + j];
            }
            double var = 0;
            for (int j = 0; j < c; j++) {
                var += (x[i * c + j] - raw / c) * (x[i * c + j] - raw / c);
            }
            var /= c;
            assertThat(s / c).isCloseTo(0, within(1e-12));
            // Σ xhat²/C = var/(var + eps): eps matters here since var ≈ 1e-4.
            assertThat(s2 / c).isCloseTo(var / (var + EPS), within(1e-10));
        }
    }

    private static double loss(double[] dOut, double[] x, double[] w, double[] b, int m, int c) {
        double[] out = new double[m * c];
        RefLayerNorm.forward(out, new double[m], new double[m], x, w, b, EPS, m, c);
        return dot(dOut, out);
    }
}
