package org.longexposure.sparsity.predict;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.LayerActivations;
import org.longexposure.model.Linear;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;
import org.longexposure.sparsity.exposer.TileMass;

/**
 * Sparsity while fine-tuning (design note 5.4 and 13, "online validity"): a {@link SparsityPlan} that predicts each
 * layer's layouts with {@link Predictors}, keeps them valid while the adapters change, and counts what it computes.
 *
 * <p>Refresh. LoRA on q (or k) changes the map "attention input → tile scores", so a predictor fitted on the frozen
 * model goes stale. On a refresh step the caller runs the training step dense and then hands the forward state to
 * {@link #refresh}: per layer, the stale predictor is first scored against the dense ground truth of that
 * micro-batch (the recall the run actually had), then the attention predictor is refitted on it: the affine maps
 * x → q, x → k by ridge least squares on the micro-batch's (x, q, k) rows (exact up to the ridge, since q and k
 * are affine in x, LoRA included), their rank-R factorisation, and the temperatures γ_h. The MLP predictor maps the
 * MLP input through frozen fc1/ReLU, a fixed function, and is kept.
 *
 * <p>Modes. {@link Mode#ON}: every layer sparse with the predictors' stored coverages, except the parts the
 * predictors mark dense ({@link Predictors#attentionDense}). {@link Mode#AUTO}: on each refresh the coverage of each
 * layer's attention and MLP predictor is recalibrated ({@link CalibrationPool}: on the last {@code
 * calibrationWindow} refresh micro-batches, to the recall target raised by the recall drift seen at the previous
 * refreshes) to the smallest one reaching the target ({@link PredictorFit}'s grid), and a layer whose realised
 * density on the refresh micro-batch is above {@code denseAbove} runs that part dense until the next refresh (at
 * such densities the predictor, the layout and the sparse kernel's overheads cost more than the skipped work
 * saves). The MLP is sparse only on a ReLU model with MLP predictors and no adapter on fc1/fc2.
 *
 * <p>State and resume: everything a later step depends on is the predictors (maps, temperatures, coverages), the
 * dense fallbacks and auto's calibration pool; {@link #save} writes them and {@link #load} restores them bit for
 * bit, so a resumed run continues exactly as the uninterrupted one (the step counters below are emptied by
 * {@link #takeStep} after every step and are not part of it; nothing here is random).
 *
 * <p>Counters: between two {@link #takeStep} calls, per layer, the kept and causal tiles of the attention (dense
 * layers count as fully kept) and the computed and real (row, neuron) pairs of the MLP. Memory: the predictors, the
 * calibration pool (auto) plus host copies of one layer's activations at a time during a refresh.
 */
public final class OnlineSparsity implements SparsityPlan {
    /**
     * Realised density above which {@link Mode#AUTO} runs a layer dense: 0.85. The CPU sparse attention skips whole
     * 64-token tiles and the predictor costs O(N·C) host work per layer, so below about 15 % skipped work the
     * saving does not cover the prediction and layout overhead; a layer close to dense also gains no memory.
     */
    public static final double DENSE_ABOVE = 0.85;

    /**
     * Refresh micro-batches auto mode calibrates on: 3, the newest and the two before it (see
     * {@link CalibrationPool}). With the drift margin this kept the mean recall between refreshes at or above the
     * target in every layer of the bundled model, computing about 4 points fewer of a sparse layer's tiles than the
     * margin on the newest micro-batch alone, with more room above the target than a window of 5
     * (docs/SPARSITY.md section 4).
     */
    public static final int CALIBRATION_WINDOW = 3;

    /** The files of {@link #save} besides the predictors'. */
    public static final String STATE_JSON = "online.json";
    private static final String STATE_FORMAT = "longexposure-online-sparsity";

    /** How sparsity runs during fine-tuning. */
    public enum Mode {
        OFF, ON, AUTO;

