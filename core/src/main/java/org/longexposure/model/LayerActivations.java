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
 * @param ffnHidden (N, H) FFN hidden state after the activation (ReLU: exact zeros for inactive neurons); null when
 *                  the layer's MLP ran sparse (its saved hidden state is then compacted per token block)
 * @param attnIn    (N, C) the attention's input, the tensor q, k, v are projected from (pre-LN: LN1(x))
 * @param mlpIn     (N, C) the MLP's input, the tensor fc1 reads (pre-LN: LN2 of the residual)
 */
public record LayerActivations(Tensor q, Tensor k, Tensor lse, Tensor ffnHidden, Tensor attnIn, Tensor mlpIn) {
}
