package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Cross-entropy over the vocabulary, as {@code torch.nn.functional.cross_entropy} with optional label smoothing
 * ε: {@code loss_i = (1-ε)·(-log p_i[y_i]) + ε/V·Σ_c(-log p_i[c])}. Rows whose weight is 0 are ignored. ACT is
 * the backend's activation dtype (CPU: F32); losses, log-sum-exps and weights are F32 on every backend.
 */
public interface LossOps {
    /**
     * losses {@code =} per-row loss (overwrite; 0 where {@code weights[i] == 0}); lse {@code =} row log-sum-exp.
     *
     * @param losses  (N) F32
     * @param lse     (N) F32, saved
     * @param logits  (N, V) ACT
     * @param targets (N) I32
     * @param weights (N) F32: 0 for ignored rows, else the row's weight in the mean (typically 1/count)
     * @return Σ_i weights[i]·losses[i], accumulated in double
     */
    double crossEntropyForward(Tensor losses, Tensor lse, Tensor logits, Tensor targets, Tensor weights,
                               float labelSmoothing);

    /**
     * dLogits {@code =} (overwrite) the gradient of Σ_i weights[i]·loss_i; {@code dLogits} may alias
     * {@code logits} (the logits are then consumed).
     *
     * @param dLogits (N, V) ACT
     * @param logits  (N, V) ACT
     * @param lse     (N) F32
     * @param targets (N) I32
     * @param weights (N) F32
     */
    void crossEntropyBackward(Tensor dLogits, Tensor logits, Tensor lse, Tensor targets, Tensor weights,
                              float labelSmoothing);
}
