package org.longexposure.train;

import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.peft.TrainableParams;
import org.longexposure.tensor.Tensor;

/**
 * Global-norm gradient clipping, as {@code torch.nn.utils.clip_grad_norm_}: the total L2 norm over all trainable
 * gradients; when {@code maxNorm > 0}, every gradient is multiplied by {@code min(1, maxNorm / (norm + 1e-6))}.
 */
public final class GradClip {
    private GradClip() {
    }

    /** Total L2 norm of all gradients (summed in a fixed order, in double; one backend call for all). */
    public static double globalNorm(Backend be, TrainableParams params) {
        List<Tensor> grads = params.all().stream().map(TrainableParams.Param::grad).toList();
        return Math.sqrt(be.optim().sumOfSquares(grads));
    }

    /** Clips in place and returns the norm before clipping. {@code maxNorm <= 0} disables clipping. */
    public static double clip(Backend be, TrainableParams params, double maxNorm) {
        double norm = globalNorm(be, params);
        if (maxNorm > 0) {
            double coef = maxNorm / (norm + 1e-6);
            if (coef < 1.0) {
                be.optim().scale(params.all().stream().map(TrainableParams.Param::grad).toList(), (float) coef);
            }
        }
        return norm;
    }
}
