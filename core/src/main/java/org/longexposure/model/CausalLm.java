package org.longexposure.model;

import java.util.List;
import org.longexposure.io.data.Batch;

/**
 * A causal language model with explicit forward and backward passes over preallocated {@link ForwardState}s.
 * Frozen weights never receive gradients; trainable parameters live in the adapters plugged into {@link Linear}s.
 */
public interface CausalLm extends AutoCloseable {
    ModelConfig config();

    /** Every linear layer, in module order, for PEFT target matching. */
    List<Linear> linears();

    /** Allocates the activations (and adapters' saved tensors) for micro-batches of up to (B, T). */
    ForwardState allocate(int batchSize, int seqLen);

    /**
     * Runs the forward pass and leaves the logits (B·T, V) in {@code state.logits()}; each layer's saved q, k,
     * log-sum-exp and FFN hidden state stay readable through {@code state.layer(l)} until the next forward.
     */
    void forward(ForwardState state, Batch batch, boolean training);

    /**
     * Runs the forward pass and the loss: mean cross-entropy over predicted tokens (labels shifted by one, as HF).
     * Returns the loss; the backward pass may follow.
     */
    double forwardLoss(ForwardState state, Batch batch, float labelSmoothing, boolean training);

    /**
     * Backward pass for the loss of the last {@link #forwardLoss} on this state, scaled by {@code lossScale}
     * (1 for one micro-batch; used by gradient accumulation): trainable gradients {@code +=}.
     */
    void backward(ForwardState state, float lossScale);

    /**
     * Routes later forwards' attention and MLP through the sparse operators where {@code plan} returns a layout
     * (see {@link SparsityPlan}); {@code null} or {@link SparsityPlan#DENSE} restores the dense model. Models
     * without sparse sockets accept only the dense plan.
     */
    default void sparsity(SparsityPlan plan) {
        if (plan != null && plan != SparsityPlan.DENSE) {
            throw new UnsupportedOperationException(getClass().getSimpleName() + " has no sparse sockets");
        }
    }

    /**
     * Layer {@code layer}'s query projection: the {@link Linear} that maps {@link LayerActivations#attnIn} to
     * {@link LayerActivations#q} (and {@link #keyProjection} to k); {@code null} when the model computes them some
     * other way (e.g. one fused product), in which case callers learn the map from activations.
     */
    default Linear queryProjection(int layer) {
        return null;
    }

    /** Layer {@code layer}'s key projection, as {@link #queryProjection}. */
    default Linear keyProjection(int layer) {
        return null;
    }

    @Override
    void close();
}
