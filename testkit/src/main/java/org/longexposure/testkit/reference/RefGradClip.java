package org.longexposure.testkit.reference;

/**
 * Gradient-norm clipping as {@code torch.nn.utils.clip_grad_norm_} (L2, error_if_nonfinite off): the total norm
 * is the L2 norm over all tensors together, {@code sqrt(Σ_tensors Σ g²)}; the coefficient is
 * {@code max_norm / (total + 1e-6)} clamped to at most 1, and every gradient is multiplied by it (also when it
 * is 1). Returns the total norm before clipping. Twin of {@code OptimOps.sumOfSquares} + {@code scale}.
 */
public final class RefGradClip {
    /** torch's guard against division by zero in the clip coefficient. */
    public static final double NORM_EPS = 1e-6;

    private RefGradClip() {
    }

    /** Σ g² over one tensor. */
    public static double sumOfSquares(double[] grad) {
        double s = 0;
        for (double g : grad) {
            s += g * g;
        }
        return s;
    }

    /** sqrt(Σ over all tensors of Σ g²). */
    public static double totalNorm(double[]... grads) {
        double s = 0;
        for (double[] g : grads) {
            s += sumOfSquares(g);
        }
        return Math.sqrt(s);
    }

    /** min(1, maxNorm / (totalNorm + 1e-6)). */
    public static double clipCoefficient(double totalNorm, double maxNorm) {
        return Math.min(1.0, maxNorm / (totalNorm + NORM_EPS));
    }

    /** Scales every gradient by the clip coefficient in place; returns the total norm before clipping. */
    public static double clip(double maxNorm, double[]... grads) {
        double total = totalNorm(grads);
        double coef = clipCoefficient(total, maxNorm);
        for (double[] g : grads) {
            scale(g, coef);
        }
        return total;
    }

    /** t *= factor in place. */
    public static void scale(double[] t, double factor) {
        for (int i = 0; i < t.length; i++) {
            t[i] *= factor;
        }
    }
}
