package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.longexposure.testkit.GradCheck.assertGradient;
import static org.longexposure.testkit.GradCheck.dot;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.longexposure.testkit.Rng;

/**
 * RefActivation: erf against an independent quadrature, each activation's derivative by central differences,
 * and the tanh form against its definition through the logistic function.
 */
class RefActivationTest {
    /**
     * 2/√π·∫_a^b exp(−t²) dt: composite Simpson with n and 2n intervals combined by one Richardson step
     * (error O(h⁶)), the weighted samples summed with Kahan compensation so that the sum's rounding stays near
     * one ulp.
     */
    private static double integral(double a, double b, int n) {
        double s1 = simpson(a, b, n);
        double s2 = simpson(a, b, 2 * n);
        return s2 + (s2 - s1) / 15;
    }

    private static double simpson(double a, double b, int n) {
        double h = (b - a) / n;
        double sum = 0;
        double comp = 0;
        for (int i = 0; i <= n; i++) {
            double w = i == 0 || i == n ? 1 : i % 2 == 1 ? 4 : 2;
            double y = w * f(a + i * h) - comp;
            double t = sum + y;
            comp = (t - sum) - y;
            sum = t;
        }
        return sum * h / 3;
    }

    private static double f(double t) {
        return 2 / Math.sqrt(Math.PI) * Math.exp(-t * t);
    }

    @ParameterizedTest
    @ValueSource(doubles = {0.0, 1e-8, 0.01, 0.3, 0.5, 1.0, 1.7, 2.2, 2.4999, 2.5, 2.5001, 3.0, 4.0, 5.5})
    void erfMatchesQuadrature(double x) {
        double quad = integral(0, x, 20000);
        assertThat(RefActivation.erf(x)).isCloseTo(quad, within(1e-15));
        assertThat(RefActivation.erf(-x)).isEqualTo(-RefActivation.erf(x));
    }

    @ParameterizedTest
    @ValueSource(doubles = {2.5, 2.7, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0})
    void erfcRightTailIsRelativelyAccurate(double x) {
        // ∫_x^∞ = ∫_x^{x+8}: the rest is below e^{-(x+8)²}, far beneath double resolution relative to erfc(x).
        double quad = integral(x, x + 8, 200000);
        assertThat(RefActivation.erfc(x) / quad).isCloseTo(1.0, within(1e-14));
    }

    @Test
    void erfMatchesPublishedValues() {
        // Abramowitz and Stegun, Table 7.1, and its complement for the tail values.
        assertThat(RefActivation.erf(0.5)).isCloseTo(0.520499877813047, within(1e-15));
        assertThat(RefActivation.erf(1.0)).isCloseTo(0.842700792949715, within(1e-15));
        assertThat(RefActivation.erfc(3.0) / 2.209049699858544e-5).isCloseTo(1.0, within(1e-14));
        assertThat(RefActivation.erfc(5.0) / 1.537459794428035e-12).isCloseTo(1.0, within(1e-14));
    }

    @Test
    void erfcJoinsContinuouslyAndCompletesErf() {
        double below = RefActivation.erfc(Math.nextDown(2.5));
        double at = RefActivation.erfc(2.5);
        assertThat(below / at).isCloseTo(1.0, within(1e-12));
        for (double x = -6; x <= 6; x += 0.37) {
            assertThat(RefActivation.erf(x) + RefActivation.erfc(x)).isCloseTo(1.0, within(1e-15));
        }
        assertThat(RefActivation.normalCdf(-10) / (0.5 * RefActivation.erfc(10 / Math.sqrt(2))))
                .isEqualTo(1.0);
    }

    @ParameterizedTest
    @EnumSource(RefActivation.Kind.class)
    void backwardMatchesCentralDifferences(RefActivation.Kind kind) {
        Rng rng = new Rng(kind.ordinal() + 11);
        double[] x = rng.normal(37, 0, 2.5);
        for (int i = 0; i < x.length; i++) {
            if (Math.abs(x[i]) < 1e-3) {
                x[i] = 0.5; // ReLU's kink: central differences straddling 0 would see a slope of 1/2
            }
        }
        double[] dOut = rng.normal(x.length);
        double[] dX = new double[x.length];
        RefActivation.backward(dX, dOut, x, kind);
        assertGradient(kind + " dInp", dX, xs -> {
            double[] out = new double[xs.length];
            RefActivation.forward(out, xs, kind);
            return dot(dOut, out);
        }, x);
    }

    @Test
    void geluTanhEqualsItsLogisticForm() {
        // 0.5·(1 + tanh u) = 1/(1 + e^{−2u}).
        for (double x = -12; x <= 12; x += 0.013) {
            double u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
            double logistic = x / (1 + Math.exp(-2 * u));
            assertThat(RefActivation.geluTanh(x)).isCloseTo(logistic, within(1e-14 * (1 + Math.abs(x))));
        }
    }

    @Test
    void geluApproachesIdentityAndZeroInTheTails() {
        assertThat(RefActivation.gelu(9)).isCloseTo(9, within(1e-15));
        assertThat(RefActivation.gelu(-9)).isLessThan(0).isGreaterThan(-1e-17);
        assertThat(RefActivation.gelu(0)).isZero();
        assertThat(RefActivation.geluGrad(0)).isEqualTo(0.5);
        assertThat(RefActivation.geluTanhGrad(0)).isEqualTo(0.5);
    }

    @Test
    void addAndAccumulate() {
        Rng rng = new Rng(4);
        double[] a = rng.normal(9);
        double[] b = rng.normal(9);
        double[] out = new double[9];
        RefActivation.add(out, a, b);
        double[] dst = a.clone();
        RefActivation.accumulate(dst, b);
        assertThat(dst).containsExactly(out);
        for (int i = 0; i < 9; i++) {
            assertThat(out[i]).isEqualTo(a[i] + b[i]);
        }
    }
}
