package org.longexposure.sparsity.predict;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.LayerActivations;
import org.longexposure.model.Linear;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;
import org.longexposure.sparsity.exposer.TileMass;

/**
 * Fits {@link Predictors} on dense forwards of training micro-batches and scores them on held-out ones.
 *
 * <p>Fit, three passes over the training micro-batches (each a dense, dropout-free forward; only real tokens count):
 * <ol>
 *   <li>Sufficient statistics per layer, accumulated in float64: for the attention input x, FᵀF, Fᵀq and Fᵀk with
 *       F = [x, 1] (N, C+1); for the MLP input, FᵀF and Fᵀa with a the true per-token block counts. Ridge solves
 *       give the affine maps x → q, x → k (hence the attention predictor by truncated SVD) and the MLP scorer.</li>
 *   <li>The attention temperatures γ_h, by Newton steps against the true tile masses (q, k, lse recomputed).</li>
 *   <li>Calibration: per layer, the smallest coverage on a grid (0.30, 0.31, …, 0.99, then 1 = dense) whose realised
 *       recall over the training micro-batches reaches the target (attention: fraction of the true probability mass
 *       inside the kept tiles; MLP: fraction of the true active (token, neuron) pairs inside the kept blocks).</li>
 * </ol>
 * Memory: the statistics, (C+1)² + 2·(C+1)·C + (C+1)·nb doubles per layer, and per training micro-batch its raw
 * tile scores, true tile masses and MLP block scores and counts (small: O(B·NH·nQB² + nTB·nb)).
 *
 * <p>{@link #evaluate}: on each micro-batch, the dense forward's true masses and counts against the layouts the
 * predictors choose from the same forward's layer inputs, per layer: recall, realised density (attention: kept
 * tiles / causal tiles; MLP: computed (real row, neuron) pairs / all), and the oracle density (attention: the
 * fewest tiles reaching the target mass in every query-block row, diagonal and sink included, knowing the truth,
 * so it can exceed a predictor's density that meets the target only on the total; MLP: the true union of active
 * blocks per token block, the lossless minimum).
 */
public final class PredictorFit {
    private static final double RIDGE = 1e-4;
    /** Coverage grid of the calibration: 0.30, 0.31, …, 0.99; 1 (every tile or block) when none reaches the target. */
    private static final int GRID_FROM = 30;

    private PredictorFit() {
    }

    /**
     * The fitting constants.
     *
     * @param attnBlock   tokens per attention tile side (the kernel block)
     * @param rank        R of the per-head projections
     * @param attnMass    target fraction of the true attention mass kept, in (0, 1]
     * @param neuronBlock BN, neurons per MLP block
     * @param tokenBlock  rows per MLP token block
     * @param mlpRecall   target fraction of true active neurons kept, in (0, 1]
     */
    public record Config(int attnBlock, int rank, double attnMass, int neuronBlock, int tokenBlock,
                         double mlpRecall) {
        public Config {
            if (attnBlock < 1 || rank < 1 || neuronBlock < 1 || tokenBlock < 1) {
                throw new IllegalArgumentException("predictor fit: attention block, rank, neuron block and token"
                        + " block must be >= 1, got " + attnBlock + ", " + rank + ", " + neuronBlock + ", "
                        + tokenBlock);
            }
            if (!(attnMass > 0 && attnMass <= 1) || !(mlpRecall > 0 && mlpRecall <= 1)) {
                throw new IllegalArgumentException("predictor fit: attention mass and MLP recall targets must be in"
                        + " (0, 1], got " + attnMass + " and " + mlpRecall);
            }
        }
    }

    /** One layer's held-out numbers. */
    public record LayerReport(int layer, double attnRecall, double attnDensity, double attnOracleDensity,
                              double attnCoverage, double mlpRecall, double mlpDensity, double mlpOracleDensity,
                              double mlpCoverage) {
    }

    /** Held-out numbers per layer plus the counts they come from; {@link #toJson()} for reports. */
    public record Report(Config config, int microBatches, long realTokens, List<LayerReport> layers) {
        public Report {
            layers = List.copyOf(layers);
        }

