package org.longexposure.sparsity.permute;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;

/**
 * Neuron orders that pack co-activated FFN neurons into the same neuron blocks, and the union density they give.
 *
 * <p>What is measured (design note 4.4 and 13, "union over the micro-batch"): the sparse MLP computes, for each
 * token block R (TB consecutive rows of the flattened B·T micro-batch) the neuron blocks (BN consecutive neurons)
 * that hold at least one neuron active (h > 0) on at least one real row of R. The lossless union density is
 * <pre>
 * density = Σ_R real(R) · Σ_j width(j)·[∃ n in block j, t in R real : h[t, n] > 0]  /  (Σ_R real(R) · H)
 * </pre>
 * the fraction of (real row, neuron) pairs a perfect predictor still computes (the MLP oracle density of
 * {@code PredictorFit}). Which neurons share a block is decided by the stored neuron order, which training leaves
 * arbitrary; an {@link org.longexposure.model.MlpPermutation} may choose another order without changing the
 * function, so the density is evaluated for a candidate order {@code π} from the per-token-block activity alone:
 * neuron n is active on R (a bit u_n[R]) or not, whatever the order.
 *
 * <p>Orders ({@link #greedy}, {@link #byFrequency}), fitted on the activity bits of profiling micro-batches:
 * <ul>
 *   <li>frequency: neurons sorted by how many token blocks they are active on, rarest first (the never-active
 *       ones together at the front, the always-active ones together at the end);</li>
 *   <li>greedy co-activation clustering: blocks are filled one after the other; a block starts with the unassigned
 *       neuron active on the fewest token blocks and then takes, BN − 1 times, the unassigned neuron that adds the
 *       fewest token blocks to the block's union |∪ u_n| (ties: the rarer neuron), so that neurons firing on the
 *       same token blocks end up together.</li>
 * </ul>
 * Cost: greedy is O(H² · nR / 64) word operations per layer for nR profiling token blocks (bitsets).
 */
public final class CoactivationOrder {
    private CoactivationOrder() {
    }

    /**
     * Per layer, which neurons are active on each token block of some micro-batches (token blocks without a real
     * row are left out). Bits are stored per neuron: {@code bits[l][n]} is a bitset over the token blocks.
     *
     * @param tokenBlock TB
     * @param realRows   (nR) real rows of each token block
     * @param bits       [L][H][ceil(nR / 64)]
     */
    public record Activity(int ffn, int tokenBlock, int[] realRows, long[][][] bits) {
        public int blocks() {
            return realRows.length;
        }

        public int numLayers() {
            return bits.length;
        }

        /** How many token blocks neuron n of layer l is active on. */
        int count(int layer, int n) {
            int c = 0;
            for (long w : bits[layer][n]) {
                c += Long.bitCount(w);
            }
            return c;
        }

        boolean active(int layer, int n, int r) {
            return (bits[layer][n][r >>> 6] & (1L << r)) != 0;
        }
    }

    /**
     * Dense, dropout-free forwards of {@code batches} on {@code state} (a state of {@code lm} large enough for them)
     * and each layer's per-token-block activity, once per token block size in {@code tokenBlocks}. Also adds, per
     * layer, the count of (real row, neuron) pairs with h > 0 into {@code tokenActive[l]} (when not null) and the
     * real rows into {@code tokenActive[L]}: the per-token density is their ratio over H.
     */
    public static Map<Integer, Activity> profile(Backend be, CausalLm lm, ForwardState state, List<Batch> batches,
                                                 int[] tokenBlocks, long[] tokenActive) {
        ModelConfig mc = lm.config();
        if (mc.activation() != Activation.RELU) {
            throw new IllegalArgumentException("neuron co-activation needs a ReLU MLP (exact zeros), the model"
                    + " uses " + mc.activation());
        }
        int layers = mc.numLayers();
        int ffn = mc.ffnDim();
        lm.sparsity(SparsityPlan.DENSE);
        Map<Integer, List<boolean[]>[]> perTb = new LinkedHashMap<>();
        Map<Integer, List<Integer>> real = new LinkedHashMap<>();
        for (int tb : tokenBlocks) {
            if (tb < 1) {
                throw new IllegalArgumentException("token block must be >= 1, got " + tb);
            }
            @SuppressWarnings("unchecked")
            List<boolean[]>[] lists = new List[layers];
            for (int l = 0; l < layers; l++) {
                lists[l] = new ArrayList<>();
            }
            perTb.put(tb, lists);
            real.put(tb, new ArrayList<>());
        }
        for (Batch b : batches) {
            lm.forward(state, b, false);
            int[] mask = b.attentionMask();
            int rows = mask.length;
            for (int tb : tokenBlocks) {
                for (int r = 0; r * tb < rows; r++) {
                    int n = 0;
                    for (int t = r * tb; t < Math.min(rows, (r + 1) * tb); t++) {
                        n += mask[t] != 0 ? 1 : 0;
                    }
                    if (n > 0) {
                        real.get(tb).add(n);
                    }
                }
            }
            for (int l = 0; l < layers; l++) {
                float[] h = Tensors.toFloats(be, state.layer(l).ffnHidden());
                if (tokenActive != null) {
                    long act = 0;
                    for (int t = 0; t < rows; t++) {
                        if (mask[t] == 0) {
                            continue;
                        }
                        for (int j = 0; j < ffn; j++) {
                            act += h[t * ffn + j] > 0 ? 1 : 0;
                        }
                    }
                    tokenActive[l] += act;
                }
                for (int tb : tokenBlocks) {
                    for (int r = 0; r * tb < rows; r++) {
                        boolean[] u = new boolean[ffn];
                        boolean any = false;
                        for (int t = r * tb; t < Math.min(rows, (r + 1) * tb); t++) {
                            if (mask[t] == 0) {
                                continue;
                            }
                            any = true;
                            for (int j = 0; j < ffn; j++) {
                                u[j] |= h[t * ffn + j] > 0;
                            }
                        }
                        if (any) {
                            perTb.get(tb)[l].add(u);
                        }
                    }
                }
            }
            if (tokenActive != null) {
                for (int m : mask) {
                    tokenActive[layers] += m != 0 ? 1 : 0;
                }
            }
        }
        Map<Integer, Activity> out = new LinkedHashMap<>();
        for (int tb : tokenBlocks) {
            int[] rr = real.get(tb).stream().mapToInt(Integer::intValue).toArray();
            int words = (rr.length + 63) >>> 6;
            long[][][] bits = new long[layers][ffn][words];
            for (int l = 0; l < layers; l++) {
                List<boolean[]> us = perTb.get(tb)[l];
                for (int r = 0; r < us.size(); r++) {
                    boolean[] u = us.get(r);
                    for (int n = 0; n < ffn; n++) {
                        if (u[n]) {
                            bits[l][n][r >>> 6] |= 1L << r;
                        }
                    }
                }
            }
            out.put(tb, new Activity(ffn, tb, rr, bits));
        }
        return out;
    }

