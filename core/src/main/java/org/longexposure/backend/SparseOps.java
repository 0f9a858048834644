package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Long Exposure's dynamic sparse operators. Layouts change every step; with a full layout each op equals its
 * dense twin ({@link AttentionOps}; fc1 → ReLU → fc2 through {@link LinearOps}). Frozen weights get no gradient.
 * ACT is the backend's activation dtype (CPU: F32).
 */
public interface SparseOps {
    /**
     * Block-sparse causal attention (overwrite): {@link AttentionOps#attentionForward} restricted to the tiles of
     * {@code layout}; a query with no visible key gets a zero output and {@code lse = -inf}.
     */
    void blockSparseAttentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                     int numHeads, float scale, BlockLayout layout);

    /** dQ, dK, dV {@code =} (overwrite) the gradients of the forward above, visiting only the listed tiles. */
    void blockSparseAttentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                                      Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale,
                                      BlockLayout layout);

    /**
     * Neuron-block-sparse ReLU MLP (overwrite): {@code hidden = relu(inp·W1_Sᵀ + b1_S)} compacted per token block,
     * {@code out = hidden·W2_S ᵀ + b2} where S is the token block's listed neuron blocks.
     *
     * @param out    (N, C) ACT
     * @param hidden (N, maxBlocks·BN) ACT, saved: the compacted post-ReLU hidden state
     * @param inp    (N, C) ACT
     * @param w1     (H, C) fc1 weight, F32/F16/BF16
     * @param b1     (H) F32 or null
     * @param w2     (C, H) fc2 weight, F32/F16/BF16
     * @param b2     (C) F32 or null
     */
    default void sparseMlpForward(Tensor out, Tensor hidden, Tensor inp, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                                  NeuronLayout layout) {
        sparseMlpForward(out, hidden, inp, w1, b1, w2, b2, null, layout);
    }

    /**
     * {@link #sparseMlpForward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, NeuronLayout)} whose output
     * joins a residual stream: {@code out = hidden·W2_Sᵀ + b2 + residual}, the residual added where the second
     * product writes out (a device reads it in the product's epilogue) instead of in a separate add pass.
     *
     * @param residual (N, C) ACT: a tensor that does not overlap out, or out itself, or null (overwrite)
     */
    void sparseMlpForward(Tensor out, Tensor hidden, Tensor inp, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                          Tensor residual, NeuronLayout layout);

    /**
     * dInp {@code =} (overwrite) the input gradient; dB1 {@code +=} only at listed neurons; dB2 {@code +=}
     * Σ_rows dOut. No weight gradients: W1 and W2 are frozen.
     *
     * @param dInp   (N, C) ACT
     * @param dB1    (H) F32 or null
     * @param dB2    (C) F32 or null
     * @param dOut   (N, C) ACT
     * @param hidden (N, maxBlocks·BN) ACT, the forward's saved hidden state
     */
    void sparseMlpBackward(Tensor dInp, Tensor dB1, Tensor dB2, Tensor dOut, Tensor hidden, Tensor w1, Tensor w2,
                           NeuronLayout layout);
}
