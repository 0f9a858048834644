package org.longexposure.io.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Serves batches of {@code batchSize} rows in epochs, reshuffled at each epoch by a permutation that is a pure
 * function of (seed, epoch), so a run can resume from its {@link Cursor} and see exactly the batches it would
 * have seen. The last, smaller batch of an epoch is served too (batches always have B rows: short ones are
 * filled with empty padding rows that carry no loss).
 */
public final class DataLoader {
    /** Where the loader stands: epoch (0-based) and the next row within that epoch's order. */
    public record Cursor(int epoch, int position) {
    }

    private final List<Example> rows;
    private final int batchSize;
    private final int seqLen;
    private final int padId;
    private final boolean shuffle;
    private final long seed;
    private int epoch;
    private int position;
    private int[] order;

    public DataLoader(List<Example> rows, int batchSize, int seqLen, int padId, boolean shuffle, long seed) {
        if (rows.isEmpty()) {
            throw new IllegalArgumentException("no rows to load");
        }
        this.rows = List.copyOf(rows);
        this.batchSize = batchSize;
        this.seqLen = seqLen;
        this.padId = padId;
        this.shuffle = shuffle;
        this.seed = seed;
        this.order = permutation(0);
    }

    public int batchesPerEpoch() {
        return (rows.size() + batchSize - 1) / batchSize;
    }

    public Cursor cursor() {
        return new Cursor(epoch, position);
    }

    /** Moves to a saved cursor. */
    public void seek(Cursor c) {
        if (c.position() < 0 || c.position() > rows.size()) {
            throw new IllegalArgumentException("cursor position " + c.position() + " outside [0, " + rows.size() + "]");
        }
        epoch = c.epoch();
        position = c.position();
        order = permutation(epoch);
    }

    /** The next batch (rolling over to a new, reshuffled epoch when one ends). */
    public Batch next() {
        if (position >= rows.size()) {
            epoch++;
            position = 0;
            order = permutation(epoch);
        }
        List<Example> pick = new ArrayList<>(batchSize);
        int end = Math.min(rows.size(), position + batchSize);
        for (int i = position; i < end; i++) {
            pick.add(rows.get(order[i]));
        }
        position = end;
        return Batcher.batch(pick, batchSize, seqLen, padId);
    }

    private int[] permutation(int ep) {
        int n = rows.size();
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        if (shuffle) {
            SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + ep);
            for (int i = n - 1; i > 0; i--) {
                int j = rng.nextInt(i + 1);
                int t = p[i];
                p[i] = p[j];
                p[j] = t;
            }
        }
        return p;
    }
}
