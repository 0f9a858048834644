package org.longexposure.backend;

import org.longexposure.tensor.Tensor;

/**
 * Linear layers {@code y = x·Wᵀ + b} with HF's {@code nn.Linear} layout {@code W (N, K)}. Rows of x are any
 * leading dimensions flattened: x {@code (M, K)}, y {@code (M, N)}. ACT is the backend's activation dtype (CPU:
 * F32); a weight is a frozen matrix (F32/F16/BF16 on the CPU, the backend's weight dtype on a device) or a
 * trainable F32 parameter (LoRA).
 */
public interface LinearOps {
    /**
     * {@code out = inp·weightᵀ + bias} (overwrite): {@link #linearForward(Tensor, Tensor, Tensor, Tensor, boolean)}
     * without accumulation.
     */
    default void linearForward(Tensor out, Tensor inp, Tensor weight, Tensor bias) {
        linearForward(out, inp, weight, bias, false);
    }

    /**
     * {@code out = inp·weightᵀ + bias}, or with {@code accumulate} {@code out += inp·weightᵀ + bias}. Accumulating
     * lets an adapter write its delta into out first and the frozen product land on top of it in the same pass
     * that writes out (a device GEMM reads the old out in its epilogue, beta = 1), instead of a second read-and-
     * write pass over out for the delta.
     *
     * @param out    (M, N) ACT
     * @param inp    (M, K) ACT
     * @param weight (N, K) F32/F16/BF16
     * @param bias   (N) F32, or null
     */
    void linearForward(Tensor out, Tensor inp, Tensor weight, Tensor bias, boolean accumulate);

    /**
     * {@code out = inp·weightᵀ + bias + residual}: a linear layer whose output joins a residual stream (a decoder
     * layer's {@code x + out_proj(attn)} or {@code h + fc2(...)}), in one op so that a device GEMM reads the
     * residual in its epilogue (C = residual, D = out, beta = 1) instead of a separate add pass that reads out and
     * the residual and writes out again. The same values as {@link #linearForward} followed by
     * {@code ActivationOps.addForward(out, out, residual)}, up to the order of the rounding.
     *
     * @param out      (M, N) ACT
     * @param inp      (M, K) ACT
     * @param weight   (N, K) F32/F16/BF16
     * @param bias     (N) F32, or null
     * @param residual (M, N) ACT: a tensor that does not overlap out, or out itself (then this is
     *                 {@code linearForward(..., true)}), or null (then this is {@code linearForward(..., false)})
     */
    void linearForwardResidual(Tensor out, Tensor inp, Tensor weight, Tensor bias, Tensor residual);

    /**
     * {@code out = relu(inp·weightᵀ + bias)} (overwrite): a linear layer and its ReLU in one op, the same values as
     * {@link #linearForward} followed by {@code ActivationOps.activationForward(out, out, RELU)}, so that a device
     * backend can apply the ReLU inside the product's epilogue instead of another pass over out.
     *
     * @param out    (M, N) ACT
     * @param inp    (M, K) ACT
     * @param weight (N, K) F32/F16/BF16
     * @param bias   (N) F32, or null
     */
    void linearForwardRelu(Tensor out, Tensor inp, Tensor weight, Tensor bias);

    /**
     * {@code out = alpha · inp·weightᵀ}, or with {@code accumulate} {@code out += alpha · inp·weightᵀ}; no bias:
     * the second half of a LoRA forward ({@code s · xa·Bᵀ}).
     *
     * @param out    (M, N) ACT
     * @param inp    (M, K) ACT
     * @param weight (N, K) F32/F16/BF16
     */
    void linearForwardScaled(Tensor out, Tensor inp, Tensor weight, float alpha, boolean accumulate);

    /**
     * {@code out = alpha · inp·weightᵀ + residual}: the second half of a LoRA forward when the layer's output joins
     * a residual stream (the adapter writes {@code residual + s · xa·Bᵀ} and the frozen product accumulates on top).
     *
     * @param out      (M, N) ACT
     * @param inp      (M, K) ACT
     * @param weight   (N, K) F32/F16/BF16
     * @param residual (M, N) ACT: a tensor that does not overlap out, or out itself, or null (overwrite)
     */
    void linearForwardScaledResidual(Tensor out, Tensor inp, Tensor weight, float alpha, Tensor residual);

    /**
     * dInp {@code =} (or {@code +=} when {@code accumulate}) {@code alpha · dOut·weight}.
     *
     * @param dInp   (M, K) ACT
     * @param dOut   (M, N) ACT
     * @param weight (N, K) F32/F16/BF16
     */
    void linearBackwardInput(Tensor dInp, Tensor dOut, Tensor weight, float alpha, boolean accumulate);

    /**
     * dWeight {@code +=} {@code alpha · dOutᵀ·inp}; dBias {@code +=} {@code alpha · Σ_rows dOut}. Called only for
     * trainable parameters: frozen weights never get here.
     *
     * @param dWeight (N, K) F32, or null
     * @param dBias   (N) F32, or null
     * @param dOut    (M, N) ACT
     * @param inp     (M, K) ACT
     */
    void linearBackwardWeight(Tensor dWeight, Tensor dBias, Tensor dOut, Tensor inp, float alpha);

    /**
     * The backward of a LoRA layer without dropout, {@code y = x·Wᵀ (+ b) + s·(x·Aᵀ)·Bᵀ}, in one op: the adapter's
     * parameter gradients {@code dB += s·dYᵀ·xa}, {@code dXa = s·dY·B}, {@code dA += dXaᵀ·x} and the input gradient
     * {@code dInp (+)= dY·W}, then {@code dInp += dXa·A}. The parameter products do not touch dInp, so a device
     * backend may run them beside the frozen product.
     *
     * @param dInp   (M, K) ACT, overwritten (or accumulated into with {@code accumulate})
     * @param dOut   (M, N) ACT
     * @param weight (N, K) the frozen weight
     * @param dA     (R, K) F32, accumulated
     * @param dB     (N, R) F32, accumulated
     * @param dXa    (M, R) ACT scratch, overwritten with s·dY·B
     * @param inp    (M, K) ACT: the forward's input x
     * @param xa     (M, R) ACT: the forward's x·Aᵀ
     * @param a      (R, K) F32
     * @param b      (N, R) F32
     */
    default void loraLinearBackward(Tensor dInp, Tensor dOut, Tensor weight, boolean accumulate, Tensor dA,
                                    Tensor dB, Tensor dXa, Tensor inp, Tensor xa, Tensor a, Tensor b, float scale) {
        linearBackwardWeight(dB, null, dOut, xa, scale);      // dB += s·dYᵀ·xa
        linearBackwardInput(dXa, dOut, b, scale, false);      // dXa = s·dY·B
        linearBackwardWeight(dA, null, dXa, inp, 1f);         // dA += dXaᵀ·x
        linearBackwardInput(dInp, dOut, weight, 1f, accumulate); // dInp (+)= dY·W
        linearBackwardInput(dInp, dXa, a, 1f, true);           // dInp += dXa·A
    }
}
