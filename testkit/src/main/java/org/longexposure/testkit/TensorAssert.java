package org.longexposure.testkit;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The one closeness check used by every op test: per element {@code |x − ref| ≤ atol + rtol·|ref|}, with
 * {@code x} the engine's float32 values, {@code ref} the float64 oracle's, and (atol, rtol) from
 * {@link Tolerances}. Equal values (including equal infinities) always pass; a NaN passes only against a NaN.
 *
 * <p>A failure throws {@link AssertionError} whose message names the op, kind, precision and shape, counts the
 * failing elements, gives the largest absolute and relative errors and the worst element's index, and lists the
 * first few (x, ref) pairs ordered from the worst (relative to its allowance) down.
 */
public final class TensorAssert {
    /** How many (x, ref) pairs a failure message lists. */
    private static final int SHOWN = 6;

    private TensorAssert() {
    }

    /** Checks {@code actual} against {@code expected} with the float32 row of {@code op}, {@code kind}. */
    public static void assertClose(String op, Tolerances.Kind kind, float[] actual, double[] expected,
                                   int... shape) {
        assertClose(op, kind, Tolerances.Precision.F32, actual, expected, shape);
    }

    /** Checks {@code actual} against {@code expected} with the row of {@code op}, {@code kind}, {@code precision}. */
    public static void assertClose(String op, Tolerances.Kind kind, Tolerances.Precision precision, float[] actual,
                                   double[] expected, int... shape) {
        check(op + " " + kind + " " + precision, Tolerances.of(op, kind, precision), toDouble(actual), expected,
                shape);
    }

    /** Checks {@code actual} against {@code expected} with an explicit row (say why in the caller). */
    public static void assertClose(String what, Tolerances.Tol tol, float[] actual, double[] expected,
                                   int... shape) {
        check(what, tol, toDouble(actual), expected, shape);
    }

    /** Checks float64 values (e.g. a loss sum returned in double) with an explicit row. */
    public static void assertClose(String what, Tolerances.Tol tol, double[] actual, double[] expected,
                                   int... shape) {
        check(what, tol, actual, expected, shape);
    }

    /** Checks one scalar with the float32 row of {@code op}, {@code kind}. */
    public static void assertClose(String op, Tolerances.Kind kind, double actual, double expected) {
        check(op + " " + kind + " F32", Tolerances.of(op, kind), new double[] {actual}, new double[] {expected});
    }

    /** ‖actual − expected‖₂ / ‖expected‖₂ (0 when both are zero, infinite when only expected is zero). */
    public static double relativeNorm(float[] actual, double[] expected) {
        return relativeNorm(toDouble(actual), expected);
    }

    /** ‖actual − expected‖₂ / ‖expected‖₂ (0 when both are zero, infinite when only expected is zero). */
    public static double relativeNorm(double[] actual, double[] expected) {
        requireSameLength(actual.length, expected.length);
        double diff = 0;
        double ref = 0;
        for (int i = 0; i < actual.length; i++) {
            double d = actual[i] - expected[i];
            diff += d * d;
            ref += expected[i] * expected[i];
        }
        if (ref == 0) {
            return diff == 0 ? 0 : Double.POSITIVE_INFINITY;
        }
        return Math.sqrt(diff / ref);
    }

    /** Fails unless ‖actual − expected‖₂ / ‖expected‖₂ ≤ {@code maxRelative}. */
    public static void assertRelativeNorm(String what, float[] actual, double[] expected, double maxRelative) {
        double r = relativeNorm(actual, expected);
        if (!(r <= maxRelative)) {
            throw new AssertionError(what + ": relative norm error " + fmt(r) + " > " + fmt(maxRelative)
                    + " over " + actual.length + " elements");
        }
    }

    /** Fails unless the two float arrays are equal bit for bit (determinism checks). */
    public static void assertBitIdentical(String what, float[] a, float[] b) {
        requireSameLength(a.length, b.length);
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                throw new AssertionError(what + ": not bit-identical at element " + i + " of " + a.length + ": "
                        + a[i] + " vs " + b[i]);
            }
        }
    }

    private static void check(String what, Tolerances.Tol tol, double[] x, double[] ref, int... shape) {
        requireSameLength(x.length, ref.length);
        int[] dims = shape.length == 0 ? new int[] {x.length} : shape;
        long numel = 1;
        for (int d : dims) {
            numel *= d;
        }
        if (numel != x.length) {
            throw new IllegalArgumentException(what + ": shape " + Arrays.toString(dims) + " has " + numel
                    + " elements but the arrays have " + x.length);
        }
        // excess[i] = |x − ref| / (atol + rtol·|ref|): > 1 fails. Infinite for any mismatch with zero allowance.
        double[] excess = new double[x.length];
        int failing = 0;
        double maxAbs = 0;
        double maxRel = 0;
        int worstAbs = -1;
        for (int i = 0; i < x.length; i++) {
            double a = x[i];
            double r = ref[i];
            double e;
            if (a == r || (Double.isNaN(a) && Double.isNaN(r))) {
                e = 0;
            } else {
                double err = Math.abs(a - r);
                double allow = tol.atol() + tol.rtol() * Math.abs(r);
                // an infinite value on either side must be matched exactly (inf/inf would otherwise pass as NaN)
                e = Double.isNaN(err) || allow == 0 || Double.isInfinite(a) || Double.isInfinite(r)
                        ? Double.POSITIVE_INFINITY : err / allow;
                if (!(err <= maxAbs)) {
                    maxAbs = err;
                    worstAbs = i;
                }
                double rel = err / Math.abs(r);
                if (!(rel <= maxRel)) {
                    maxRel = rel;
                }
            }
            excess[i] = e;
            if (e > 1) {
                failing++;
            }
        }
        if (failing == 0) {
            return;
        }
        Integer[] order = new Integer[x.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (p, q) -> Double.compare(excess[q], excess[p]));
        List<String> pairs = new ArrayList<>();
        for (int j = 0; j < Math.min(SHOWN, failing); j++) {
            int i = order[j];
            pairs.add(index(i, dims) + " x=" + fmt(x[i]) + " ref=" + fmt(ref[i]));
        }
        throw new AssertionError(String.format(Locale.ROOT,
                "%s shape %s: %d of %d elements outside |x-ref| <= %s + %s*|ref|; max abs err %s at %s, "
                        + "max rel err %s; worst: %s",
                what, Arrays.toString(dims), failing, x.length, fmt(tol.atol()), fmt(tol.rtol()), fmt(maxAbs),
                worstAbs < 0 ? "-" : index(worstAbs, dims), fmt(maxRel), String.join("; ", pairs)));
    }

    private static String index(int flat, int[] dims) {
        int[] idx = new int[dims.length];
        int rest = flat;
        for (int d = dims.length - 1; d >= 0; d--) {
            idx[d] = dims[d] == 0 ? 0 : rest % dims[d];
            rest = dims[d] == 0 ? 0 : rest / dims[d];
        }
        return Arrays.toString(idx);
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.9g", v);
    }

    private static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    private static void requireSameLength(int actual, int expected) {
        if (actual != expected) {
            throw new IllegalArgumentException("length mismatch: actual has " + actual + " elements, reference "
                    + expected);
        }
    }
}
