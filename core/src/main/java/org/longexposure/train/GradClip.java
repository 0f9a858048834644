package org.longexposure.train;

import org.longexposure.backend.Backend;
import org.longexposure.peft.TrainableParams;

/**
 * Global-norm gradient clipping, as {@code torch.nn.utils.clip_grad_norm_}: the total L2 norm over all trainable
 * gradients; when {@code maxNorm > 0}, every gradient is multiplied by {@code min(1, maxNorm / (norm + 1e-6))}.
 */
public final class GradClip {
    private GradClip() {
    }

    /** Total L2 norm of all gradients (summed in a fixed order, in double). */
    public static double globalNorm(Backend be, TrainableParams params) {
        double sum = 0;
        for (TrainableParams.Param p : params.all()) {
            sum += be.optim().sumOfSquares(p.grad());
        }
        return Math.sqrt(sum);
    }

    /** Clips in place and returns the norm before clipping. {@code maxNorm <= 0} disables clipping. */
    public static double clip(Backend be, TrainableParams params, double maxNorm) {
        double norm = globalNorm(be, params);
        if (maxNorm > 0) {
            double coef = maxNorm / (norm + 1e-6);
            if (coef < 1.0) {
                for (TrainableParams.Param p : params.all()) {
                    be.optim().scale(p.grad(), (float) coef);
                }
            }
        }
        return norm;
    }
}
