package org.longexposure.io.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Byte-level BPE: turns one pre-tokenized word into vocabulary ids by applying merges in rank order.
 *
 * <p>Reference: HF tokenizers {@code models::bpe} ({@code BPE::merge_word}, {@code Word::merge_all}) and GPT-2's
 * {@code encoder.py} {@code bpe()}. The word's UTF-8 bytes start as one symbol each (the byte-alphabet char's id).
 * Repeatedly the adjacent pair with the lowest merge rank, leftmost on ties, is replaced by the merged token. Symbols
 * are a doubly linked list over the byte positions and candidate pairs sit in a binary min-heap keyed by
 * {@code rank << 32 | position}, so a word of n bytes costs O(n log n), not the O(n²) of rescanning all pairs after
 * every merge. Heap entries made stale by a neighbouring merge are dropped when popped.
 *
 * <p>Memory: per word, five int/long arrays of O(n). Results are cached per word string in a bounded map owned by
 * this instance (first-in first-out eviction); the cache is guarded by its own lock, so one model may serve several
 * threads.
 */
final class BpeModel {
    /** Words kept in the cache; beyond it the oldest entry goes. About 1-2 MB when full of ordinary words. */
    static final int CACHE_CAPACITY = 50_000;
    /** Longer words (e.g. a page of dashes) are not cached: they are rare and would pin memory. */
    private static final int MAX_CACHED_WORD_CHARS = 256;

    private final Map<String, Integer> vocab;   // model vocabulary: byte-alphabet string → id
    private final int[] byteIds;                // byte value → id of its single-char token
    private final PairRanks ranks;              // (left id, right id) → merge rank
    private final int[] mergedIds;              // merge rank → id of the merged token
    private final boolean ignoreMerges;         // HF "ignore_merges": a word that is itself a token is taken whole
    private final Map<String, int[]> cache;

    BpeModel(Map<String, Integer> vocab, int[] byteIds, PairRanks ranks, int[] mergedIds, boolean ignoreMerges) {
        this.vocab = vocab;
        this.byteIds = byteIds;
        this.ranks = ranks;
        this.mergedIds = mergedIds;
        this.ignoreMerges = ignoreMerges;
        this.cache = new LinkedHashMap<>(1024, 0.75f, false) {
            private static final long serialVersionUID = 1L;

            @Override
            protected boolean removeEldestEntry(Map.Entry<String, int[]> eldest) {
                return size() > CACHE_CAPACITY;
            }
        };
    }

    /** Appends the ids of {@code word} (a piece of raw text, before the byte mapping) to {@code out}. */
    void encodeWord(String word, IntList out) {
        boolean cacheable = word.length() <= MAX_CACHED_WORD_CHARS;
        if (cacheable) {
            int[] hit;
            synchronized (cache) {
                hit = cache.get(word);
            }
            if (hit != null) {
                out.addAll(hit);
                return;
            }
        }
        int[] ids = bpe(word.getBytes(StandardCharsets.UTF_8));
        if (cacheable) {
            synchronized (cache) {
                cache.put(word, ids);
            }
        }
        out.addAll(ids);
    }

    private int[] bpe(byte[] bytes) {
        int n = bytes.length;
        if (n == 0) {
            return new int[0];
        }
        if (ignoreMerges) {
            Integer whole = vocab.get(ByteLevel.toByteChars(bytes));
            if (whole != null) {
                return new int[] {whole};
            }
        }
        int[] sym = new int[n];   // token id at each live position, -1 once merged into its left neighbour
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            sym[i] = byteIds[bytes[i] & 0xFF];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        // Each merge removes one symbol and pushes at most two pairs: at most (n-1) + 2(n-1) entries.
        long[] heap = new long[Math.max(1, 3 * n)];
        int heapSize = 0;
        for (int i = 0; i + 1 < n; i++) {
            int r = ranks.get(sym[i], sym[i + 1]);
            if (r >= 0) {
                heap[heapSize++] = ((long) r << 32) | i;
            }
        }
        for (int i = heapSize / 2 - 1; i >= 0; i--) {
            siftDown(heap, heapSize, i);
        }
        int live = n;
        while (heapSize > 0) {
            long top = heap[0];
            heap[0] = heap[--heapSize];
            siftDown(heap, heapSize, 0);
            int r = (int) (top >>> 32);
            int pos = (int) top;
            int right = next[pos];
            if (sym[pos] < 0 || right < 0 || ranks.get(sym[pos], sym[right]) != r) {
                continue;  // stale: a neighbour changed since this pair was pushed
            }
            sym[pos] = mergedIds[r];
            sym[right] = -1;
            int after = next[right];
            next[pos] = after;
            if (after >= 0) {
                prev[after] = pos;
            }
            live--;
            int before = prev[pos];
            if (before >= 0) {
                int rl = ranks.get(sym[before], sym[pos]);
                if (rl >= 0) {
                    heapSize = push(heap, heapSize, ((long) rl << 32) | before);
                }
            }
            if (after >= 0) {
                int rr = ranks.get(sym[pos], sym[after]);
                if (rr >= 0) {
                    heapSize = push(heap, heapSize, ((long) rr << 32) | pos);
                }
            }
        }
        int[] ids = new int[live];
        int k = 0;
        for (int i = 0; i >= 0; i = next[i]) {
            ids[k++] = sym[i];
        }
        return ids;
    }

    private static int push(long[] heap, int size, long v) {
        int i = size;
        heap[i] = v;
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (heap[parent] <= v) {
                break;
            }
            heap[i] = heap[parent];
            heap[parent] = v;
            i = parent;
        }
        return size + 1;
    }

    private static void siftDown(long[] heap, int size, int i) {
        long v = heap[i];
        while (true) {
            int c = 2 * i + 1;
            if (c >= size) {
                break;
            }
            if (c + 1 < size && heap[c + 1] < heap[c]) {
                c++;
            }
            if (heap[c] >= v) {
                break;
            }
            heap[i] = heap[c];
            i = c;
        }
        heap[i] = v;
    }
}
