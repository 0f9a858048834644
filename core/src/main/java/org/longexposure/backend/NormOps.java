package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * LayerNorm over the last dimension, as {@code torch.nn.LayerNorm} (biased variance, eps inside the sqrt). ACT is
 * the backend's activation dtype (CPU: F32); statistics and parameters are F32 on every backend.
 */
public interface NormOps {
    /**
     * {@code out = (inp - mean)·rstd·weight + bias} (overwrite).
     *
     * @param out    (M, C) ACT
     * @param mean   (M) F32, saved
     * @param rstd   (M) F32, saved: 1/sqrt(var + eps)
     * @param inp    (M, C) ACT
     * @param weight (C) F32, or null for no elementwise affine
     * @param bias   (C) F32, or null
     */
    void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias, float eps);

    /**
     * dInp {@code =} (or {@code +=} when {@code accumulate}, for a residual stream); dWeight, dBias {@code +=}.
     *
     * @param dInp    (M, C) ACT
     * @param dWeight (C) F32, or null when the weight is frozen or absent
     * @param dBias   (C) F32, or null
     * @param dOut    (M, C) ACT
     * @param inp     (M, C) ACT, the forward's input
     * @param mean    (M) F32
     * @param rstd    (M) F32
     * @param weight  (C) F32, or null
     */
    void layerNormBackward(Tensor dInp, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor inp, Tensor mean,
                           Tensor rstd, Tensor weight, boolean accumulate);
}