        /** Parses {@code off}, {@code on} or {@code auto} (any case). */
        public static Mode parse(String s) {
            for (Mode m : values()) {
                if (m.name().equalsIgnoreCase(s)) {
                    return m;
                }
            }
            throw new IllegalArgumentException("sparsity mode '" + s + "' is not one of off, on, auto");
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * The settings of one run.
     *
     * @param mode              ON or AUTO (OFF needs no plan)
     * @param attnMass          AUTO: target fraction of the true attention mass kept, in (0, 1]
     * @param mlpRecall         AUTO: target fraction of the true active neurons kept, in (0, 1]
     * @param denseAbove        AUTO: realised density above which a layer part runs dense, in [0, 1]
     * @param calibrationWindow AUTO: refresh micro-batches the coverage is calibrated on (≥ 1; 1: the newest only)
     * @param driftMargin       AUTO: raise the targets by the recall drift seen at the last refreshes
     */
    public record Settings(Mode mode, double attnMass, double mlpRecall, double denseAbove, int calibrationWindow,
                           boolean driftMargin) {
        /** With auto's default calibration: {@link #CALIBRATION_WINDOW} refreshes and the drift margin. */
        public Settings(Mode mode, double attnMass, double mlpRecall, double denseAbove) {
            this(mode, attnMass, mlpRecall, denseAbove, CALIBRATION_WINDOW, true);
        }

        public Settings {
            if (calibrationWindow < 1) {
                throw new IllegalArgumentException("calibration window must be >= 1, got " + calibrationWindow);
            }
            if (mode == null || mode == Mode.OFF) {
                throw new IllegalArgumentException("online sparsity needs mode on or auto, got " + mode);
            }
            if (!(attnMass > 0 && attnMass <= 1) || !(mlpRecall > 0 && mlpRecall <= 1)) {
                throw new IllegalArgumentException("attention mass and MLP recall targets must be in (0, 1], got "
                        + attnMass + " and " + mlpRecall);
            }
            if (!(denseAbove >= 0 && denseAbove <= 1)) {
                throw new IllegalArgumentException("dense-above threshold must be in [0, 1], got " + denseAbove);
            }
        }
    }

    /**
     * One refresh's numbers per layer (NaN where a part has no predictor).
     *
     * @param attnRecallStale  the predictor in use before the refresh, on the refresh micro-batch's true masses
     * @param attnRecall       the refreshed predictor on the same micro-batch (in-sample)
     * @param attnDensity      the refreshed predictor's realised tile density there
     * @param attnDense        whether the layer's attention runs dense until the next refresh
     * @param attnMargin       AUTO: the drift margin added to the target at this calibration (else NaN)
     */
    public record Refresh(double[] attnRecallStale, double[] attnRecall, double[] attnDensity, double[] attnCoverage,
                          boolean[] attnDense, double[] mlpRecallStale, double[] mlpRecall, double[] mlpDensity,
                          double[] mlpCoverage, boolean[] mlpDense, double[] attnMargin, double[] mlpMargin) {
    }

    /**
     * The current predictors scored on one dense forward, per layer (NaN where a part has no predictor): recall of
     * the true attention mass / active neurons and the predicted density, at the coverages in use, whether or not
     * the part currently runs dense.
     */
    public record Score(double[] attnRecall, double[] attnDensity, double[] mlpRecall, double[] mlpDensity) {
    }

    /** Realised densities per layer since the last {@link #takeStep} (NaN where the part was never consulted). */
    public record StepDensity(double[] attn, double[] mlp) {
    }

    private final Backend be;
    private final CausalLm lm;                  // read at refreshes: its current q and k maps
    private final ModelConfig mc;
    private final Settings settings;
    private final List<AttentionPredictor> attn;
    private final List<MlpPredictor> mlp; // empty when the MLP stays dense
    private final boolean[] attnDense;
    private final boolean[] mlpDense;
    private final double[][] attnCount; // [L][kept, causal]
    private final double[][] mlpCount;  // [L][computed, all]
    private final CalibrationPool pool;
    private final PredictorPlan plan;           // the layouts, built on the backend from the live predictors
    private final TileMass.OnBackend tileMass;    // true tile masses of refresh and score micro-batches
    private final BlockLayout[] pendingAttn;    // [L] the last layout not yet counted into attnCount
    private final NeuronLayout[] pendingMlp;    // [L] likewise for mlpCount
    private final int[][] pendingRealRows;      // [L] real rows per token block of pendingMlp's micro-batch

    /**
     * @param lm         the model being fine-tuned (adapters already plugged: fc1/fc2 adapters keep the MLP dense)
     * @param predictors fitted for {@code lm} (copied: refreshes do not change them); their dense fallbacks are
     *                   the starting ones (ON keeps them, AUTO redecides them at every refresh)
     */
    public OnlineSparsity(Backend be, CausalLm lm, Predictors predictors, Settings settings) {
        this(be, lm, predictors, settings, new CalibrationPool(lm.config().numLayers(), settings.calibrationWindow(),
                settings.driftMargin()));
    }

    private OnlineSparsity(Backend be, CausalLm lm, Predictors predictors, Settings settings, CalibrationPool pool) {
        this.be = be;
        this.lm = lm;
        this.mc = lm.config();
        this.settings = settings;
        if (predictors.numLayers() != mc.numLayers()) {
            throw new IllegalArgumentException("predictors for " + predictors.numLayers() + " layers, the model has "
                    + mc.numLayers());
        }
        AttentionPredictor a0 = predictors.attention(0);
        if (a0.dim != mc.hiddenSize() || a0.numHeads != mc.numHeads()) {
            throw new IllegalArgumentException("predictors for hidden size " + a0.dim + " and " + a0.numHeads
                    + " heads do not fit the model (" + mc.hiddenSize() + ", " + mc.numHeads() + ")");
        }
        boolean mlpAdapters = false;
        for (Linear lin : lm.linears()) {
            String p = lin.path();
            mlpAdapters |= lin.adapter() != null && (p.endsWith(".fc1") || p.endsWith(".fc2"));
        }
        boolean sparseMlp = mc.activation() == Activation.RELU && predictors.mlp(0) != null && !mlpAdapters;
        if (sparseMlp && predictors.mlp(0).ffn != mc.ffnDim()) {
            throw new IllegalArgumentException("MLP predictors for FFN width " + predictors.mlp(0).ffn
                    + " do not fit the model's " + mc.ffnDim());
        }
        this.attn = new ArrayList<>();
        this.mlp = new ArrayList<>();
        for (int l = 0; l < mc.numLayers(); l++) {
            AttentionPredictor a = predictors.attention(l);
            AttentionPredictor ac = new AttentionPredictor(a.numHeads, a.dim, a.rank, a.block, a.pq.clone(),
                    a.pk.clone(), a.gamma.clone(), a.coverage);
            ac.maxRowFraction = a.maxRowFraction;
            attn.add(ac);
            if (sparseMlp) {
                MlpPredictor m = predictors.mlp(l);
                MlpPredictor mCopy = new MlpPredictor(m.dim, m.ffn, m.neuronBlock, m.tokenBlock, m.weight.clone(),
                        m.coverage);
                mCopy.budget = m.budget;
                mlp.add(mCopy);
            }
        }
        this.attnDense = new boolean[mc.numLayers()];
        this.mlpDense = new boolean[mc.numLayers()];
        for (int l = 0; l < mc.numLayers(); l++) {
            attnDense[l] = predictors.attentionDense(l);
            mlpDense[l] = !sparseMlp || predictors.mlpDense(l);
        }
        this.attnCount = new double[mc.numLayers()][2];
        this.mlpCount = new double[mc.numLayers()][2];
        this.pool = pool;
        this.plan = new PredictorPlan(new LiveSource(), be, true, sparseMlp);
        this.tileMass = new TileMass.OnBackend(be);
        this.pendingAttn = new BlockLayout[mc.numLayers()];
        this.pendingMlp = new NeuronLayout[mc.numLayers()];
        this.pendingRealRows = new int[mc.numLayers()][];
    }

    /** The plan's view of the current predictors and fallbacks (a refresh replaces attention predictors). */
    private final class LiveSource implements PredictorPlan.Source {
        @Override
        public int numLayers() {
            return attn.size();
        }

        @Override
        public AttentionPredictor attention(int layer) {
            return attn.get(layer);
        }

        @Override
        public MlpPredictor mlp(int layer) {
            return mlp.isEmpty() ? null : mlp.get(layer);
        }

        @Override
        public boolean attentionDense(int layer) {
            return attnDense[layer];
        }

        @Override
        public boolean mlpDense(int layer) {
            return mlpDense[layer];
        }
    }

    public Settings settings() {
        return settings;
    }

    /** Whether the model's MLP can run sparse at all (ReLU, MLP predictors, no fc1/fc2 adapter). */
    public boolean sparseMlpPossible() {
        return !mlp.isEmpty();
    }

    /** Whether layer l's attention currently runs dense (AUTO fallback). */
    public boolean attentionDense(int layer) {
        return attnDense[layer];
    }

    /** Whether layer l's MLP currently runs dense (AUTO fallback, or no sparse MLP possible). */
    public boolean mlpDense(int layer) {
        return mlpDense[layer];
    }

    /** The current predictors with the current dense fallbacks (the predictor objects are shared, not copied). */
    public Predictors predictors() {
        return new Predictors(attn, mlp, attnDense, mlp.isEmpty() ? null : mlpDense);
    }

    /**
     * Layer l's attention layout for this micro-batch, predicted on the backend ({@link PredictorPlan}: no host
     * round trip); its tile count is read back later, when the step's densities are taken or before the layer's
     * next layout overwrites it.
     */
    @Override
    public BlockLayout attention(int layer, Input in) {
        int nQB = (in.seqLen() + attn.get(layer).block - 1) / attn.get(layer).block;
        double causal = (double) mc.numHeads() * nQB * (nQB + 1) / 2;
        if (attnDense[layer]) {
            attnCount[layer][0] += causal;
            attnCount[layer][1] += causal;
            return null;
        }
        settleAttention(layer);
        BlockLayout layout = plan.attention(layer, in);
        pendingAttn[layer] = layout;
        attnCount[layer][1] += causal;
        return layout;
    }

    /** Layer l's neuron layout for this micro-batch, predicted on the backend; counted like the attention's. */
    @Override
    public NeuronLayout mlp(int layer, Input in) {
        int[] mask = in.attentionMask();
        double real = 0;
        for (int m : mask) {
            real += m != 0 ? 1 : 0;
        }
        if (mlpDense[layer]) {
            mlpCount[layer][0] += real * mc.ffnDim();
            mlpCount[layer][1] += real * mc.ffnDim();
            return null;
        }
        settleMlp(layer);
        NeuronLayout layout = plan.mlp(layer, in);
        pendingMlp[layer] = layout;
        pendingRealRows[layer] = GroundTruth.realRows(mask, in.rows(), layout.tokenBlock());
        mlpCount[layer][1] += real * mc.ffnDim();
        return layout;
    }

    /** Adds the pending attention layout's listed tiles (rowPtr's last entry, read from the backend). */
    private void settleAttention(int layer) {
        BlockLayout l = pendingAttn[layer];
        if (l != null) {
            long last = l.rowPtr().numel() - 1;
            attnCount[layer][0] += Tensors.toInts(be, l.rowPtr().slice(last, 1))[0];
            pendingAttn[layer] = null;
        }
    }

    /** Adds the pending neuron layout's computed (real row, neuron) pairs. */
    private void settleMlp(int layer) {
        NeuronLayout l = pendingMlp[layer];
        if (l != null) {
            MlpPredictor p = mlp.get(layer);
            int[] rowPtr = Tensors.toInts(be, l.rowPtr());
            int[] idx = Tensors.toInts(be, l.blockIdx());
            int[] real = pendingRealRows[layer];
            double pairs = 0;
            for (int r = 0; r + 1 < rowPtr.length; r++) {
                for (int e = rowPtr[r]; e < rowPtr[r + 1]; e++) {
                    pairs += (double) real[r] * Math.min(p.neuronBlock, p.ffn - idx[e] * p.neuronBlock);
                }
            }
            mlpCount[layer][0] += pairs;
            pendingMlp[layer] = null;
        }
    }

    private static double keptTiles(boolean[][][] keep) {
        double kept = 0;
        for (boolean[][] head : keep) {
            for (int qb = 0; qb < head.length; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    kept += head[qb][kb] ? 1 : 0;
                }
            }
        }
        return kept;
    }

