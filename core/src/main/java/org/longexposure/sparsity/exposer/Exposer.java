package org.longexposure.sparsity.exposer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.LayerActivations;
import org.longexposure.model.ModelConfig;

/**
 * The Exposer's profiling pass (design note sections 2, 4 and 13, "a profiling tool that reproduces section 2"):
 * runs the dense model (no dropout) on real micro-batches and measures, per layer, the sparsity the union over a
 * micro-batch leaves. Only real tokens (attention mask 1) count anywhere: padded queries, keys and FFN rows are
 * skipped.
 *
 * <p>MLP, from the saved post-activation FFN hidden state h (N, H):
 * <ul>
 *   <li>per-token sparsity: the mean over real tokens of (#{n : h[t, n] = 0} / H);</li>
 *   <li>union ("shadowy") sparsity of a micro-batch: #{n : h[t, n] = 0 for every real t} / H;</li>
 *   <li>block sparsity of a micro-batch, with BN-neuron blocks (the last one partial when BN does not divide H) and
 *       the union activity {@code u[n] = Σ_t |h[t, n]|} over real tokens (the artifact's tracer sums over tokens):
 *       "exact": the fraction of blocks with u = 0 for every neuron; "near zero": the fraction of blocks whose every
 *       neuron has {@code u[n] < nearZero · max_n u[n]} (the layer max, nearZero = 0.05 by default).</li>
 * </ul>
 * Attention, per head, from the saved q, k (B, T, C) and row log-sum-exp (B, NH, T): the probabilities
 * {@code P_ij = exp(scale·q_i·k_j − lse_i)} are recomputed (float64, {@link TileMass}) for real queries i and real keys j ≤ i and
 * summed into {@code BA × BA} token tiles (qb = i / BA, kb = j / BA; only causal tiles kb ≤ qb), over the
 * micro-batch's sequences. Per query-block row the masses are normalised to sum to 1. The tile density of a
 * micro-batch is, over the rows that hold a real query, (Σ_rows the fewest tiles whose largest masses cover
 * ≥ {@code coverage} of the row) / (Σ_rows the row's causal tiles qb + 1); the reported density is its mean over
 * micro-batches. The reported tile map sums the raw masses of all micro-batches (tile positions are absolute token
 * positions, so micro-batches of different T line up) before normalising each row.
 *
 * <p>Memory: one ForwardState for the largest (B, T) among the micro-batches; host copies (as float, read through
 * the backend) of one layer's q, k, lse and h at a time.
 */
public final class Exposer {
    private Exposer() {
    }

    /**
     * The profiling constants.
     *
     * @param neuronBlock BN, neurons per MLP block (128 in the artifact)
     * @param attnBlock   BA, tokens per attention tile side
     * @param nearZero    relative threshold of the "near zero" block rule, in [0, 1) (0.05 in the artifact)
     * @param coverage    fraction of a query-block row's mass the kept tiles must cover, in (0, 1]
     */
    public record Config(int neuronBlock, int attnBlock, double nearZero, double coverage) {
        public Config {
            if (neuronBlock < 1 || attnBlock < 1) {
                throw new IllegalArgumentException("exposer: neuron block and attention block must be >= 1, got "
                        + neuronBlock + " and " + attnBlock);
            }
            if (!(nearZero >= 0 && nearZero < 1)) {
                throw new IllegalArgumentException("exposer: near-zero threshold must be in [0, 1), got " + nearZero);
            }
            if (!(coverage > 0 && coverage <= 1)) {
                throw new IllegalArgumentException("exposer: coverage must be in (0, 1], got " + coverage);
            }
        }

        /** BN = 128, BA = 64, near zero below 5 % of the layer max, 95 % coverage. */
        public static Config defaults() {
            return new Config(128, 64, 0.05, 0.95);
        }
    }

