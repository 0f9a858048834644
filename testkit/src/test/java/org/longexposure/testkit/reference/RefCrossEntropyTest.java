package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.longexposure.testkit.GradCheck.assertGradient;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.testkit.Rng;

/**
 * RefCrossEntropy: losses against the definition as the cross-entropy of the smoothed target distribution
 * (computed without the max shift), and dLogits proven by central differences of Σ w·loss.
 */
class RefCrossEntropyTest {
    @ParameterizedTest
    @CsvSource({"1, 1, 0.0", "5, 11, 0.0", "5, 11, 0.1", "7, 3, 0.3", "4, 29, 1.0"})
    void lossesAreTheSmoothedCrossEntropy(int n, int v, double eps) {
        Problem p = new Problem(n, v, 17L * n + v);
        double[] losses = new double[n];
        double[] lse = new double[n];
        double total = RefCrossEntropy.forward(losses, lse, p.logits, p.targets, p.weights, eps, n, v);
        double expectTotal = 0;
        for (int i = 0; i < n; i++) {
            double z = 0;
            for (int c = 0; c < v; c++) {
                z += Math.exp(p.logits[i * v + c]);
            }
            assertThat(lse[i]).isCloseTo(Math.log(z), within(1e-13));
            if (p.weights[i] == 0) {
                assertThat(losses[i]).isZero();
                continue;
            }
            double ce = 0;
            for (int c = 0; c < v; c++) {
                double q = eps / v + (c == p.targets[i] ? 1 - eps : 0);
                ce -= q * Math.log(Math.exp(p.logits[i * v + c]) / z);
            }
            assertThat(losses[i]).isCloseTo(ce, within(1e-12));
            expectTotal += p.weights[i] * ce;
        }
        assertThat(total).isCloseTo(expectTotal, within(1e-12));
    }

    @ParameterizedTest
    @CsvSource({"1, 1, 0.0", "5, 11, 0.0", "5, 11, 0.1", "6, 7, 0.25"})
    void backwardMatchesCentralDifferences(int n, int v, double eps) {
        Problem p = new Problem(n, v, 5L * n + v);
        double[] lse = new double[n];
        RefCrossEntropy.forward(new double[n], lse, p.logits, p.targets, p.weights, eps, n, v);
        double[] dLogits = new double[n * v];
        RefCrossEntropy.backward(dLogits, p.logits, lse, p.targets, p.weights, eps, n, v);
        assertGradient("cross_entropy dLogits", dLogits,
                z -> RefCrossEntropy.forward(new double[n], new double[n], z, p.targets, p.weights, eps, n, v),
                p.logits);
        for (int i = 0; i < n; i++) {
            if (p.weights[i] == 0) {
                for (int c = 0; c < v; c++) {
                    assertThat(dLogits[i * v + c]).isZero();
                }
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"5, 11, 0.1"})
    void backwardMayOverwriteTheLogits(int n, int v, double eps) {
        Problem p = new Problem(n, v, 3);
        double[] lse = new double[n];
        RefCrossEntropy.forward(new double[n], lse, p.logits, p.targets, p.weights, eps, n, v);
        double[] separate = new double[n * v];
        RefCrossEntropy.backward(separate, p.logits, lse, p.targets, p.weights, eps, n, v);
        double[] inPlace = p.logits.clone();
        RefCrossEntropy.backward(inPlace, inPlace, lse, p.targets, p.weights, eps, n, v);
        assertThat(inPlace).containsExactly(separate);
    }

    /** Random logits, targets, and weights 1/count with every third row ignored (target −100, weight 0). */
    private static final class Problem {
        final double[] logits;
        final int[] targets;
        final double[] weights;

        Problem(int n, int v, long seed) {
            Rng rng = new Rng(seed);
            logits = rng.normal(n * v, 0.5, 2);
            targets = rng.ints(n, v);
            weights = new double[n];
            int count = 0;
            for (int i = 0; i < n; i++) {
                if (i % 3 == 2) {
                    targets[i] = -100;
                } else {
                    count++;
                }
            }
            for (int i = 0; i < n; i++) {
                weights[i] = targets[i] < 0 ? 0 : 1.0 / count;
            }
        }
    }
}