    private static double computedPairs(boolean[][] keep, int[] realRows, MlpPredictor p) {
        double pairs = 0;
        for (int r = 0; r < keep.length; r++) {
            for (int j = 0; j < keep[r].length; j++) {
                if (keep[r][j]) {
                    pairs += (double) realRows[r] * Math.min(p.neuronBlock, p.ffn - j * p.neuronBlock);
                }
            }
        }
        return pairs;
    }

    /** The realised densities since the last call, and resets the counters. */
    public StepDensity takeStep() {
        int layers = mc.numLayers();
        for (int l = 0; l < layers; l++) {
            settleAttention(l);
            settleMlp(l);
        }
        double[] a = new double[layers];
        double[] m = new double[layers];
        for (int l = 0; l < layers; l++) {
            a[l] = attnCount[l][1] == 0 ? Double.NaN : attnCount[l][0] / attnCount[l][1];
            m[l] = mlpCount[l][1] == 0 ? Double.NaN : mlpCount[l][0] / mlpCount[l][1];
            Arrays.fill(attnCount[l], 0);
            Arrays.fill(mlpCount[l], 0);
        }
        return new StepDensity(a, m);
    }

    /**
     * Scores the current predictors on the dense forward of {@code batch} that {@code st} holds (read only; the
     * state is not changed): what a refresh reports as the stale recall, on any micro-batch, e.g. to follow the
     * recall between refreshes.
     */
    public Score score(ForwardState st, Batch batch) {
        int layers = mc.numLayers();
        int[] mask = batch.attentionMask();
        double[] aRecall = new double[layers];
        double[] aDensity = new double[layers];
        double[] mRecall = new double[layers];
        double[] mDensity = new double[layers];
        Arrays.fill(mRecall, Double.NaN);
        Arrays.fill(mDensity, Double.NaN);
        boolean withMlp = !mlp.isEmpty();
        for (int l = 0; l < layers; l++) {
            PredictorFit.Layer a = PredictorFit.Layer.read(be, st.layer(l), withMlp);
            AttentionPredictor p = attn.get(l);
            LayerActivations la = st.layer(l);
            double[][][][] mass = tileMass.perSequence(la.q(), la.k(), la.lse(), mask, batch.batchSize(),
                    batch.seqLen(), mc.numHeads(), p.block);
            boolean[][][] keep = p.keep(a.attnIn(), mask, batch.batchSize(), batch.seqLen());
            aRecall[l] = recall(PredictorFit.attnKept(keep, mass));
            int nQB = keep[0].length;
            aDensity[l] = keptTiles(keep) / ((double) mc.numHeads() * nQB * (nQB + 1) / 2);
            if (withMlp) {
                MlpPredictor m = mlp.get(l);
                double[][] truth = GroundTruth.blockActivity(GroundTruth.tokenActivity(a.h(), mask, mask.length,
                        mc.ffnDim(), m.neuronBlock), m.tokenBlock);
                int[] real = GroundTruth.realRows(mask, mask.length, m.tokenBlock);
                boolean[][] mk = m.keep(a.mlpIn(), mask, mask.length);
                mRecall[l] = recall(PredictorFit.mlpKept(mk, truth));
                double all = 0;
                for (int r : real) {
                    all += (double) r * mc.ffnDim();
                }
                mDensity[l] = computedPairs(mk, real, m) / all;
            }
        }
        return new Score(aRecall, aDensity, mRecall, mDensity);
    }