    /**
     * Profiles {@code lm} (whose tensors live on {@code be}) on the micro-batches (at least one, each with at least
     * one real token).
     */
    public static Exposure expose(Backend be, CausalLm lm, List<Batch> batches, Config cfg) {
        if (batches.isEmpty()) {
            throw new IllegalArgumentException("exposer: no micro-batch to profile");
        }
        ModelConfig mc = lm.config();
        int maxB = 0;
        int maxT = 0;
        int maxQB = 0;
        long realTokens = 0;
        for (Batch b : batches) {
            maxB = Math.max(maxB, b.batchSize());
            maxT = Math.max(maxT, b.seqLen());
            maxQB = Math.max(maxQB, ceilDiv(b.seqLen(), cfg.attnBlock()));
            long real = Arrays.stream(b.attentionMask()).filter(m -> m != 0).count();
            if (real == 0) {
                throw new IllegalArgumentException("exposer: a micro-batch has no real token (attention mask all 0)");
            }
            realTokens += real;
        }
        int layers = mc.numLayers();
        int nh = mc.numHeads();
        int nMb = batches.size();
        double[] zeroCount = new double[layers];
        double[][] union = new double[layers][nMb];
        double[][] blockExact = new double[layers][nMb];
        double[][] blockNear = new double[layers][nMb];
        double[][][][] mass = new double[layers][nh][maxQB][maxQB];
        double[][][] density = new double[layers][nh][nMb];
        ForwardState state = lm.allocate(maxB, maxT);
        TileMass.OnBackend truth = new TileMass.OnBackend(be);
        for (int m = 0; m < nMb; m++) {
            Batch batch = batches.get(m);
            lm.forward(state, batch, false);
            for (int l = 0; l < layers; l++) {
                LayerActivations a = state.layer(l);
                mlp(Tensors.toFloats(be, a.ffnHidden()), batch, mc.ffnDim(), cfg, l, m, zeroCount, union,
                        blockExact, blockNear);
                attention(truth.perSequence(a.q(), a.k(), a.lse(), batch.attentionMask(), batch.batchSize(),
                        batch.seqLen(), nh, cfg.attnBlock()), batch, nh, cfg, mass[l], density[l], m);
            }
        }
        List<Exposure.Layer> out = new ArrayList<>(layers);
        for (int l = 0; l < layers; l++) {
            List<Exposure.Head> heads = new ArrayList<>(nh);
            for (int h = 0; h < nh; h++) {
                double[][] map = mass[l][h];
                for (double[] row : map) {
                    double s = 0;
                    for (double v : row) {
                        s += v;
                    }
                    if (s > 0) {
                        for (int kb = 0; kb < row.length; kb++) {
                            row[kb] /= s;
                        }
                    }
                }
                heads.add(new Exposure.Head(h, mean(density[l][h]), map));
            }
            out.add(new Exposure.Layer(l, zeroCount[l] / ((double) realTokens * mc.ffnDim()), union[l],
                    blockExact[l], blockNear[l], heads));
        }
        return new Exposure(cfg, nMb, realTokens, out);
    }

    /** The MLP measures of layer l on micro-batch m from its hidden state h (B·T, H). */
    private static void mlp(float[] h, Batch batch, int hDim, Config cfg, int l, int m, double[] zeroCount,
                            double[][] union, double[][] blockExact, double[][] blockNear) {
        int[] mask = batch.attentionMask();
        double[] u = new double[hDim];
        long zeros = 0;
        for (int row = 0; row < mask.length; row++) {
            if (mask[row] == 0) {
                continue;
            }
            int base = row * hDim;
            for (int n = 0; n < hDim; n++) {
                float v = h[base + n];
                if (v == 0f) {
                    zeros++;
                } else {
                    u[n] += Math.abs(v);
                }
            }
        }
        zeroCount[l] += zeros;
        double max = 0;
        int unionZeros = 0;
        for (double v : u) {
            max = Math.max(max, v);
            if (v == 0) {
                unionZeros++;
            }
        }
        union[l][m] = (double) unionZeros / hDim;
        int nb = ceilDiv(hDim, cfg.neuronBlock());
        int exact = 0;
        int near = 0;
        double cut = cfg.nearZero() * max;
        for (int blk = 0; blk < nb; blk++) {
            boolean allZero = true;
            boolean allNear = true;
            for (int n = blk * cfg.neuronBlock(); n < Math.min(hDim, (blk + 1) * cfg.neuronBlock()); n++) {
                allZero &= u[n] == 0;
                allNear &= u[n] < cut || u[n] == 0;
            }
            exact += allZero ? 1 : 0;
            near += allNear ? 1 : 0;
        }
        blockExact[l][m] = (double) exact / nb;
        blockNear[l][m] = (double) near / nb;
    }

    /**
     * Adds micro-batch m's raw tile masses of every head ({@code perSequence} [B][NH][nQB][nQB], from
     * {@link TileMass}) to {@code mass[h]} (maxQB, maxQB) and stores its tile density in {@code density[h][m]}.
     */
    private static void attention(double[][][][] perSequence, Batch batch, int nh, Config cfg, double[][][] mass,
                                  double[][] density, int m) {
        int bsz = batch.batchSize();
        int t = batch.seqLen();
        int ba = cfg.attnBlock();
        int nQB = ceilDiv(t, ba);
        double[][] tiles = new double[nQB][nQB];
        for (int h = 0; h < nh; h++) {
            for (double[] row : tiles) {
                Arrays.fill(row, 0);
            }
            for (int b = 0; b < bsz; b++) {
                for (int qb = 0; qb < nQB; qb++) {
                    for (int kb = 0; kb <= qb; kb++) {
                        tiles[qb][kb] += perSequence[b][h][qb][kb];
                    }
                }
            }
            int kept = 0;
            int causal = 0;
            double[] sorted = new double[nQB];
            for (int qb = 0; qb < nQB; qb++) {
                double total = 0;
                for (int kb = 0; kb <= qb; kb++) {
                    total += tiles[qb][kb];
                    mass[h][qb][kb] += tiles[qb][kb];
                }
                if (total <= 0) {
                    continue;   // no real query in this block row
                }
                causal += qb + 1;
                System.arraycopy(tiles[qb], 0, sorted, 0, qb + 1);
                Arrays.sort(sorted, 0, qb + 1);
                double covered = 0;
                for (int r = qb; r >= 0 && covered < cfg.coverage() * total; r--) {
                    covered += sorted[r];
                    kept++;
                }
            }
            density[h][m] = causal == 0 ? 0 : (double) kept / causal;
        }
    }

    private static double mean(double[] x) {
        double s = 0;
        for (double v : x) {
            s += v;
        }
        return s / x.length;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }
}
