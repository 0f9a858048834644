package org.longexposure.testkit.reference;

/**
 * Cross-entropy over the vocabulary as {@code torch.nn.functional.cross_entropy(logits, targets,
 * label_smoothing=ε, reduction='none')}, with per-row weights: for row i with logits z (V),
 * {@code lse = log Σ_c exp(z_c)} and
 * {@code loss_i = (1−ε)·(lse − z_y) + ε/V·Σ_c (lse − z_c) = lse − (1−ε)·z_y − ε/V·Σ_c z_c}.
 * Rows whose weight is 0 are ignored: loss 0, gradient 0, target not read (it may be e.g. −100); their lse is
 * still computed. The forward returns {@code Σ_i w_i·loss_i}; the backward gives the gradient of that sum,
 * {@code dz_c = w_i·(softmax(z)_c − ε/V − (1−ε)·[c = y])}. logits (N, V); targets, weights, losses, lse (N);
 * saves lse. Twin of {@code LossOps}.
 */
public final class RefCrossEntropy {
    private RefCrossEntropy() {
    }

    /** losses, lse = (overwrite) per-row loss and log-sum-exp; returns Σ weights·losses. */
    public static double forward(double[] losses, double[] lse, double[] logits, int[] targets, double[] weights,
                                 double labelSmoothing, int n, int v) {
        Dims.require("losses", losses, n);
        Dims.require("lse", lse, n);
        check(logits, targets, weights, n, v);
        double total = 0;
        for (int i = 0; i < n; i++) {
            lse[i] = logSumExp(logits, i * v, v);
            if (weights[i] == 0) {
                losses[i] = 0;
                continue;
            }
            int y = target(targets, i, v);
            double sumZ = 0;
            for (int c = 0; c < v; c++) {
                sumZ += logits[i * v + c];
            }
            double loss = lse[i] - (1 - labelSmoothing) * logits[i * v + y] - labelSmoothing / v * sumZ;
            losses[i] = loss;
            total += weights[i] * loss;
        }
        return total;
    }

    /** dLogits = (overwrite) the gradient of Σ weights·losses; dLogits may be logits. */
    public static void backward(double[] dLogits, double[] logits, double[] lse, int[] targets, double[] weights,
                                double labelSmoothing, int n, int v) {
        Dims.require("dLogits", dLogits, Dims.product(n, v));
        Dims.require("lse", lse, n);
        check(logits, targets, weights, n, v);
        for (int i = 0; i < n; i++) {
            double w = weights[i];
            int y = w == 0 ? -1 : target(targets, i, v);
            for (int c = 0; c < v; c++) {
                double p = Math.exp(logits[i * v + c] - lse[i]);
                double q = labelSmoothing / v + (c == y ? 1 - labelSmoothing : 0);
                dLogits[i * v + c] = w == 0 ? 0 : w * (p - q);
            }
        }
    }

    /** log Σ exp over logits[off, off + v), shifted by the maximum. */
    public static double logSumExp(double[] logits, int off, int v) {
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < v; c++) {
            max = Math.max(max, logits[off + c]);
        }
        double s = 0;
        for (int c = 0; c < v; c++) {
            s += Math.exp(logits[off + c] - max);
        }
        return max + Math.log(s);
    }

    private static void check(double[] logits, int[] targets, double[] weights, int n, int v) {
        if (v < 1) {
            throw new IllegalArgumentException("vocabulary size must be >= 1, got " + v);
        }
        Dims.require("logits", logits, Dims.product(n, v));
        Dims.require("targets", targets, n);
        Dims.require("weights", weights, n);
    }

    private static int target(int[] targets, int i, int v) {
        int y = targets[i];
        if (y < 0 || y >= v) {
            throw new IllegalArgumentException("targets[" + i + "] = " + y + " is outside [0, " + v
                    + ") on a row with non-zero weight");
        }
        return y;
    }
}
