/**
 * The backend seam: one interface per op family, each op an explicit forward/backward pair on explicit output
 * buffers (rule C1). Argument order: outputs first, then saved-for-backward, then inputs, then weights. The first
 * Javadoc line of every backward says, per output, whether it overwrites ({@code =}) or accumulates ({@code +=}).
 * Parameter gradients accumulate; activation gradients overwrite unless stated.
 *
 * <p>Dtypes: ACT in the op Javadocs stands for the backend's activation dtype, {@link Backend#activationDType()}
 * (CPU: F32; CUDA: BF16): activations, activation gradients, logits, q/k/v. Saved statistics (LayerNorm mean/rstd,
 * log-sum-exps, losses, loss weights), norms' parameters, biases, trainable parameters, their gradients and
 * optimizer moments are F32. Frozen weight matrices and embedding tables may be F32, F16 or BF16 on the CPU (read
 * in place, converted on the fly; a device backend converts them once in {@link Backend#adoptWeight}). Token ids,
 * positions and masks are I32.
 */
package org.longexposure.backend;
