package org.longexposure.model;

import org.longexposure.backend.Backend;
import org.longexposure.tensor.Tensor;

/**
 * Something a PEFT method plugs into a frozen {@link Linear}: it adds a delta to the layer's output in the forward
 * pass and, in the backward pass, accumulates its own parameter gradients and its share of the input gradient.
 * The frozen weight is never edited.
 */
public interface LinearAdapter {
    /** Allocates whatever the adapter saves for backward for up to {@code maxRows} input rows. */
    void prepare(Backend backend, int maxRows);

    /**
     * {@code out += delta(inp)}.
     *
     * @param out (M, N) the frozen layer's output, already computed
     * @param inp (M, K) the layer's input
     */
    void forward(Backend backend, Tensor out, Tensor inp, boolean training);

    /**
     * Parameter gradients {@code +=}; dInp {@code +=} the adapter's input gradient (skipped when dInp is null).
     *
     * @param dInp (M, K), or null when no input gradient is needed
     * @param dOut (M, N)
     * @param inp  (M, K) the forward's input
     */
    void backward(Backend backend, Tensor dInp, Tensor dOut, Tensor inp);
}
