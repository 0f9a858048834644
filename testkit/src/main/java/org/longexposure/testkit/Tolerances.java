package org.longexposure.testkit;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeSet;

/**
 * The one table of tolerances for {@code |x − ref| ≤ atol + rtol·|ref|}, per op, per kind (forward outputs vs
 * gradients) and per engine precision. {@code x} is the engine's float32 result, {@code ref} the float64 oracle's.
 *
 * <p>Each row says why it is as loose as it is. The float32 rows of the ops tested so far were set at five or
 * more times the largest error seen in the core op tests (normal data with offsets, awkward sizes up to 50272
 * along a reduced dimension), except the single-rounding rows, whose bound of 2^-24 relative is exact; the
 * linear and attention rows are first estimates for their tests to confirm. A change that needs a looser row
 * must say why in a comment next to it. Asking for a combination that has no row fails: nothing is skipped
 * silently.
 */
public final class Tolerances {
    /** What is being compared: an op's forward outputs or gradients from its backward. */
    public enum Kind { FORWARD, GRAD }

    /** The engine's compute precision the row was calibrated for. BF16 rows do not exist yet. */
    public enum Precision { F32, BF16 }

    /** One row: absolute and relative tolerance. */
    public record Tol(double atol, double rtol) {
        public Tol {
            if (!(atol >= 0) || !(rtol >= 0)) {
                throw new IllegalArgumentException("tolerances must be >= 0, got atol=" + atol + " rtol=" + rtol);
            }
        }
    }

    private static final Map<String, Tol> TABLE = table();

    private Tolerances() {
    }

    private static Map<String, Tol> table() {
        Map<String, Tol> t = new LinkedHashMap<>();
        // Linear: a K-term float dot product; rounding grows like sqrt(K)·eps·|x||w|, and outputs near zero by
        // cancellation need the absolute term.
        row(t, "linear", Kind.FORWARD, 1e-4, 1e-4);
        row(t, "linear", Kind.GRAD, 1e-4, 1e-4);
        // Attention: softmax of scaled dot products then a T-term weighted sum; the backward recomputes P from
        // the saved float lse and sums over T twice more.
        row(t, "attention", Kind.FORWARD, 1e-5, 1e-4);
        row(t, "attention", Kind.GRAD, 1e-4, 1e-3);
        // LayerNorm: row statistics over C; dInp subtracts two row means of products, so it cancels.
        row(t, "layernorm", Kind.FORWARD, 1e-5, 1e-5);
        row(t, "layernorm", Kind.GRAD, 1e-5, 1e-4);
        // ReLU is exact. The GELUs round a few flops and an exp of about 2 ulp; exact GELU also carries the
        // engine's erf (Abramowitz-Stegun 7.1.26, absolute error up to 1.5e-7), which gives absolute errors up
        // to about 4e-7 near |x| = 3 and large relative errors where gelu(x) is tiny (x < -3): hence its atol.
        row(t, "relu", Kind.FORWARD, 0, 0);
        row(t, "relu", Kind.GRAD, 0, 0);
        row(t, "gelu", Kind.FORWARD, 2e-6, 1e-5);
        row(t, "gelu", Kind.GRAD, 2e-6, 1e-5);
        row(t, "gelu_new", Kind.FORWARD, 1e-6, 1e-5);
        row(t, "gelu_new", Kind.GRAD, 1e-6, 1e-5);
        // Residual add / accumulate: a single rounding, at most 2^-24 relative.
        row(t, "add", Kind.FORWARD, 0, 1e-7);
        row(t, "add", Kind.GRAD, 0, 1e-7);
        // Embedding: the gather is exact (one rounding when accumulating); the scatter-add rounds once per
        // occurrence of an id, so the error grows with how often an id repeats in the batch.
        row(t, "embedding", Kind.FORWARD, 0, 1e-7);
        row(t, "embedding", Kind.GRAD, 1e-5, 1e-5);
        // Cross-entropy: the row lse sums V exponentials; losses are lse minus a logit, so they cancel by up
        // to |lse|; dLogits = w·(softmax − target) with softmax from the float lse, whose rounding (up to
        // 2e-6 for |lse| ≈ 40) is a relative error of every probability of the row; the atol assumes row weights
        // of order 1/count with count ≥ 1 and covers the cancellation at the target entry.
        row(t, "cross_entropy", Kind.FORWARD, 1e-5, 1e-5);
        row(t, "cross_entropy", Kind.GRAD, 3e-7, 1e-5);
        // AdamW: a handful of roundings per step, compounded over a few steps; near-zero moments make the
        // update m/(sqrt(v)+eps) sensitive, hence the relative term on the parameters.
        row(t, "adamw", Kind.FORWARD, 1e-6, 1e-5);
        // Σ g² in double: a float's square is exact in double, so only the double additions round.
        row(t, "sum_of_squares", Kind.FORWARD, 0, 1e-12);
        // t·factor: a single rounding.
        row(t, "scale", Kind.FORWARD, 0, 1e-7);
        return Map.copyOf(t);
    }

    private static void row(Map<String, Tol> t, String op, Kind kind, double atol, double rtol) {
        if (t.put(key(Precision.F32, op, kind), new Tol(atol, rtol)) != null) {
            throw new IllegalStateException("duplicate tolerance row " + op + " " + kind);
        }
    }

    private static String key(Precision p, String op, Kind kind) {
        return p + "/" + op + "/" + kind;
    }

    /** The float32 row for {@code op} and {@code kind}. */
    public static Tol of(String op, Kind kind) {
        return of(op, kind, Precision.F32);
    }

    /** The row for {@code op}, {@code kind} and {@code precision}; fails listing the known ops if absent. */
    public static Tol of(String op, Kind kind, Precision precision) {
        Tol tol = TABLE.get(key(precision, op, kind));
        if (tol == null) {
            TreeSet<String> known = new TreeSet<>();
            for (String k : TABLE.keySet()) {
                if (k.startsWith(precision + "/")) {
                    known.add(k.substring(precision.toString().length() + 1));
                }
            }
            throw new IllegalArgumentException("no tolerance row for op '" + op + "' kind " + kind + " precision "
                    + precision + "; rows (op/kind): " + known);
        }
        return tol;
    }
}