    /**
     * Refreshes from the dense forward of {@code batch} that {@code st} holds (the caller ran it with a dense plan,
     * e.g. a dense training step; the saved q, k, log-sum-exp, layer inputs and FFN hidden states are read, not
     * written). See the class comment.
     */
    public Refresh refresh(ForwardState st, Batch batch) {
        int layers = mc.numLayers();
        int c = mc.hiddenSize();
        int d = c + 1;
        int[] mask = batch.attentionMask();
        int bsz = batch.batchSize();
        int t = batch.seqLen();
        double[] aStale = new double[layers];
        double[] aRecall = new double[layers];
        double[] aDensity = new double[layers];
        double[] aCov = new double[layers];
        double[] mStale = new double[layers];
        double[] mRecall = new double[layers];
        double[] mDensity = new double[layers];
        double[] mCov = new double[layers];
        double[] aMargin = new double[layers];
        double[] mMargin = new double[layers];
        Arrays.fill(aMargin, Double.NaN);
        Arrays.fill(mMargin, Double.NaN);
        Arrays.fill(mStale, Double.NaN);
        Arrays.fill(mRecall, Double.NaN);
        Arrays.fill(mDensity, Double.NaN);
        Arrays.fill(mCov, Double.NaN);
        boolean withMlp = !mlp.isEmpty();
        boolean auto = settings.mode() == Mode.AUTO;
        for (int l = 0; l < layers; l++) {
            PredictorFit.Layer a = PredictorFit.Layer.read(be, st.layer(l), withMlp);
            AttentionPredictor old = attn.get(l);
            LayerActivations la = st.layer(l);
            double[][][][] mass = tileMass.perSequence(la.q(), la.k(), la.lse(), mask, bsz, t, mc.numHeads(),
                    old.block);
            aStale[l] = recall(PredictorFit.attnKept(old.keep(a.attnIn(), mask, bsz, t), mass));
            if (auto) {
                pool.observeAttention(l, aStale[l]);
            }
            // the current q and k maps from the parameters where the model exposes them, else fitted to this
            // micro-batch's activations
            AttentionPredictor p = PredictorFit.attentionFromWeights(be, lm, l, old.rank, old.block);
            if (p == null) {
                double[] xtx = new double[d * d];
                double[] xtq = new double[d * c];
                double[] xtk = new double[d * c];
                PredictorFit.accumulate(xtx, xtq, a.attnIn(), a.q(), mask, c, c);
                PredictorFit.accumulate(null, xtk, a.attnIn(), a.k(), mask, c, c);
                p = PredictorFit.fitAttention(xtx, xtq, xtk, c, old.numHeads, old.rank, old.block);
            }
            AttentionPredictor.Pooled pooled = p.pool(a.attnIn(), mask, bsz, t);
            AttentionPredictor.Scores sc = p.scores(pooled);
            p.fitTemperature(Collections.singletonList(sc), Collections.singletonList(mass));
            if (auto) {
                CalibrationPool.Result cal = pool.calibrateAttention(l, p, new CalibrationPool.AttnSample(pooled,
                        mass), settings.attnMass());
                p.coverage = cal.coverage();
                aMargin[l] = cal.margin();
            } else {
                p.coverage = old.coverage;
            }
            p.maxRowFraction = old.maxRowFraction;
            attn.set(l, p);
            boolean[][][] keep = AttentionPredictor.select(p.distribution(sc), p.numHeads, sc.nQB(), p.coverage,
                    p.maxRowFraction);
            aRecall[l] = recall(PredictorFit.attnKept(keep, mass));
            int nQB = sc.nQB();
            aDensity[l] = keptTiles(keep) / ((double) mc.numHeads() * nQB * (nQB + 1) / 2);
            aCov[l] = p.coverage;
            if (auto) {
                attnDense[l] = aDensity[l] > settings.denseAbove();
            }
            if (withMlp) {
                MlpPredictor m = mlp.get(l);
                double[][] truth = GroundTruth.blockActivity(GroundTruth.tokenActivity(a.h(), mask, mask.length,
                        mc.ffnDim(), m.neuronBlock), m.tokenBlock);
                int[] real = GroundTruth.realRows(mask, mask.length, m.tokenBlock);
                double[][] scores = m.blockScores(a.mlpIn(), mask, mask.length, be::hostParallelFor);
                mStale[l] = recall(PredictorFit.mlpKept(MlpPredictor.select(scores, real, m.coverage,
                        m.maxBlocks()), truth));
                if (auto) {
                    pool.observeMlp(l, mStale[l]);
                    CalibrationPool.Result cal = pool.calibrateMlp(l, new CalibrationPool.MlpSample(scores, real,
                            truth), settings.mlpRecall());
                    m.coverage = cal.coverage();
                    mMargin[l] = cal.margin();
                    m.maxBlocks(PredictorFit.mlpBudget(Collections.singletonList(scores),
                            Collections.singletonList(real), m.coverage, m.numBlocks()));
                }
                boolean[][] mk = MlpPredictor.select(scores, real, m.coverage, m.maxBlocks());
                mRecall[l] = recall(PredictorFit.mlpKept(mk, truth));
                double all = 0;
                for (int r : real) {
                    all += (double) r * mc.ffnDim();
                }
                mDensity[l] = computedPairs(mk, real, m) / all;
                mCov[l] = m.coverage;
                if (auto) {
                    mlpDense[l] = mDensity[l] > settings.denseAbove();
                }
            }
        }
        return new Refresh(aStale, aRecall, aDensity, aCov, attnDense.clone(), mStale, mRecall, mDensity, mCov,
                mlpDense.clone(), aMargin, mMargin);
    }

