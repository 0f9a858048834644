package org.longexposure.model;

import org.longexposure.tensor.Tensor;

/** The preallocated activations of one model for micro-batches of up to (B, T); opaque but for the logits. */
public interface ForwardState {
    int maxBatchSize();

    int maxSeqLen();

    /** (B·T, V) logits of the last forward (rows of the current batch first). */
    Tensor logits();
}