        public ObjectNode toJson() {
            ObjectNode root = new ObjectMapper().createObjectNode();
            ObjectNode c = root.putObject("config");
            c.put("attn_block", config.attnBlock());
            c.put("rank", config.rank());
            c.put("attn_mass", config.attnMass());
            c.put("neuron_block", config.neuronBlock());
            c.put("token_block", config.tokenBlock());
            c.put("mlp_recall", config.mlpRecall());
            root.put("micro_batches", microBatches);
            root.put("real_tokens", realTokens);
            ArrayNode ls = root.putArray("layers");
            for (LayerReport l : layers) {
                ObjectNode o = ls.addObject();
                o.put("layer", l.layer());
                o.put("attn_recall", l.attnRecall());
                o.put("attn_density", l.attnDensity());
                o.put("attn_oracle_density", l.attnOracleDensity());
                o.put("attn_coverage", l.attnCoverage());
                if (!Double.isNaN(l.mlpRecall())) {
                    o.put("mlp_recall", l.mlpRecall());
                    o.put("mlp_density", l.mlpDensity());
                    o.put("mlp_oracle_density", l.mlpOracleDensity());
                    o.put("mlp_coverage", l.mlpCoverage());
                }
            }
            return root;
        }
    }

    /** One micro-batch's host copies of one layer's saved activations. */
    /**
     * Host copies of one layer's saved activations: the attention and MLP inputs and the FFN hidden state read at
     * once, q and k only when asked for (the least-squares fallback of a model without readable q/k maps); the true
     * tile masses come from {@link TileMass.OnBackend} without host copies.
     */
    static final class Layer {
        private final Backend be;
        private final LayerActivations src;
        private final float[] attnIn;
        private final float[] mlpIn;
        private final float[] h;

        private Layer(Backend be, LayerActivations src, boolean mlp) {
            this.be = be;
            this.src = src;
            this.attnIn = Tensors.toFloats(be, src.attnIn());
            this.mlpIn = mlp ? Tensors.toFloats(be, src.mlpIn()) : null;
            this.h = mlp ? Tensors.toFloats(be, src.ffnHidden()) : null;
        }

        static Layer read(Backend be, LayerActivations a, boolean mlp) {
            return new Layer(be, a, mlp);
        }

        float[] attnIn() {
            return attnIn;
        }

        float[] mlpIn() {
            return mlpIn;
        }

        float[] h() {
            return h;
        }

        float[] q() {
            return Tensors.toFloats(be, src.q());
        }

        float[] k() {
            return Tensors.toFloats(be, src.k());
        }
    }

    private static ForwardState denseState(CausalLm lm, List<Batch> batches) {
        if (batches.isEmpty()) {
            throw new IllegalArgumentException("predictor fit: no micro-batch");
        }
        lm.sparsity(SparsityPlan.DENSE);
        int maxB = batches.stream().mapToInt(Batch::batchSize).max().orElseThrow();
        int maxT = batches.stream().mapToInt(Batch::seqLen).max().orElseThrow();
        return lm.allocate(maxB, maxT);
    }

    /** Fits predictors for {@code lm} (whose tensors live on {@code be}) on the training micro-batches. */
    public static Predictors fit(Backend be, CausalLm lm, List<Batch> train, Config cfg) {
        return fit(be, lm, denseState(lm, train), train, cfg);
    }

