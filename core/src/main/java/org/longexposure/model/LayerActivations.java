package org.longexposure.model;

import org.longexposure.tensor.Tensor;

/**
 * A read-only window on one decoder layer's saved forward activations for the current micro-batch (B, T), as the
 * Exposer (design note section 2) reads them: views of the state's buffers, valid until the next forward on that
 * state. Callers must not write to them (the backward reads them).
 *
 * @param q         (B, T, C) attention queries (after the q projection and its adapter, before the scale)
 * @param k         (B, T, C) attention keys
 * @param lse       (B, NH, T) row log-sum-exp of the scaled, masked scores {@code scale·q·kᵀ}
 * @param ffnHidden (N, H) FFN hidden state after the activation (ReLU: exact zeros for inactive neurons)
 */
public record LayerActivations(Tensor q, Tensor k, Tensor lse, Tensor ffnHidden) {
}
