package org.longexposure.testkit.reference;

/**
 * Pointwise activations and residual adds in float64; twin of {@code ActivationOps}. The {@link Kind} constants
 * carry the same names as the engine's {@code Activation} enum, so {@code Kind.valueOf(act.name())} maps one to
 * the other.
 * <ul>
 *   <li>ReLU: {@code max(0, x)}; derivative 1 for x > 0, else 0 (torch's choice at 0).</li>
 *   <li>GELU ({@code torch.nn.functional.gelu}, exact): {@code x·Φ(x)}, {@code Φ(x) = erfc(−x/√2)/2};
 *       derivative {@code Φ(x) + x·φ(x)}, {@code φ(x) = exp(−x²/2)/√(2π)}.</li>
 *   <li>GELU, tanh form (GPT-2's {@code gelu_new}): {@code 0.5·x·(1 + tanh(u))},
 *       {@code u = √(2/π)·(x + 0.044715·x³)}; derivative
 *       {@code 0.5·(1 + tanh u) + 0.5·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²)}.</li>
 * </ul>
 *
 * <p>The error function is computed here, not approximated by a fit: for |x| < 2.5 by the everywhere-positive
 * series {@code erf(x) = (2/√π)·e^{−x²}·Σ_n 2ⁿx^{2n+1}/(1·3···(2n+1))} (Abramowitz and Stegun 7.1.6; no
 * cancellation, so it is accurate to a few ulp), and for |x| ≥ 2.5 through {@code erfc} by its continued fraction
 * {@code erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))} (A&S 7.1.14), evaluated by the
 * modified Lentz method until a step changes the value by less than 1e-16. The absolute error of erf is below
 * 1e-15 and the relative error of erfc for x ≥ 2.5 below 1e-14 (the tests check both against an independent
 * quadrature of 2/√π·e^{−t²} and against published tables); below 2.5, erfc = 1 − erf keeps a relative error
 * below about 1e-12 (its smallest value there is 4e-4).
 */
public final class RefActivation {
    /** The activations, named as the engine's {@code Activation} constants. */
    public enum Kind { RELU, GELU, GELU_TANH }

    private static final double SQRT_PI = Math.sqrt(Math.PI);
    private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
    private static final double INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
    private static final double SERIES_LIMIT = 2.5;
    private static final double GELU_TANH_C = 0.044715;

    private RefActivation() {
    }

    // --- the error function

    /** erf(x) to about 1e-15 absolute. */
    public static double erf(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        if (x < 0) {
            return -erf(-x);
        }
        if (x < SERIES_LIMIT) {
            return erfSeries(x);
        }
        return 1 - erfcContinuedFraction(x);
    }

    /** erfc(x) = 1 − erf(x), relatively accurate in the right tail. */
    public static double erfc(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        if (x < 0) {
            return 2 - erfc(-x);
        }
        if (x < SERIES_LIMIT) {
            return 1 - erfSeries(x);
        }
        return erfcContinuedFraction(x);
    }

    /** The standard normal CDF Φ(x) = erfc(−x/√2)/2, relatively accurate in the left tail. */
    public static double normalCdf(double x) {
        return 0.5 * erfc(-x / Math.sqrt(2));
    }

    /** The standard normal density φ(x). */
    public static double normalPdf(double x) {
        return INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    }

    private static double erfSeries(double x) {
        double x2 = 2 * x * x;
        double term = x;
        double sum = x;
        for (int n = 1; n < 500; n++) {
            term *= x2 / (2 * n + 1);
            sum += term;
            if (term < 1e-17 * sum) {
                break;
            }
        }
        return 2 / SQRT_PI * Math.exp(-x * x) * sum;
    }

    private static double erfcContinuedFraction(double x) {
        if (x > 27) {
            return 0;
        }
        // f = x + a1/(x + a2/(x + …)), a_j = j/2, by the modified Lentz method.
        double tiny = 1e-300;
        double f = x;
        double c = f;
        double d = 0;
        for (int j = 1; j < 5000; j++) {
            double a = 0.5 * j;
            d = x + a * d;
            d = Math.abs(d) < tiny ? tiny : d;
            d = 1 / d;
            c = x + a / c;
            c = Math.abs(c) < tiny ? tiny : c;
            double delta = c * d;
            f *= delta;
            if (Math.abs(delta - 1) < 1e-16) {
                break;
            }
        }
        return Math.exp(-x * x) / SQRT_PI / f;
    }

    // --- scalar activations and derivatives

    public static double relu(double x) {
        return x > 0 ? x : 0;
    }

    public static double reluGrad(double x) {
        return x > 0 ? 1 : 0;
    }

    public static double gelu(double x) {
        return x * normalCdf(x);
    }

    public static double geluGrad(double x) {
        return normalCdf(x) + x * normalPdf(x);
    }

    public static double geluTanh(double x) {
        double u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
        return 0.5 * x * (1 + Math.tanh(u));
    }

    public static double geluTanhGrad(double x) {
        double u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
        double t = Math.tanh(u);
        double du = SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_C * x * x);
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
    }

    /** act(x). */
    public static double apply(Kind kind, double x) {
        return switch (kind) {
            case RELU -> relu(x);
            case GELU -> gelu(x);
            case GELU_TANH -> geluTanh(x);
        };
    }

    /** act'(x). */
    public static double derivative(Kind kind, double x) {
        return switch (kind) {
            case RELU -> reluGrad(x);
            case GELU -> geluGrad(x);
            case GELU_TANH -> geluTanhGrad(x);
        };
    }

    // --- array ops, as ActivationOps

    /** out = act(inp) (overwrite); out may be inp. */
    public static void forward(double[] out, double[] inp, Kind kind) {
        Dims.require("out", out, inp.length);
        for (int i = 0; i < inp.length; i++) {
            out[i] = apply(kind, inp[i]);
        }
    }

    /** dInp = dOut·act'(inp) (overwrite); dInp may be dOut. */
    public static void backward(double[] dInp, double[] dOut, double[] inp, Kind kind) {
        Dims.require("dInp", dInp, inp.length);
        Dims.require("dOut", dOut, inp.length);
        for (int i = 0; i < inp.length; i++) {
            dInp[i] = dOut[i] * derivative(kind, inp[i]);
        }
    }

    /** out = a + b (overwrite). */
    public static void add(double[] out, double[] a, double[] b) {
        Dims.require("out", out, a.length);
        Dims.require("b", b, a.length);
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i] + b[i];
        }
    }

    /** dst += src. */
    public static void accumulate(double[] dst, double[] src) {
        Dims.require("src", src, dst.length);
        for (int i = 0; i < dst.length; i++) {
            dst[i] += src[i];
        }
    }
}
