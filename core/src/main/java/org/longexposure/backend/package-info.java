/**
 * The backend seam: one interface per op family, each op an explicit forward/backward pair on explicit output
 * buffers (rule C1). Argument order: outputs first, then saved-for-backward, then inputs, then weights. The first
 * Javadoc line of every backward says, per output, whether it overwrites ({@code =}) or accumulates ({@code +=}).
 * Parameter gradients accumulate; activation gradients overwrite unless stated.
 *
 * <p>Dtypes: activations, gradients, norms' parameters and biases are F32; frozen weight matrices and embedding
 * tables may be F32, F16 or BF16 (read in place, converted on the fly); token ids and masks are I32.
 */
package org.longexposure.backend;