    /**
     * Like {@link #fit(Backend, CausalLm, List, Config)}, running the dense forwards on {@code st}, a state of
     * {@code lm} large enough for the micro-batches (e.g. a trainer's, to allocate no second one); the model's
     * sparsity plan is set to dense.
     */
    public static Predictors fit(Backend be, CausalLm lm, ForwardState st, List<Batch> train, Config cfg) {
        if (train.isEmpty()) {
            throw new IllegalArgumentException("predictor fit: no micro-batch");
        }
        lm.sparsity(SparsityPlan.DENSE);
        TileMass.OnBackend tileMass = new TileMass.OnBackend(be);
        ModelConfig mc = lm.config();
        int layers = mc.numLayers();
        int c = mc.hiddenSize();
        int d = c + 1;
        boolean relu = mc.activation() == Activation.RELU;
        int nb = (mc.ffnDim() + cfg.neuronBlock() - 1) / cfg.neuronBlock();
        // Attention maps read from the model where it exposes them; learned from activations elsewhere.
        AttentionPredictor[] exact = new AttentionPredictor[layers];
        double[][] xtxA = new double[layers][];
        double[][] xtq = new double[layers][];
        double[][] xtk = new double[layers][];
        for (int l = 0; l < layers; l++) {
            exact[l] = attentionFromWeights(be, lm, l, cfg.rank(), cfg.attnBlock());
            if (exact[l] == null) {
                xtxA[l] = new double[d * d];
                xtq[l] = new double[d * c];
                xtk[l] = new double[d * c];
            }
        }
        double[][] xtxM = new double[layers][relu ? d * d : 0];
        double[][] xty = new double[layers][relu ? d * nb : 0];
        for (Batch b : train) {
            lm.forward(st, b, false);
            int[] mask = b.attentionMask();
            for (int l = 0; l < layers; l++) {
                Layer a = Layer.read(be, st.layer(l), relu);
                if (exact[l] == null) {
                    accumulate(xtxA[l], xtq[l], a.attnIn(), a.q(), mask, c, c);
                    accumulate(null, xtk[l], a.attnIn(), a.k(), mask, c, c);
                }
                if (relu) {
                    double[][] act = GroundTruth.tokenActivity(a.h(), mask, mask.length, mc.ffnDim(),
                            cfg.neuronBlock());
                    float[] y = new float[mask.length * nb];
                    for (int t = 0; t < mask.length; t++) {
                        for (int j = 0; j < nb; j++) {
                            y[t * nb + j] = (float) act[t][j];
                        }
                    }
                    accumulate(xtxM[l], xty[l], a.mlpIn(), y, mask, c, nb);
                }
            }
        }
        List<AttentionPredictor> attn = new ArrayList<>();
        List<MlpPredictor> mlp = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            attn.add(exact[l] != null ? exact[l]
                    : fitAttention(xtxA[l], xtq[l], xtk[l], c, mc.numHeads(), cfg.rank(), cfg.attnBlock()));
            if (relu) {
                symmetrize(xtxM[l], d);
                double[] wm = Linalg.ridgeSolve(xtxM[l], xty[l], d, nb, RIDGE);
                float[] weight = new float[nb * d];
                for (int j = 0; j < nb; j++) {
                    for (int e = 0; e < d; e++) {
                        weight[j * d + e] = (float) wm[e * nb + j];
                    }
                }
                mlp.add(new MlpPredictor(c, mc.ffnDim(), cfg.neuronBlock(), cfg.tokenBlock(), weight, 1.0));
            }
        }
        // pass 2: temperatures; keep what calibration needs
        List<List<AttentionPredictor.Scores>> scores = new ArrayList<>();
        List<List<double[][][][]>> masses = new ArrayList<>();
        List<List<double[][]>> mlpScores = new ArrayList<>();
        List<List<double[][]>> mlpTruth = new ArrayList<>();
        List<int[]> realRows = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            scores.add(new ArrayList<>());
            masses.add(new ArrayList<>());
            mlpScores.add(new ArrayList<>());
            mlpTruth.add(new ArrayList<>());
        }
        for (Batch b : train) {
            lm.forward(st, b, false);
            int[] mask = b.attentionMask();
            realRows.add(GroundTruth.realRows(mask, mask.length, cfg.tokenBlock()));
            for (int l = 0; l < layers; l++) {
                Layer a = Layer.read(be, st.layer(l), relu);
                scores.get(l).add(attn.get(l).scores(a.attnIn(), mask, b.batchSize(), b.seqLen()));
                LayerActivations la = st.layer(l);
                masses.get(l).add(tileMass.perSequence(la.q(), la.k(), la.lse(), mask, b.batchSize(), b.seqLen(),
                        mc.numHeads(), cfg.attnBlock()));
                if (relu) {
                    mlpScores.get(l).add(mlp.get(l).blockScores(a.mlpIn(), mask, mask.length, be::hostParallelFor));
                    mlpTruth.get(l).add(GroundTruth.blockActivity(GroundTruth.tokenActivity(a.h(), mask,
                            mask.length, mc.ffnDim(), cfg.neuronBlock()), cfg.tokenBlock()));
                }
            }
        }
        for (int l = 0; l < layers; l++) {
            AttentionPredictor p = attn.get(l);
            p.fitTemperature(scores.get(l), masses.get(l));
            // pass 3: calibration of the coverage on the training micro-batches
            p.coverage = calibrateAttention(p, scores.get(l), masses.get(l), cfg.attnMass());
            if (relu) {
                MlpPredictor m = mlp.get(l);
                m.coverage = calibrateMlp(mlpScores.get(l), realRows, mlpTruth.get(l), cfg.mlpRecall());
                m.maxBlocks(mlpBudget(mlpScores.get(l), realRows, m.coverage, m.numBlocks()));
            }
        }
        return new Predictors(attn, mlp);
    }

    /**
     * The MLP budget for a calibrated coverage: the most blocks any token block of the micro-batches selects with
     * it, plus a slack of max(1, ceil(nb/20)) blocks for inputs that drift from these, capped at nb. The budget is
     * the compacted hidden state's width (and the sparse MLP's work) on a device, where the selected count stays
     * on the device; a token block that would select more keeps its best {@code budget} blocks.
     */
    static int mlpBudget(List<double[][]> scores, List<int[]> realRows, double coverage, int nb) {
        int most = 0;
        for (int mb = 0; mb < scores.size(); mb++) {
            for (boolean[] row : MlpPredictor.select(scores.get(mb), realRows.get(mb), coverage)) {
                int count = 0;
                for (boolean k : row) {
                    count += k ? 1 : 0;
                }
                most = Math.max(most, count);
            }
        }
        return Math.min(nb, most + Math.max(1, (nb + 19) / 20));
    }

    /**
     * The smallest coverage on the grid whose kept share of the true tile masses, summed over the micro-batches,
     * reaches {@code target}; 1 when none does.
     */
    static double calibrateAttention(AttentionPredictor p, List<AttentionPredictor.Scores> scores,
                                     List<double[][][][]> masses, double target) {
        List<double[][][][]> dists = new ArrayList<>();
        for (AttentionPredictor.Scores sc : scores) {
            dists.add(p.distribution(sc));
        }
        for (int g = GRID_FROM; g < 100; g++) {
            double cov = g / 100.0;
            double kept = 0;
            double total = 0;
            for (int mb = 0; mb < dists.size(); mb++) {
                boolean[][][] keep = AttentionPredictor.select(dists.get(mb), p.numHeads, scores.get(mb).nQB(), cov);
                double[] kt = attnKept(keep, masses.get(mb));
                kept += kt[0];
                total += kt[1];
            }
            if (kept >= target * total) {
                return cov;
            }
        }
        return 1;
    }

    /**
     * The smallest coverage on the grid whose kept share of the true active (token, neuron) pairs, summed over the
     * micro-batches, reaches {@code target}; 1 when none does.
     */
    static double calibrateMlp(List<double[][]> scores, List<int[]> realRows, List<double[][]> truth,
                               double target) {
        for (int g = GRID_FROM; g < 100; g++) {
            double cov = g / 100.0;
            double kept = 0;
            double total = 0;
            for (int mb = 0; mb < scores.size(); mb++) {
                double[] kt = mlpKept(MlpPredictor.select(scores.get(mb), realRows.get(mb), cov), truth.get(mb));
                kept += kt[0];
                total += kt[1];
            }
            if (kept >= target * total) {
                return cov;
            }
        }
        return 1;
    }

    /**
     * Layer {@code layer}'s attention predictor of rank R built from the model's current query and key maps
     * ({@link CausalLm#queryProjection}, {@link Linear#affineMap}: frozen weight, linear adapter delta and bias),
     * the maps a least-squares fit of q and k on the layer input would recover (q and k are exactly affine in it);
     * {@code null} when the model or the adapter does not expose them, and the caller fits from activations.
     */
    static AttentionPredictor attentionFromWeights(Backend be, CausalLm lm, int layer, int rank, int block) {
        Linear q = lm.queryProjection(layer);
        Linear k = lm.keyProjection(layer);
        if (q == null || k == null) {
            return null;
        }
        double[] aq = q.affineMap(be);
        double[] ak = aq == null ? null : k.affineMap(be);
        if (ak == null) {
            return null;
        }
        ModelConfig mc = lm.config();
        return AttentionPredictor.fromAffineMaps(aq, ak, mc.hiddenSize(), mc.numHeads(), rank, block,
                be::hostParallelFor);
    }

    /** The attention predictor of rank R fitted to the statistics FᵀF (D, D, upper triangle), Fᵀq, Fᵀk (D, C). */
    static AttentionPredictor fitAttention(double[] xtx, double[] xtq, double[] xtk, int c, int numHeads, int rank,
                                           int block) {
        int d = c + 1;
        symmetrize(xtx, d);
        double[] aq = Linalg.ridgeSolve(xtx, xtq, d, c, RIDGE);
        double[] ak = Linalg.ridgeSolve(xtx, xtk, d, c, RIDGE);
        return AttentionPredictor.fromAffineMaps(aq, ak, c, numHeads, rank, block);
    }

    /** Output rows, output columns and tokens per tile of {@link #accumulate}'s products. */
    private static final int TILE_I = 16;
    private static final int TILE_J = 256;
    private static final int TILE_T = 128;

    /**
     * FᵀF += over real rows (when xtx is not null, upper triangle) and FᵀY += with F = [x, 1] (rows, C+1), Y (rows,
     * m), rows = the tokens whose mask is set, x (tokens, C) and y (tokens, m) row-major. Each output element adds
     * its per-token products in token order, one rounding each (the order of a per-token rank-one update, so the
     * result does not depend on the tiling); the products run in (16 rows × 256 columns × 128 tokens) tiles so that
     * an output row segment and the token rows it reads stay in cache, where per-token rank-one updates streamed
     * the whole (C+1)² matrix through memory for every token.
     */
    static void accumulate(double[] xtx, double[] xty, float[] x, float[] y, int[] mask, int c, int m) {
        int d = c + 1;
        int n = 0;
        for (int v : mask) {
            n += v != 0 ? 1 : 0;
        }
        int[] rows = new int[n];
        // F (n, D): the real tokens' [x, 1] in token order, kept in float (x is float; 1 is exact) so that the
        // products' loops read a float array while they update a double one (no possible aliasing: vectorised)
        float[] f = new float[n * d];
        for (int t = 0, r = 0; t < mask.length; t++) {
            if (mask[t] == 0) {
                continue;
            }
            rows[r] = t;
            for (int e = 0; e < c; e++) {
                f[r * d + e] = x[t * c + e];
            }
            f[r * d + c] = 1;
            r++;
        }
        if (xtx != null) {
            gramUpper(xtx, f, n, d);
        }
        cross(xty, f, y, rows, d, m);
    }

    /** xtx (D, D) upper triangle += FᵀF, F (n, D); per element the tokens in order. */
    private static void gramUpper(double[] xtx, float[] f, int n, int d) {
        for (int i0 = 0; i0 < d; i0 += TILE_I) {
            int i1 = Math.min(i0 + TILE_I, d);
            for (int j0 = i0 - i0 % TILE_J; j0 < d; j0 += TILE_J) {
                int j1 = Math.min(j0 + TILE_J, d);
                for (int t0 = 0; t0 < n; t0 += TILE_T) {
                    int t1 = Math.min(t0 + TILE_T, n);
                    for (int i = i0; i < i1; i++) {
                        int js = Math.max(j0, i);
                        int row = i * d;
                        for (int t = t0; t < t1; t++) {
                            double fi = f[t * d + i];
                            int fo = t * d;   // fi · f[..]: the float widened, as in a double rank-one update
                            for (int j = js; j < j1; j++) {
                                xtx[row + j] += fi * f[fo + j];
                            }
                        }
                    }
                }
            }
        }
    }

    /** xty (D, m) += Fᵀ·Y[rows], F (n, D), y (tokens, m) float; per element the tokens in order. */
    private static void cross(double[] xty, float[] f, float[] y, int[] rows, int d, int m) {
        int n = rows.length;
        for (int i0 = 0; i0 < d; i0 += TILE_I) {
            int i1 = Math.min(i0 + TILE_I, d);
            for (int j0 = 0; j0 < m; j0 += TILE_J) {
                int j1 = Math.min(j0 + TILE_J, m);
                for (int t0 = 0; t0 < n; t0 += TILE_T) {
                    int t1 = Math.min(t0 + TILE_T, n);
                    for (int i = i0; i < i1; i++) {
                        int row = i * m;
                        for (int t = t0; t < t1; t++) {
                            double fi = f[t * d + i];
                            int yo = rows[t] * m;
                            for (int j = j0; j < j1; j++) {
                                xty[row + j] += fi * y[yo + j];
                            }
                        }
                    }
                }
            }
        }
    }

    static void symmetrize(double[] a, int d) {
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < i; j++) {
                a[i * d + j] = a[j * d + i];
            }
        }
    }

    /** {kept mass, total mass} of the true tile masses [B][NH][nQB][nQB] under the tile grid keep[NH][..][..]. */
    static double[] attnKept(boolean[][][] keep, double[][][][] mass) {
        double kept = 0;
        double total = 0;
        for (double[][][] seq : mass) {
            for (int h = 0; h < seq.length; h++) {
                for (int qb = 0; qb < seq[h].length; qb++) {
                    for (int kb = 0; kb <= qb; kb++) {
                        total += seq[h][qb][kb];
                        kept += keep[h][qb][kb] ? seq[h][qb][kb] : 0;
                    }
                }
            }
        }
        return new double[] {kept, total};
    }

    /** {kept, total} active (token, neuron) pairs of the true block counts [nTB][nb] under keep[nTB][nb]. */
    static double[] mlpKept(boolean[][] keep, double[][] truth) {
        double kept = 0;
        double total = 0;
        for (int r = 0; r < truth.length; r++) {
            for (int j = 0; j < truth[r].length; j++) {
                total += truth[r][j];
                kept += keep[r][j] ? truth[r][j] : 0;
            }
        }
        return new double[] {kept, total};
    }

    /** Scores {@code predictors} on the micro-batches (see the class comment). */
    public static Report evaluate(Backend be, CausalLm lm, Predictors predictors, List<Batch> batches, Config cfg) {
        TileMass.OnBackend tileMass = new TileMass.OnBackend(be);
        ModelConfig mc = lm.config();
        int layers = mc.numLayers();
        int nh = mc.numHeads();
        boolean relu = predictors.mlp(0) != null;
        ForwardState st = denseState(lm, batches);
        double[][] acc = new double[layers][7]; // attn kept, total, tiles, causal, oracle tiles; mlp kept, total
        double[][] mlpAcc = new double[layers][3]; // computed pairs, oracle pairs, real rows × H
        long realTokens = 0;
        for (Batch b : batches) {
            lm.forward(st, b, false);
            int[] mask = b.attentionMask();
            int bsz = b.batchSize();
            int t = b.seqLen();
            for (int m : mask) {
                realTokens += m != 0 ? 1 : 0;
            }
            for (int l = 0; l < layers; l++) {
                Layer a = Layer.read(be, st.layer(l), relu);
                AttentionPredictor ap = predictors.attention(l);
                boolean[][][] keep = ap.keep(a.attnIn(), mask, bsz, t);
                LayerActivations la = st.layer(l);
                double[][][][] mass = tileMass.perSequence(la.q(), la.k(), la.lse(), mask, bsz, t, nh, ap.block());
                double[] kt = attnKept(keep, mass);
                acc[l][0] += kt[0];
                acc[l][1] += kt[1];
                int nQB = keep[0].length;
                for (int h = 0; h < nh; h++) {
                    for (int qb = 0; qb < nQB; qb++) {
                        for (int kb = 0; kb <= qb; kb++) {
                            acc[l][2] += keep[h][qb][kb] ? 1 : 0;
                        }
                    }
                }
                acc[l][3] += (double) nh * nQB * (nQB + 1) / 2;
                acc[l][4] += oracleTiles(mass, nh, nQB, cfg.attnMass());
                if (relu) {
                    MlpPredictor mp = predictors.mlp(l);
                    boolean[][] mk = mp.keep(a.mlpIn(), mask, mask.length);
                    double[][] truth = GroundTruth.blockActivity(GroundTruth.tokenActivity(a.h(), mask, mask.length,
                            mc.ffnDim(), mp.neuronBlock()), mp.tokenBlock());
                    double[] mkt = mlpKept(mk, truth);
                    acc[l][5] += mkt[0];
                    acc[l][6] += mkt[1];
                    int[] real = GroundTruth.realRows(mask, mask.length, mp.tokenBlock());
                    for (int r = 0; r < mk.length; r++) {
                        for (int j = 0; j < mk[r].length; j++) {
                            int width = Math.min(mp.neuronBlock(), mc.ffnDim() - j * mp.neuronBlock());
                            mlpAcc[l][0] += mk[r][j] ? (double) real[r] * width : 0;
                            mlpAcc[l][1] += truth[r][j] > 0 ? (double) real[r] * width : 0;
                        }
                        mlpAcc[l][2] += (double) real[r] * mc.ffnDim();
                    }
                }
            }
        }
        List<LayerReport> out = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            double[] x = acc[l];
            double[] y = mlpAcc[l];
            out.add(new LayerReport(l, x[0] / x[1], x[2] / x[3], x[4] / x[3], predictors.attention(l).coverage(),
                    relu ? x[5] / x[6] : Double.NaN, relu ? y[0] / y[2] : Double.NaN, relu ? y[1] / y[2] : Double.NaN,
                    relu ? predictors.mlp(l).coverage() : Double.NaN));
        }
        return new Report(cfg, batches.size(), realTokens, out);
    }

    /**
     * The fewest tiles per head and query-block row that reach {@code target} of the row's true micro-batch mass,
     * diagonal and sink included (what a perfect predictor under the same forced tiles would keep), summed.
     */
    private static double oracleTiles(double[][][][] mass, int nh, int nQB, double target) {
        double tiles = 0;
        double[] agg = new double[nQB];
        for (int h = 0; h < nh; h++) {
            for (int qb = 0; qb < nQB; qb++) {
                java.util.Arrays.fill(agg, 0);
                double total = 0;
                for (double[][][] seq : mass) {
                    for (int kb = 0; kb <= qb; kb++) {
                        agg[kb] += seq[h][qb][kb];
                        total += seq[h][qb][kb];
                    }
                }
                double covered = agg[qb] + (qb > 0 ? agg[0] : 0);
                int kept = qb > 0 ? 2 : 1;
                double[] rest = new double[Math.max(0, qb - 1)];
                for (int kb = 1; kb < qb; kb++) {
                    rest[kb - 1] = agg[kb];
                }
                java.util.Arrays.sort(rest);
                for (int r = rest.length - 1; r >= 0 && covered < target * total; r--) {
                    covered += rest[r];
                    kept++;
                }
                tiles += kept;
            }
        }
        return tiles;
    }
}
