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

    /**
     * {@link #adamwUpdate(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, long)} for every index
     * of the four lists (same length, same shapes pairwise): the whole optimizer step in one call, which a device
     * backend runs as one launch. Each element's result is that of the one-tensor update.
     */
    default void adamwUpdate(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float lr,
                             float beta1, float beta2, float eps, float weightDecay, long step) {
        requireSameSize("adamwUpdate", params, grads, m, v);
        for (int i = 0; i < params.size(); i++) {
            adamwUpdate(params.get(i), grads.get(i), m.get(i), v.get(i), lr, beta1, beta2, eps, weightDecay, step);
        }
    }

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

    /** {@link #scale(Tensor, float)} of every tensor of the list. */
    default void scale(List<Tensor> ts, float factor) {
        for (Tensor t : ts) {
            scale(t, factor);
        }
    }

    /** {@link #zero(Tensor)} of every tensor of the list. */
    default void zero(List<Tensor> ts) {
        for (Tensor t : ts) {
            zero(t);
        }
    }

    private static void requireSameSize(String op, List<Tensor> params, List<Tensor> grads, List<Tensor> m,
                                        List<Tensor> v) {
        if (grads.size() != params.size() || m.size() != params.size() || v.size() != params.size()) {
            throw new IllegalArgumentException(op + ": lists of params, grads, m, v must have one length, got "
                    + params.size() + ", " + grads.size() + ", " + m.size() + ", " + v.size());
        }
    }
}
