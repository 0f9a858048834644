package org.longexposure.model;

import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.tensor.Tensor;

/**
 * The socket through which Long Exposure's sparsity plugs into a model (ARCHITECTURE.md B2: the model knows no
 * masks, it asks this plan). The model consults the plan once per layer per micro-batch in forward, just before
 * the layer's attention and just before its MLP; a null answer means dense. The model keeps the returned layouts
 * in its {@link ForwardState} and the backward reuses them, so the plan is not consulted again.
 *
 * <ul>
 *   <li>Attention: a {@link BlockLayout} for NH heads and the batch's T, run through
 *       {@code SparseOps.blockSparseAttentionForward/Backward} instead of dense attention.</li>
 *   <li>MLP (ReLU models only): a {@link NeuronLayout} over the N = B·T rows, run through
 *       {@code SparseOps.sparseMlpForward/Backward} instead of fc1 → ReLU → fc2. The sparse MLP saves only a
 *       compacted hidden state and calls no adapter, so a model refuses a layout for a layer whose fc1 or fc2
 *       carries an adapter (rather than silently dropping the adapter's delta or gradients).</li>
 * </ul>
 * With full layouts (every causal tile, every neuron block) the model computes what the dense model computes.
 *
 * <p>Implementations read {@code Input.x} through their backend (it may live on a device) and must not write it;
 * a plan that builds its layouts with the backend's ops ({@link org.longexposure.backend.PredictOps}) from
 * {@code x} and {@code keyMask} moves nothing through the host.
 */
public interface SparsityPlan {
    /** Every layer dense: the model's default. */
    SparsityPlan DENSE = new SparsityPlan() {
        @Override
        public BlockLayout attention(int layer, Input in) {
            return null;
        }

        @Override
        public NeuronLayout mlp(int layer, Input in) {
            return null;
        }
    };

    /**
     * What a plan sees of one layer's input on the current micro-batch.
     *
     * @param batchSize     B
     * @param seqLen        T
     * @param x             (N, C) activation dtype: the attention's input (pre-LN: LN1 of the layer input; post-LN:
     *                      the layer input) or the MLP's input (pre-LN: LN2 of the residual; post-LN: LN1 of it)
     * @param attentionMask (B·T) the batch's attention mask on the host, nonzero for real tokens; not to be modified
     * @param keyMask       (B·T) I32 the same mask on the backend (where the model's ops read it); not to be
     *                      modified
     */
    record Input(int batchSize, int seqLen, Tensor x, int[] attentionMask, Tensor keyMask) {
        public int rows() {
            return batchSize * seqLen;
        }
    }

    /** The tile layout for layer {@code layer}'s attention on this micro-batch, or null for dense attention. */
    BlockLayout attention(int layer, Input in);

    /** The neuron layout for layer {@code layer}'s MLP on this micro-batch, or null for the dense MLP. */
    NeuronLayout mlp(int layer, Input in);
}
