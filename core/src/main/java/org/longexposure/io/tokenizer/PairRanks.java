package org.longexposure.io.tokenizer;

import java.util.Arrays;

/**
 * Open-addressing hash map from a BPE merge's (left id, right id) pair to its rank (its 0-based line in the
 * merges list; lower merges first). Keys are packed into one long so that the merge loop does no boxing.
 * Memory: two arrays of a power-of-two capacity at most 4× the number of merges (≈ 1.5 MB for GPT-2's 50,000).
 */
final class PairRanks {
    private static final long EMPTY = -1L;  // never a key: both ids are non-negative

    private final long[] keys;
    private final int[] ranks;
    private final int mask;

    PairRanks(int expected) {
        int cap = Integer.highestOneBit(Math.max(4, expected) * 2 - 1) << 1;
        keys = new long[cap];
        ranks = new int[cap];
        mask = cap - 1;
        Arrays.fill(keys, EMPTY);
    }

    /** Sets the rank of (left, right); a later duplicate merge replaces an earlier one, as in HF tokenizers. */
    void put(int left, int right, int rank) {
        long key = pack(left, right);
        int i = slot(key);
        while (keys[i] != EMPTY && keys[i] != key) {
            i = (i + 1) & mask;
        }
        keys[i] = key;
        ranks[i] = rank;
    }

    /** The rank of (left, right), or -1 if no merge joins them. */
    int get(int left, int right) {
        long key = pack(left, right);
        int i = slot(key);
        while (true) {
            long k = keys[i];
            if (k == key) {
                return ranks[i];
            }
            if (k == EMPTY) {
                return -1;
            }
            i = (i + 1) & mask;
        }
    }

    private static long pack(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    private int slot(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 29)) & mask;
    }
}
