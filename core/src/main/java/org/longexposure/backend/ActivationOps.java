package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Pointwise activations and residual adds over same-shaped tensors (any shape) of the backend's activation dtype
 * (CPU: F32).
 */
public interface ActivationOps {
    /** {@code out = act(inp)} (overwrite); {@code out} may alias {@code inp}. */
    void activationForward(Tensor out, Tensor inp, Activation act);

    /**
     * dInp {@code =} {@code dOut · act'(inp)} (overwrite); {@code dInp} may alias {@code dOut}. For ReLU the
     * forward's output may be passed as {@code inp} (the sign is the same).
     */
    void activationBackward(Tensor dInp, Tensor dOut, Tensor inp, Activation act);

    /** {@code out = a + b} (overwrite): a residual add. {@code out} may alias {@code a} or {@code b}. */
    void addForward(Tensor out, Tensor a, Tensor b);

    /** {@code dst += src}: the backward of a residual add for the branch that did not overwrite. */
    void accumulate(Tensor dst, Tensor src);

    /**
     * Inverted dropout with a counter-based mask: {@code out[i] = keep(seed, i) ? inp[i] / (1 - p) : 0}
     * (overwrite), where {@code keep} is a pure function of (seed, flat index), so the backward regenerates the
     * mask instead of storing it and the result does not depend on thread count. {@code out} may alias {@code inp}.
     */
    void dropoutForward(Tensor out, Tensor inp, float p, long seed);

    /** dInp {@code =} {@code dOut ⊙ mask / (1 - p)} with the forward's (p, seed); dInp may alias dOut. */
    void dropoutBackward(Tensor dInp, Tensor dOut, float p, long seed);
}
