package org.longexposure.testkit;

import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * Central-difference gradients in float64, used to prove the reference ops' backward formulas:
 * {@code ∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h}. The truncation error is {@code h²/6·|f'''|} (about
 * 1e-13 for h = 1e-6 and smooth f), the rounding error about {@code ulp(f)/h}: an objective of size 100 gives
 * about 1e-8. Costs two evaluations of f per input element, so keep the shapes small.
 *
 * <p>The comparison {@link #assertClose} allows, per element,
 * {@code |analytic − numeric| ≤ rtol·(|numeric| + FLOOR·‖numeric‖∞) + ABS_FLOOR}: relative to the element, with a
 * floor relative to the largest gradient so that elements that happen to be near zero are judged against the
 * gradient's scale rather than against the rounding noise of the difference quotient.
 */
public final class GradCheck {
    /** Default step h. */
    public static final double DEFAULT_STEP = 1e-6;
    /** Default relative tolerance. */
    public static final double DEFAULT_RTOL = 1e-6;
    /** Fraction of the largest |gradient| that every element's allowance is at least relative to. */
    public static final double FLOOR = 1e-2;
    /** Absolute allowance for gradients that are zero everywhere: rounding noise of the quotient. */
    public static final double ABS_FLOOR = 1e-9;

    private GradCheck() {
    }

    /** The numeric gradient of {@code f} at {@code x} with the default step. {@code x} is restored. */
    public static double[] numericGradient(ToDoubleFunction<double[]> f, double[] x) {
        return numericGradient(f, x, DEFAULT_STEP);
    }

    /** The numeric gradient of {@code f} at {@code x} with step {@code h}. {@code x} is restored exactly. */
    public static double[] numericGradient(ToDoubleFunction<double[]> f, double[] x, double h) {
        if (!(h > 0)) {
            throw new IllegalArgumentException("step h must be > 0, got " + h);
        }
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double xi = x[i];
            x[i] = xi + h;
            double plus = f.applyAsDouble(x);
            x[i] = xi - h;
            double minus = f.applyAsDouble(x);
            x[i] = xi;
            g[i] = (plus - minus) / (2 * h);
        }
        return g;
    }

    /** Checks {@code analytic} against the numeric gradient of {@code f} at {@code x} with the defaults. */
    public static void assertGradient(String what, double[] analytic, ToDoubleFunction<double[]> f, double[] x) {
        assertGradient(what, analytic, f, x, DEFAULT_STEP, DEFAULT_RTOL);
    }

    /** Checks {@code analytic} against the numeric gradient of {@code f} at {@code x}. */
    public static void assertGradient(String what, double[] analytic, ToDoubleFunction<double[]> f, double[] x,
                                      double h, double rtol) {
        if (analytic.length != x.length) {
            throw new IllegalArgumentException(what + ": analytic gradient has " + analytic.length
                    + " elements, input has " + x.length);
        }
        assertClose(what, analytic, numericGradient(f, x, h), rtol);
    }

    /** Compares two gradients with the allowance described in the class comment; fails naming the worst. */
    public static void assertClose(String what, double[] analytic, double[] numeric, double rtol) {
        if (analytic.length != numeric.length) {
            throw new IllegalArgumentException(what + ": " + analytic.length + " vs " + numeric.length
                    + " elements");
        }
        double scale = 0;
        for (double v : numeric) {
            scale = Math.max(scale, Math.abs(v));
        }
        int worst = -1;
        double worstRatio = 0;
        int failing = 0;
        for (int i = 0; i < analytic.length; i++) {
            double allow = rtol * (Math.abs(numeric[i]) + FLOOR * scale) + ABS_FLOOR;
            double err = Math.abs(analytic[i] - numeric[i]);
            double ratio = Double.isNaN(err) ? Double.POSITIVE_INFINITY : err / allow;
            if (ratio > 1) {
                failing++;
            }
            if (ratio > worstRatio || worst < 0) {
                worstRatio = ratio;
                worst = i;
            }
        }
        if (failing > 0) {
            throw new AssertionError(String.format(Locale.ROOT,
                    "%s: %d of %d gradient elements differ from central differences beyond rtol %.1e; worst at %d:"
                            + " analytic %.12g, numeric %.12g (|grad|max %.6g, %.3gx the allowance)",
                    what, failing, analytic.length, rtol, worst, analytic[worst], numeric[worst], scale,
                    worstRatio));
        }
    }

    /** Σ a_i·b_i: the random linear objective {@code L = Σ dOut·out} whose gradient a backward computes. */
    public static double dot(double[] a, double[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("dot of " + a.length + " and " + b.length + " elements");
        }
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }
}
