package org.longexposure.io.data;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Turns encoded examples into (B, T) batches: truncation to the maximum T (counted), right padding with the pad
 * id (attention mask 0, label ignored) up to the batch's longest row, or packing of consecutive samples into full rows (samples are
 * concatenated; attention may then cross sample boundaries, as in the common "group texts" recipe).
 */
public final class Batcher {
    /** Batches are padded to a multiple of this many tokens. */
    public static final int PAD_MULTIPLE = 8;

    private Batcher() {
    }

    /** Rows of length {@code seqLen} made from examples, and how many examples were truncated. */
    public record Rows(List<Example> rows, int truncated) {
    }

    /** One row per example, cut to {@code seqLen} tokens. */
    public static Rows truncate(List<Example> examples, int seqLen) {
        List<Example> rows = new ArrayList<>(examples.size());
        int truncated = 0;
        for (Example e : examples) {
            if (e.ids().length > seqLen) {
                truncated++;
                rows.add(new Example(e.line(), Arrays.copyOf(e.ids(), seqLen), Arrays.copyOf(e.labels(), seqLen)));
            } else {
                rows.add(e);
            }
        }
        return new Rows(rows, truncated);
    }

    /**
     * Packs examples, in order, into rows of exactly {@code seqLen} tokens (a sample that does not fit continues
     * in the next row; the tail shorter than a row is kept as a padded row).
     */
    public static Rows pack(List<Example> examples, int seqLen) {
        List<Example> rows = new ArrayList<>();
        int[] ids = new int[seqLen];
        int[] labels = new int[seqLen];
        int fill = 0;
        int firstLine = -1;
        for (Example e : examples) {
            if (firstLine < 0) {
                firstLine = e.line();
            }
            for (int i = 0; i < e.ids().length; i++) {
                ids[fill] = e.ids()[i];
                labels[fill] = e.labels()[i];
                if (++fill == seqLen) {
                    rows.add(new Example(firstLine, ids.clone(), labels.clone()));
                    fill = 0;
                    firstLine = e.line();
                }
            }
        }
        if (fill > 0) {
            rows.add(new Example(firstLine, Arrays.copyOf(ids, fill), Arrays.copyOf(labels, fill)));
        }
        return new Rows(rows, 0);
    }

    /** Like {@link #batch(List, int, int)}, with empty rows (no tokens, no loss) added up to {@code batchSize}. */
    public static Batch batch(List<Example> rows, int batchSize, int maxSeqLen, int padId) {
        List<Example> all = new ArrayList<>(rows);
        while (all.size() < batchSize) {
            all.add(new Example(0, new int[0], new int[0]));
        }
        return batch(all, maxSeqLen, padId);
    }

    /**
     * A (B, T) batch of the given rows (each ≤ {@code maxSeqLen} tokens), right-padded with {@code padId} to the
     * longest row rounded up to a multiple of {@link #PAD_MULTIPLE} (at most {@code maxSeqLen}): padding to the
     * batch's own longest row, as Hugging Face's padding collators do, spends no work on columns no row uses.
     */
    public static Batch batch(List<Example> rows, int maxSeqLen, int padId) {
        int longest = 1;
        for (Example e : rows) {
            longest = Math.max(longest, e.ids().length);
        }
        int seqLen = Math.min(maxSeqLen, (longest + PAD_MULTIPLE - 1) / PAD_MULTIPLE * PAD_MULTIPLE);
        int b = rows.size();
        int[] ids = new int[b * seqLen];
        int[] mask = new int[b * seqLen];
        int[] labels = new int[b * seqLen];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Batch.IGNORE);
        for (int r = 0; r < b; r++) {
            Example e = rows.get(r);
            int len = Math.min(seqLen, e.ids().length);
            System.arraycopy(e.ids(), 0, ids, r * seqLen, len);
            System.arraycopy(e.labels(), 0, labels, r * seqLen, len);
            Arrays.fill(mask, r * seqLen, r * seqLen + len, 1);
        }
        return new Batch(b, seqLen, ids, mask, labels);
    }
}
