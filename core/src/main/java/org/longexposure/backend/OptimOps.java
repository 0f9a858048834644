package org.longexposure.backend;

import java.util.List;
import org.longexposure.tensor.Tensor;

/** Optimizer updates and gradient-norm reductions over trainable F32 parameters. */
public interface OptimOps {
    /**
     * One AdamW step in place, exactly as {@code torch.optim.AdamW} (decoupled weight decay applied first,
     * bias-corrected moments): {@code p ← p·(1 - lr·wd)}; {@code m ← β1·m + (1-β1)·g};
     * {@code v ← β2·v + (1-β2)·g²}; {@code p ← p - (lr / (1-β1^t)) · m / (sqrt(v)/sqrt(1-β2^t) + eps)}.
     *
     * @param param (any) F32, updated
     * @param grad  same shape F32
     * @param m     same shape F32, first moment, updated
     * @param v     same shape F32, second moment, updated
     * @param step  1-based step count t
     */
    void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                     float eps, float weightDecay, long step);

    /** Σ g² over the tensor, accumulated in double. */
    double sumOfSquares(Tensor grad);

    /**
     * The sum, in list order and in double, of {@link #sumOfSquares(Tensor)} of every tensor: the squared global
     * norm over many gradients. A device backend overrides it to synchronise once for the whole list.
     */
    default double sumOfSquares(List<Tensor> grads) {
        double s = 0;
        for (Tensor g : grads) {
            s += sumOfSquares(g);
        }
        return s;
    }

    /** {@code t *= factor} in place. */
    void scale(Tensor t, float factor);

    /** {@code t = 0}. */
    void zero(Tensor t);
}
