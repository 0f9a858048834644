package org.longexposure.io.data;

/**
 * One micro-batch of token sequences, in Hugging Face's conventions: {@code inputIds} (B, T), an
 * {@code attentionMask} (B, T) with 1 for real tokens and 0 for padding, and {@code labels} (B, T) with
 * {@link #IGNORE} where no loss is taken. As in {@code transformers}' causal-LM loss, labels are shifted inside the
 * model: the logits at position t predict {@code labels[t+1]}.
 *
 * @param batchSize     B
 * @param seqLen        T
 * @param inputIds      (B, T) token ids, row-major
 * @param attentionMask (B, T) 1 = token, 0 = padding
 * @param labels        (B, T) target ids, or {@link #IGNORE}
 */
public record Batch(int batchSize, int seqLen, int[] inputIds, int[] attentionMask, int[] labels) {
    /** The label value that excludes a position from the loss (PyTorch's {@code ignore_index}). */
    public static final int IGNORE = -100;

    public Batch {
        int n = Math.multiplyExact(batchSize, seqLen);
        if (inputIds.length != n || attentionMask.length != n || labels.length != n) {
            throw new IllegalArgumentException("batch arrays must have B·T = " + n + " elements, got ids "
                    + inputIds.length + ", mask " + attentionMask.length + ", labels " + labels.length);
        }
    }

    /** Number of positions that contribute to the loss after the shift (label at t+1 not ignored). */
    public int predictedTokens() {
        int count = 0;
        for (int b = 0; b < batchSize; b++) {
            for (int t = 1; t < seqLen; t++) {
                if (labels[b * seqLen + t] != IGNORE) {
                    count++;
                }
            }
        }
        return count;
    }
}
