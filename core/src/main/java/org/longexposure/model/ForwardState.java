package org.longexposure.model;

import org.longexposure.tensor.Tensor;

/** The preallocated activations of one model for micro-batches of up to (B, T); opaque but for the logits. */
public interface ForwardState {
    int maxBatchSize();

    int maxSeqLen();

    /** (B·T, V) logits of the last forward (rows of the current batch first). */
    Tensor logits();

    /**
     * Layer {@code l}'s saved activations of the last forward, as views shaped for that batch's (B, T); read-only,
     * valid until the next forward on this state.
     */
    LayerActivations layer(int l);
}
