package org.longexposure.testkit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/** GradCheck finds a known gradient and rejects a wrong one. */
class GradCheckTest {
    /** f(x) = Σ sin(x_i)·x_{i+1} + x_0³: ∂f/∂x_i = cos(x_i)·x_{i+1} + sin(x_{i−1}) (+ 3x_0² for i = 0). */
    private static double f(double[] x) {
        double s = x[0] * x[0] * x[0];
        for (int i = 0; i + 1 < x.length; i++) {
            s += Math.sin(x[i]) * x[i + 1];
        }
        return s;
    }

    private static double[] grad(double[] x) {
        double[] g = new double[x.length];
        g[0] = 3 * x[0] * x[0];
        for (int i = 0; i < x.length; i++) {
            if (i + 1 < x.length) {
                g[i] += Math.cos(x[i]) * x[i + 1];
            }
            if (i > 0) {
                g[i] += Math.sin(x[i - 1]);
            }
        }
        return g;
    }

    @Test
    void acceptsTheTrueGradientAndRestoresTheInput() {
        double[] x = new Rng(9).normal(15);
        double[] copy = x.clone();
        GradCheck.assertGradient("f", grad(x), GradCheckTest::f, x);
        assertThat(x).containsExactly(copy);
        double[] numeric = GradCheck.numericGradient(GradCheckTest::f, x);
        double[] analytic = grad(x);
        for (int i = 0; i < x.length; i++) {
            assertThat(numeric[i]).isCloseTo(analytic[i], within(1e-8));
        }
    }

    @Test
    void rejectsAGradientOffByOnePartInAHundredThousand() {
        double[] x = new Rng(10).normal(15);
        double[] wrong = grad(x);
        wrong[7] *= 1 + 1e-5;
        assertThatThrownBy(() -> GradCheck.assertGradient("f", wrong, GradCheckTest::f, x))
                .isInstanceOf(AssertionError.class).hasMessageContaining("worst at 7");
    }
}
