package org.longexposure.sparsity.predict;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.Tensors;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.data.Batch;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.LayerActivations;
import org.longexposure.model.ModelConfig;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.tensor.Tensor;

/**
 * The predictors: the linear algebra they rest on, the exactness of a full-rank attention predictor (its scores are
 * the tiles' mean logits, computed independently from the affine maps), the fit's calibration (recall targets met
 * on the training micro-batches), the file round trip, and the plan plugged into the model (full coverage: the
 * dense model's loss bit for bit).
 */
class PredictorsTest {
    private static double[] randomSpd(SplittableRandom rng, int n) {
        double[] g = new double[n * n];
        for (int i = 0; i < g.length; i++) {
            g[i] = rng.nextDouble(-1, 1);
        }
        double[] a = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                for (int k = 0; k < n; k++) {
                    a[i * n + j] += g[i * n + k] * g[j * n + k];
                }
            }
            a[i * n + i] += 0.5;
        }
        return a;
    }

    @Test
    void ridgeSolveAndJacobiEigenSatisfyTheirEquations() {
        SplittableRandom rng = new SplittableRandom(1);
        int n = 7;
        int m = 3;
        double[] a = randomSpd(rng, n);
        double[] b = new double[n * m];
        for (int i = 0; i < b.length; i++) {
            b[i] = rng.nextDouble(-2, 2);
        }
        double[] x = Linalg.ridgeSolve(a, b, n, m, 0);
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < m; c++) {
                double s = 0;
                for (int k = 0; k < n; k++) {
                    s += a[i * n + k] * x[k * m + c];
                }
                assertThat(s).isCloseTo(b[i * m + c], org.assertj.core.data.Offset.offset(1e-9));
            }
        }
        int e = 9;
        double[] s = randomSpd(rng, e);
        for (int i = 0; i < e; i++) {
            s[i * e + i] -= 3;   // indefinite
        }
        double[] v = new double[e * e];
        double[] lambda = Linalg.symmetricEigen(s, e, v);
        for (int c = 0; c < e; c++) {
            if (c > 0) {
                assertThat(lambda[c]).isLessThanOrEqualTo(lambda[c - 1]);
            }
            for (int i = 0; i < e; i++) {
                double sv = 0;
                for (int k = 0; k < e; k++) {
                    sv += s[i * e + k] * v[k * e + c];
                }
                assertThat(sv).isCloseTo(lambda[c] * v[i * e + c], org.assertj.core.data.Offset.offset(1e-9));
            }
        }
    }

    @Test
    void aFullRankAttentionPredictorScoresEachTilesMeanLogit() {
        SplittableRandom rng = new SplittableRandom(2);
        int c = 12;
        int nh = 3;
        int hs = c / nh;
        int d = c + 1;
        int bsz = 2;
        int t = 11;
        int block = 3;
        double[] aq = new double[d * c];
        double[] ak = new double[d * c];
        for (int i = 0; i < aq.length; i++) {
            aq[i] = rng.nextDouble(-1, 1);
            ak[i] = rng.nextDouble(-1, 1);
        }
        AttentionPredictor p = AttentionPredictor.fromAffineMaps(aq, ak, c, nh, hs, block);
        float[] x = new float[bsz * t * c];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rng.nextDouble(-1, 1);
        }
        int[] mask = new int[bsz * t];
        for (int i = 0; i < mask.length; i++) {
            mask[i] = i < t || i % t < 7 ? 1 : 0;   // the second sequence is padded after 7 tokens
        }
        AttentionPredictor.Scores sc = p.scores(x, mask, bsz, t);
        int nQB = (t + block - 1) / block;
        for (int b = 0; b < bsz; b++) {
            // q̄, k̄ of each block: the affine maps applied to the mean of the block's real rows
            double[][] qBar = new double[nQB][c];
            double[][] kBar = new double[nQB][c];
            int[] count = new int[nQB];
            for (int i = 0; i < t; i++) {
                if (mask[b * t + i] == 0) {
                    continue;
                }
                count[i / block]++;
                for (int o = 0; o < c; o++) {
                    double q = aq[c * c + o];
                    double k = ak[c * c + o];
                    for (int e = 0; e < c; e++) {
                        q += x[(b * t + i) * c + e] * aq[e * c + o];
                        k += x[(b * t + i) * c + e] * ak[e * c + o];
                    }
                    qBar[i / block][o] += q;
                    kBar[i / block][o] += k;
                }
            }
            for (int h = 0; h < nh; h++) {
                for (int qb = 0; qb < nQB; qb++) {
                    for (int kb = 0; kb <= qb; kb++) {
                        if (count[qb] == 0 || count[kb] == 0) {
                            continue;
                        }
                        double logit = 0;
                        for (int o = h * hs; o < (h + 1) * hs; o++) {
                            logit += qBar[qb][o] / count[qb] * kBar[kb][o] / count[kb];
                        }
                        logit /= Math.sqrt(hs);
                        assertThat(sc.s()[b][h][qb][kb]).as("b %d h %d tile (%d, %d)", b, h, qb, kb)
                                .isCloseTo(logit, org.assertj.core.data.Offset.offset(1e-4 * (1 + Math.abs(logit))));
                    }
                }
            }
        }
        // the layout: causal, diagonal and sink always kept, each row's kept predicted mass reaches the coverage
        double[][][][] dist = p.distribution(sc);
        boolean[][][] keep = AttentionPredictor.select(dist, nh, nQB, 0.6);
        for (int h = 0; h < nh; h++) {
            for (int qb = 0; qb < nQB; qb++) {
                assertThat(keep[h][qb][qb]).isTrue();
                assertThat(keep[h][qb][0]).isTrue();
                double kept = 0;
                double total = 0;
                for (int kb = 0; kb < nQB; kb++) {
                    if (kb > qb) {
                        assertThat(keep[h][qb][kb]).isFalse();
                        continue;
                    }
                    for (double[][][] seq : dist) {
                        total += seq[h][qb][kb];
                        kept += keep[h][qb][kb] ? seq[h][qb][kb] : 0;
                    }
                }
                assertThat(kept).isGreaterThanOrEqualTo(0.6 * total - 1e-12);
            }
        }
    }

    private static Path fixture() throws URISyntaxException {
        return Path.of(PredictorsTest.class.getResource("/fixtures/opt-preln/meta.json").toURI()).getParent();
    }

    private static List<Batch> batches(Path dir) {
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("batches.safetensors"))) {
            Tensor ids = f.tensor("input_ids");
            int nb = ids.shape().idim(0);
            int b = ids.shape().idim(1);
            int t = ids.shape().idim(2);
            Batch[] out = new Batch[nb];
            for (int i = 0; i < nb; i++) {
                out[i] = new Batch(b, t, ints(ids, i), ints(f.tensor("attention_mask"), i),
                        ints(f.tensor("labels"), i));
            }
            return List.of(out);
        }
    }

    private static int[] ints(Tensor t, int i) {
        int per = Math.toIntExact(t.numel() / t.shape().dim(0));
        int[] out = new int[per];
        for (int j = 0; j < per; j++) {
            out[j] = t.getInt((long) i * per + j);
        }
        return out;
    }

    /**
     * The attention predictor built from the model's parameters (frozen q/k weights, LoRA deltas with a non-zero B,
     * biases) against one least-squares fit of q and k on the same model's activations: at full rank both are the
     * layer's exact bilinear form on the data, so their tile scores agree (to the fit's relative ridge of 1e-4).
     */
    @Test
    void attentionPredictorFromWeightsMatchesTheFitToActivations() throws Exception {
        Path dir = fixture();
        List<Batch> train = batches(dir);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(dir.resolve("model"), be)) {
            TrainableParams params = new TrainableParams();
            Lora.apply(lm, new LoraConfig(2, 4f, 0f, List.of("q_proj", "k_proj"), false), be, params, 3);
            SplittableRandom rng = new SplittableRandom(4);
            for (TrainableParams.Param prm : params.all()) {
                float[] v = new float[Math.toIntExact(prm.value().numel())];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) rng.nextDouble(-0.5, 0.5);
                }
                prm.value().copyFrom(v);
            }
            ModelConfig mc = lm.config();
            int c = mc.hiddenSize();
            int d = c + 1;
            int hs = mc.headSize();
            Batch probe = train.get(0);
            ForwardState st = lm.allocate(probe.batchSize(), probe.seqLen());
            for (int l = 0; l < mc.numLayers(); l++) {
                double[] xtx = new double[d * d];
                double[] xtq = new double[d * c];
                double[] xtk = new double[d * c];
                for (Batch b : train) {
                    lm.forward(st, b, false);
                    LayerActivations a = st.layer(l);
                    float[] x = Tensors.toFloats(be, a.attnIn());
                    PredictorFit.accumulate(xtx, xtq, x, Tensors.toFloats(be, a.q()), b.attentionMask(), c, c);
                    PredictorFit.accumulate(null, xtk, x, Tensors.toFloats(be, a.k()), b.attentionMask(), c, c);
                }
                AttentionPredictor fitted = PredictorFit.fitAttention(xtx, xtq, xtk, c, mc.numHeads(), hs, 4);
                AttentionPredictor exact = PredictorFit.attentionFromWeights(be, lm, l, hs, 4);
                lm.forward(st, probe, false);
                float[] x = Tensors.toFloats(be, st.layer(l).attnIn());
                double[][][][] sf = fitted.scores(x, probe.attentionMask(), probe.batchSize(), probe.seqLen()).s();
                double[][][][] se = exact.scores(x, probe.attentionMask(), probe.batchSize(), probe.seqLen()).s();
                double scale = 0;
                for (double[][][] b3 : se) {
                    for (double[][] h2 : b3) {
                        for (double[] row : h2) {
                            for (double v : row) {
                                scale = Math.max(scale, Math.abs(v));
                            }
                        }
                    }
                }
                assertThat(scale).as("layer %d score scale", l).isGreaterThan(0.1);
                for (int b = 0; b < se.length; b++) {
                    for (int h = 0; h < se[b].length; h++) {
                        for (int qb = 0; qb < se[b][h].length; qb++) {
                            for (int kb = 0; kb < se[b][h][qb].length; kb++) {
                                assertThat(se[b][h][qb][kb]).as("layer %d b %d head %d tile (%d, %d)", l, b, h, qb, kb)
                                        .isCloseTo(sf[b][h][qb][kb], org.assertj.core.data.Offset.offset(2e-3 * scale));
                            }
                        }
                    }
                }
            }
        }
    }

    /** The per-head factorisations and the MLP scorer on a backend's host threads give the sequential results. */
    @Test
    void headsFactorisedInParallelEqualTheSequentialResult() {
        SplittableRandom rng = new SplittableRandom(9);
        int c = 40;
        int nh = 5;
        double[] aq = new double[(c + 1) * c];
        double[] ak = new double[(c + 1) * c];
        for (int i = 0; i < aq.length; i++) {
            aq[i] = rng.nextDouble(-1, 1);
            ak[i] = rng.nextDouble(-1, 1);
        }
        AttentionPredictor seq = AttentionPredictor.fromAffineMaps(aq, ak, c, nh, 3, 16);
        // the MLP scorer's rows in chunks on the threads, 150 rows with a few padded
        int ffn = 70;
        float[] w = new float[5 * (c + 1)];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rng.nextDouble(-1, 1);
        }
        MlpPredictor mlp = new MlpPredictor(c, ffn, 16, 32, w, 1.0);
        int rows = 150;
        float[] x = new float[rows * c];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rng.nextDouble(-2, 2);
        }
        int[] mask = new int[rows];
        for (int t = 0; t < rows; t++) {
            mask[t] = t % 17 == 5 ? 0 : 1;
        }
        try (CpuBackend be = new CpuBackend(3)) {
            AttentionPredictor par = AttentionPredictor.fromAffineMaps(aq, ak, c, nh, 3, 16, be::hostParallelFor);
            assertThat(par.pq).containsExactly(seq.pq);
            assertThat(par.pk).containsExactly(seq.pk);
            assertThat(mlp.blockScores(x, mask, rows, be::hostParallelFor))
                    .isDeepEqualTo(mlp.blockScores(x, mask, rows));
        }
    }

    @Test
    void fitMeetsItsTargetsOnTheTrainingDataAndRoundTripsThroughFiles(@TempDir Path tmp) throws Exception {
        Path dir = fixture();
        List<Batch> train = batches(dir);
        PredictorFit.Config cfg = new PredictorFit.Config(3, 3, 0.9, 12, 5, 0.95);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(dir.resolve("model"), be)) {
            Predictors p = PredictorFit.fit(be, lm, train, cfg);
            PredictorFit.Report r = PredictorFit.evaluate(be, lm, p, train, cfg);
            assertThat(r.layers()).hasSize(2);
            for (PredictorFit.LayerReport l : r.layers()) {
                assertThat(l.attnRecall()).as("layer %d attention recall", l.layer()).isGreaterThanOrEqualTo(0.9);
                assertThat(l.mlpRecall()).as("layer %d MLP recall", l.layer()).isGreaterThanOrEqualTo(0.95);
                assertThat(l.attnDensity()).isBetween(0.0, 1.0);
                assertThat(l.mlpDensity()).isBetween(0.0, 1.0);
            }
            p.budgets(0.5, new int[] {1, p.mlp(1).maxBlocks()});
            p.save(tmp.resolve("pred"));
            Predictors back = Predictors.load(tmp.resolve("pred"));
            assertThat(back.attention(0).maxRowFraction()).isEqualTo(0.5);
            assertThat(back.mlp(0).maxBlocks()).isEqualTo(1);
            assertThat(back.mlp(1).maxBlocks()).isEqualTo(p.mlp(1).maxBlocks());
            Batch b = train.get(1);
            ForwardState st = lm.allocate(b.batchSize(), b.seqLen());
            lm.forward(st, b, false);
            for (int l = 0; l < 2; l++) {
                LayerActivations a = st.layer(l);
                float[] x = Tensors.toFloats(be, a.attnIn());
                float[] m = Tensors.toFloats(be, a.mlpIn());
                int[] mask = b.attentionMask();
                assertThat(back.attention(l).keep(x, mask, b.batchSize(), b.seqLen()))
                        .isDeepEqualTo(p.attention(l).keep(x, mask, b.batchSize(), b.seqLen()));
                assertThat(back.mlp(l).keep(m, mask, mask.length)).isDeepEqualTo(p.mlp(l).keep(m, mask, mask.length));
                assertThat(back.attention(l).coverage()).isEqualTo(p.attention(l).coverage());
            }
        }
    }

    @Test
    void withFullCoverageThePredictedPlanReproducesTheDenseModel() throws Exception {
        Path dir = fixture();
        List<Batch> train = batches(dir);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(dir.resolve("model"), be)) {
            Predictors p = PredictorFit.fit(be, lm, train.subList(0, 1), new PredictorFit.Config(4, 2, 0.9, 16, 7,
                    0.9));
            Batch b = train.get(1);
            ForwardState st = lm.allocate(b.batchSize(), b.seqLen());
            double dense = lm.forwardLoss(st, b, 0f, false);
            for (int l = 0; l < 2; l++) {
                p.attention(l).coverage = 1;
                p.mlp(l).coverage = 1;
                p.mlp(l).maxBlocks(Integer.MAX_VALUE);   // no budget
            }
            lm.sparsity(p.plan(be, true, true));
            assertThat(lm.forwardLoss(st, b, 0f, false)).isEqualTo(dense);
            for (int l = 0; l < 2; l++) {
                p.attention(l).coverage = 0.3;
                p.mlp(l).coverage = 0.3;
            }
            assertThat(lm.forwardLoss(st, b, 0f, false)).as("a sparse plan changes the loss").isNotEqualTo(dense);
        }
    }

    @Test
    void loadNamesTheFileAndFieldOfBadInput(@TempDir Path tmp) throws Exception {
        Path d = tmp.resolve("p");
        Files.createDirectories(d);
        Files.writeString(d.resolve(Predictors.JSON), "{\"format\": \"longexposure-predictors\", \"version\": 1,"
                + " \"hidden_size\": 0}");
        assertThatThrownBy(() -> Predictors.load(d)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining(Predictors.JSON).hasMessageContaining("hidden_size");
        Files.writeString(d.resolve(Predictors.JSON), "{\"format\": \"other\"}");
        assertThatThrownBy(() -> Predictors.load(d)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("format");
        Path fit = fixture();
        try (CpuBackend be = new CpuBackend(1); CausalLm lm = Architecture.load(fit.resolve("model"), be)) {
            PredictorFit.fit(be, lm, batches(fit).subList(0, 1), new PredictorFit.Config(4, 2, 0.9, 16, 7, 0.9))
                    .save(d);
        }
        String json = Files.readString(d.resolve(Predictors.JSON));
        Files.writeString(d.resolve(Predictors.JSON), json.replaceFirst("\"attn_coverage\"",
                "\"attn_max_row_fraction\" : 1.5, \"attn_coverage\""));
        assertThatThrownBy(() -> Predictors.load(d)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("layers[0].attn_max_row_fraction").hasMessageContaining("(0, 1]");
        Files.writeString(d.resolve(Predictors.JSON), json.replaceFirst("\"attn_coverage\"",
                "\"mlp_max_blocks\" : -2, \"attn_coverage\""));
        assertThatThrownBy(() -> Predictors.load(d)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("layers[0].mlp_max_blocks");
        Files.writeString(d.resolve(Predictors.JSON), "{\"format\": \"other\"}");
        assertThatThrownBy(() -> Predictors.load(d)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("format");
    }
}
