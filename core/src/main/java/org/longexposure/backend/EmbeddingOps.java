package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Row gathers from an embedding table (token embeddings, learned positions). ACT is the backend's activation dtype
 * (CPU: F32).
 */
public interface EmbeddingOps {
    /**
     * {@code out[i] = table[ids[i]]} (overwrite), or {@code out[i] += table[ids[i]]} when {@code accumulate}.
     *
     * @param out   (N, C) ACT
     * @param ids   (N) I32, each in [0, rows of table)
     * @param table (V, C) F32/F16/BF16
     */
    void embeddingForward(Tensor out, Tensor ids, Tensor table, boolean accumulate);

    /**
     * dTable {@code +=} the scatter of dOut rows to {@code ids} (only for trainable tables).
     *
     * @param dTable (V, C) F32
     * @param dOut   (N, C) ACT
     * @param ids    (N) I32
     */
    void embeddingBackward(Tensor dTable, Tensor dOut, Tensor ids);
}
