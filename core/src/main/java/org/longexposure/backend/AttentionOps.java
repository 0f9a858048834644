package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Causal multi-head scaled-dot-product attention with a key padding mask, computed flash-style: the (T, T)
 * probability matrix is never stored; the forward saves the row log-sum-exp and the backward recomputes the
 * probabilities from it.
 *
 * <p>q, k, v and out are (B, T, C) with C = NH·HS, head h occupying columns {@code [h·HS, (h+1)·HS)} (the layout
 * the projections produce). Query i of sequence b attends to keys j ≤ i with {@code keyMask[b, j] != 0}. A query
 * with no visible key gets a zero output and {@code lse = -inf}. ACT is the backend's activation dtype (CPU: F32);
 * the log-sum-exp is F32 on every backend.
 */
public interface AttentionOps {
    /**
     * {@code out = softmax(scale · q·kᵀ + mask)·v} (overwrite).
     *
     * @param out     (B, T, C) ACT
     * @param lse     (B, NH, T) F32, saved: log Σ_j exp(scale·q_i·k_j) over visible keys
     * @param q       (B, T, C) ACT
     * @param k       (B, T, C) ACT
     * @param v       (B, T, C) ACT
     * @param keyMask (B, T) I32, 1 for real tokens, 0 for padding
     */
    void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                          int numHeads, float scale);

    /**
     * dQ, dK, dV {@code =} (overwrite) the gradients of the forward above.
     *
     * @param dQ   (B, T, C) ACT
     * @param dK   (B, T, C) ACT
     * @param dV   (B, T, C) ACT
     * @param dOut (B, T, C) ACT
     * @param out  (B, T, C) ACT, the forward's output
     * @param lse  (B, NH, T) F32, the forward's saved log-sum-exp
     */
    void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                           Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale);
}