    // --- state files (checkpoints) ---

    /**
     * Writes everything a later step depends on into {@code dir} (created if missing): the predictors with the
     * current dense fallbacks ({@link Predictors#save}), auto's calibration pool ({@link CalibrationPool#save}) and
     * last {@code online.json}: {@code format} ("longexposure-online-sparsity"), {@code version} 1, the settings
     * ({@code mode}, {@code attn_mass}, {@code mlp_recall}, {@code dense_above}, {@code calibration_window},
     * {@code drift_margin}) and {@code sparse_mlp}. Every file goes through a temporary name and a rename; a caller
     * that needs the set to appear at once writes {@code dir} inside a folder it renames (as checkpoints do).
     */
    public void save(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("creating " + dir, e);
        }
        predictors().save(dir);
        pool.save(dir);
        ObjectNode root = new ObjectMapper().createObjectNode();
        root.put("format", STATE_FORMAT);
        root.put("version", 1);
        settingsJson(root, settings);
        root.put("sparse_mlp", sparseMlpPossible());
        CalibrationPool.writeJson(dir.resolve(STATE_JSON), root);
    }

    private static void settingsJson(ObjectNode o, Settings s) {
        o.put("mode", s.mode().label());
        o.put("attn_mass", s.attnMass());
        o.put("mlp_recall", s.mlpRecall());
        o.put("dense_above", s.denseAbove());
        o.put("calibration_window", s.calibrationWindow());
        o.put("drift_margin", s.driftMargin());
    }

