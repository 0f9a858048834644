package org.longexposure.model;

import org.longexposure.backend.Backend;
import org.longexposure.tensor.Tensor;

/**
 * Something a PEFT method plugs into a frozen {@link Linear}: it adds a delta to the layer's output in the forward
 * pass and, in the backward pass, accumulates its own parameter gradients and its share of the input gradient.
 * The frozen weight is never edited. The adapter runs before the frozen product, which then accumulates onto what
 * the adapter wrote (see {@link Linear}: one pass over the output instead of two).
 */
public interface LinearAdapter {
    /** Allocates whatever the adapter saves for backward for up to {@code maxRows} input rows. */
    void prepare(Backend backend, int maxRows);

    /**
     * {@code out = delta(inp)} (overwrite); the frozen product is added afterwards.
     *
     * @param out (M, N) the layer's output, not yet written
     * @param inp (M, K) the layer's input
     */
    default void forward(Backend backend, Tensor out, Tensor inp, boolean training) {
        forward(backend, out, inp, null, training);
    }

    /**
     * {@code out = residual + delta(inp)}, or {@code out = delta(inp)} without a residual; the frozen product is
     * added afterwards. A layer whose output joins a residual stream hands the residual to the adapter, whose last
     * product writes out, so that the sum costs no pass of its own (see {@link Linear#forward}).
     *
     * @param out      (M, N) the layer's output, not yet written
     * @param inp      (M, K) the layer's input
     * @param residual (M, N) not overlapping out, or null
     */
    void forward(Backend backend, Tensor out, Tensor inp, Tensor residual, boolean training);

    /**
     * Parameter gradients {@code +=}; dInp {@code =} (or {@code +=} when {@code accumulate}) the adapter's input
     * gradient (skipped when dInp is null). The frozen input gradient is added afterwards.
     *
     * @param dInp (M, K), or null when no input gradient is needed
     * @param dOut (M, N)
     * @param inp  (M, K) the forward's input
     */
    void backward(Backend backend, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate);

    /**
     * The adapter's delta as a linear map when it is one: ΔW (N, K) row-major in float64 with {@code delta(x) =
     * x·ΔWᵀ} for the evaluation forward (no dropout), or {@code null} when the delta is not linear in the input.
     * Lets a caller that needs the layer's current map (the attention predictors, section 3 of the design note)
     * read it from the parameters instead of regressing it from activations.
     */
    default double[] linearDelta(Backend backend) {
        return null;
    }

    /**
     * The whole backward of the layer, the frozen product included, when the adapter has a fused form for it
     * (e.g. one that lets a device run the adapter's parameter products beside the frozen one); returns false,
     * having done nothing, otherwise, and the caller runs {@link #backward} and the frozen product.
     *
     * @param weight the frozen (N, K) weight of the layer
     */
    default boolean backwardWithFrozen(Backend backend, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate,
                                       Tensor weight) {
        return false;
    }
}
