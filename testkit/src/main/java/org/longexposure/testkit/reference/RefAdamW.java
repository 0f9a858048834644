package org.longexposure.testkit.reference;

/**
 * One step of {@code torch.optim.AdamW} (single-tensor, non-amsgrad, non-maximize), in torch's order:
 * <pre>
 *   p ← p·(1 − lr·wd)                      decoupled weight decay, first
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   denom = sqrt(v) / sqrt(1 − β2^t) + eps
 *   p ← p − (lr / (1 − β1^t)) · m / denom
 * </pre>
 * param, grad, m, v all of one length; t is the 1-based step. Twin of {@code OptimOps.adamwUpdate}.
 */
public final class RefAdamW {
    private RefAdamW() {
    }

    /** Updates param, m and v in place. */
    public static void step(double[] param, double[] grad, double[] m, double[] v, double lr, double beta1,
                            double beta2, double eps, double weightDecay, long step) {
        Dims.require("grad", grad, param.length);
        Dims.require("m", m, param.length);
        Dims.require("v", v, param.length);
        if (step < 1) {
            throw new IllegalArgumentException("step is 1-based, got " + step);
        }
        double biasCorrection1 = 1 - Math.pow(beta1, step);
        double biasCorrection2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        double stepSize = lr / biasCorrection1;
        for (int i = 0; i < param.length; i++) {
            param[i] *= 1 - lr * weightDecay;
            m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
            v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i];
            double denom = Math.sqrt(v[i]) / biasCorrection2Sqrt + eps;
            param[i] -= stepSize * m[i] / denom;
        }
    }
}