    /**
     * Restores the state {@link #save} wrote, for {@code lm} (with the same adapters plugged) and {@code settings}.
     * The settings must be those the state was saved with: the coverages, fallbacks and calibration pool are what
     * those settings produced, and a run continued with others would be neither the saved run nor a fresh one.
     *
     * @throws IllegalArgumentException naming the setting and both values when one differs, or when the saved
     *                                  state had a sparse MLP and this model cannot have one (or the reverse)
     * @throws InputFormatException     when a file is missing or malformed
     */
    public static OnlineSparsity load(Backend be, CausalLm lm, Path dir, Settings settings) {
        Path jsonFile = dir.resolve(STATE_JSON);
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(jsonFile.toFile());
        } catch (IOException e) {
            throw new InputFormatException(jsonFile, "online sparsity state", "cannot be read as JSON: "
                    + e.getMessage(), e);
        }
        if (root == null || !STATE_FORMAT.equals(root.path("format").asText()) || root.path("version").asInt() != 1) {
            throw new InputFormatException(jsonFile, "format", "expected \"" + STATE_FORMAT + "\" version 1");
        }
        ObjectNode now = new ObjectMapper().createObjectNode();
        settingsJson(now, settings);
        for (var it = now.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            JsonNode was = root.get(k);
            JsonNode is = now.get(k);
            boolean same = was != null && (was.isNumber() && is.isNumber()
                    ? Double.compare(was.doubleValue(), is.doubleValue()) == 0 : was.equals(is));
            if (!same) {
                throw new IllegalArgumentException("the sparsity state in " + dir + " was saved with " + k + " "
                        + was + ", the run now has " + k + " " + is + "; it cannot be continued with another value");
            }
        }
        ModelConfig mc = lm.config();
        OnlineSparsity o = new OnlineSparsity(be, lm, Predictors.load(dir), settings,
                CalibrationPool.load(dir, mc.numLayers(), mc.numHeads(), mc.hiddenSize()));
        JsonNode sparseMlp = root.get("sparse_mlp");
        if (sparseMlp == null || !sparseMlp.isBoolean()) {
            throw new InputFormatException(jsonFile, "sparse_mlp", "expected true or false, got " + sparseMlp);
        }
        if (sparseMlp.booleanValue() != o.sparseMlpPossible()) {
            throw new IllegalArgumentException("the sparsity state in " + dir + " was saved with the MLP "
                    + (sparseMlp.booleanValue() ? "sparse" : "dense") + ", this model and its adapters run it "
                    + (o.sparseMlpPossible() ? "sparse" : "dense"));
        }
        return o;
    }

    private static double recall(double[] keptTotal) {
        return keptTotal[1] == 0 ? 1 : keptTotal[0] / keptTotal[1];
    }
}
