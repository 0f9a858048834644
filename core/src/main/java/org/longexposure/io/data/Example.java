package org.longexposure.io.data;

/**
 * One encoded training sample: token ids and, aligned with them, labels ({@link Batch#IGNORE} where no loss is
 * taken). Before batching; not yet truncated or padded.
 *
 * @param line   1-based line number in the source file (for messages)
 * @param ids    token ids
 * @param labels labels aligned with ids
 */
public record Example(int line, int[] ids, int[] labels) {
    public Example {
        if (ids.length != labels.length) {
            throw new IllegalArgumentException("ids and labels differ in length");
        }
    }
}