    /** The lossless union density of layer l under the neuron order {@code order} with blocks of BN neurons. */
    public static double unionDensity(Activity a, int layer, int[] order, int neuronBlock) {
        int ffn = a.ffn();
        double computed = 0;
        double all = 0;
        for (int r = 0; r < a.blocks(); r++) {
            int kept = 0;
            for (int start = 0; start < ffn; start += neuronBlock) {
                int end = Math.min(ffn, start + neuronBlock);
                for (int i = start; i < end; i++) {
                    if (a.active(layer, order[i], r)) {
                        kept += end - start;
                        break;
                    }
                }
            }
            computed += (double) a.realRows()[r] * kept;
            all += (double) a.realRows()[r] * ffn;
        }
        return all == 0 ? 0 : computed / all;
    }

    /** The stored order 0, 1, …, H − 1. */
    public static int[] identity(int ffn) {
        int[] o = new int[ffn];
        for (int i = 0; i < ffn; i++) {
            o[i] = i;
        }
        return o;
    }

    /** Neurons of layer l sorted by the number of token blocks they are active on, rarest first (stable). */
    public static int[] byFrequency(Activity a, int layer) {
        int ffn = a.ffn();
        Integer[] idx = new Integer[ffn];
        int[] cnt = new int[ffn];
        for (int n = 0; n < ffn; n++) {
            idx[n] = n;
            cnt[n] = a.count(layer, n);
        }
        Arrays.sort(idx, (x, y) -> cnt[x] != cnt[y] ? Integer.compare(cnt[x], cnt[y]) : Integer.compare(x, y));
        return Arrays.stream(idx).mapToInt(Integer::intValue).toArray();
    }

    /** The greedy co-activation clustering of layer l into blocks of BN neurons (see the class comment). */
    public static int[] greedy(Activity a, int layer, int neuronBlock) {
        int ffn = a.ffn();
        long[][] bits = a.bits()[layer];
        int words = bits.length == 0 ? 0 : bits[0].length;
        int[] cnt = new int[ffn];
        for (int n = 0; n < ffn; n++) {
            cnt[n] = a.count(layer, n);
        }
        boolean[] used = new boolean[ffn];
        int[] order = new int[ffn];
        int pos = 0;
        long[] union = new long[words];
        while (pos < ffn) {
            int seed = -1;
            for (int n = 0; n < ffn; n++) {
                if (!used[n] && (seed < 0 || cnt[n] < cnt[seed])) {
                    seed = n;
                }
            }
            used[seed] = true;
            order[pos++] = seed;
            System.arraycopy(bits[seed], 0, union, 0, words);
            int end = Math.min(ffn, pos - 1 + neuronBlock);
            while (pos < end) {
                int best = -1;
                int bestAdd = Integer.MAX_VALUE;
                for (int n = 0; n < ffn; n++) {
                    if (used[n]) {
                        continue;
                    }
                    long[] b = bits[n];
                    int add = 0;
                    for (int w = 0; w < words && add <= bestAdd; w++) {
                        add += Long.bitCount(b[w] & ~union[w]);
                    }
                    if (add < bestAdd || (add == bestAdd && cnt[n] < cnt[best])) {
                        best = n;
                        bestAdd = add;
                    }
                }
                used[best] = true;
                order[pos++] = best;
                for (int w = 0; w < words; w++) {
                    union[w] |= bits[best][w];
                }
            }
        }
        return order;
    }
}
