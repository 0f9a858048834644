package org.longexposure.sparsity.predict;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.sparsity.predict.OnlineFixtures.batch;
import static org.longexposure.sparsity.predict.OnlineFixtures.model;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.Tensors;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.SparsityPlan;
import org.longexposure.tensor.Tensor;
import org.longexposure.tensor.DType;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;

/**
 * Online sparsity on the pre-LN fixture (2 layers, 4 heads of 12, H = 80) with random-token micro-batches and
 * 5-token tiles: a refresh follows a change of q (LoRA on layer 0's q_proj with large random factors, as many
 * large-LR steps would leave it; layer 0's input does not depend on any adapter, so only q moved), so that on a
 * further held-out micro-batch the refreshed predictor keeps more of the true attention mass than the stale one at
 * the same coverage; and auto mode runs exactly the layer parts whose realised density on the refresh micro-batch
 * is above the threshold dense.
 */
class OnlineSparsityTest {
    private static final PredictorFit.Config CFG = new PredictorFit.Config(5, 3, 0.9, 16, 7, 0.95);

    @Test
    void aRefreshAfterQChangesRecoversRecallOnHeldOutData() throws Exception {
        SplittableRandom rng = new SplittableRandom(11);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(model(), be)) {
            int vocab = lm.config().vocabSize();
            List<Batch> fit = List.of(batch(rng, 3, 37, vocab), batch(rng, 3, 37, vocab));
            ForwardState st = lm.allocate(3, 37);
            Predictors p = PredictorFit.fit(be, lm, st, fit, new PredictorFit.Config(5, 12, 0.9, 16, 7, 0.95));
            TrainableParams params = new TrainableParams();
            Lora.apply(lm, new LoraConfig(4, 8, 0, List.of("model.decoder.layers.0.self_attn.q_proj"), false), be,
                    params, 5);
            for (TrainableParams.Param prm : params.all()) {
                float[] v = new float[Math.toIntExact(prm.value().numel())];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) rng.nextDouble(-3, 3);
                }
                Tensors.copyFrom(be, prm.value(), v);
            }
            OnlineSparsity.Settings on = new OnlineSparsity.Settings(OnlineSparsity.Mode.ON, 0.9, 0.95, 0.85);
            st = lm.allocate(2, 63);   // with the adapters' buffers
            OnlineSparsity stale = new OnlineSparsity(be, lm, p, on);
            OnlineSparsity refreshed = new OnlineSparsity(be, lm, p, on);
            lm.sparsity(SparsityPlan.DENSE);
            Batch probe = batch(rng, 2, 63, vocab);
            lm.forward(st, probe, false);
            refreshed.refresh(st, probe);
            Batch heldOut = batch(rng, 2, 63, vocab);
            lm.forward(st, heldOut, false);
            OnlineSparsity.Refresh rs = stale.refresh(st, heldOut);
            OnlineSparsity.Refresh rf = refreshed.refresh(st, heldOut);
            assertThat(rf.attnRecallStale()[0]).as("layer 0: refreshed vs stale recall")
                    .isGreaterThan(rs.attnRecallStale()[0] + 0.02);
        }
    }

    @Test
    void autoRunsDenseExactlyWhereTheRealisedDensityIsAboveTheThreshold() throws Exception {
        SplittableRandom rng = new SplittableRandom(12);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(model(), be)) {
            int vocab = lm.config().vocabSize();
            ForwardState st = lm.allocate(3, 37);
            Predictors p = PredictorFit.fit(be, lm, st, List.of(batch(rng, 3, 37, vocab)), CFG);
            Batch b = batch(rng, 3, 37, vocab);
            lm.forward(st, b, false);
            OnlineSparsity probe = new OnlineSparsity(be, lm, p,
                    new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO, 0.9, 0.95, 1.0));
            OnlineSparsity.Refresh r0 = probe.refresh(st, b);
            double[] dens = new double[4];
            System.arraycopy(r0.attnDensity(), 0, dens, 0, 2);
            System.arraycopy(r0.mlpDensity(), 0, dens, 2, 2);
            java.util.Arrays.sort(dens);
            assertThat(dens[0]).as("densities differ between layer parts").isLessThan(dens[3]);
            double threshold = (dens[1] + dens[2]) / 2;
            OnlineSparsity auto = new OnlineSparsity(be, lm, p,
                    new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO, 0.9, 0.95, threshold));
            OnlineSparsity.Refresh r = auto.refresh(st, b);
            Tensor keyMask = be.allocate(DType.I32, b.attentionMask().length);
            Tensors.copyFrom(be, keyMask, b.attentionMask());
            int dense = 0;
            for (int l = 0; l < 2; l++) {
                assertThat(r.attnDense()[l]).isEqualTo(r.attnDensity()[l] > threshold);
                assertThat(r.mlpDense()[l]).isEqualTo(r.mlpDensity()[l] > threshold);
                assertThat(auto.attentionDense(l)).isEqualTo(r.attnDense()[l]);
                assertThat(auto.mlpDense(l)).isEqualTo(r.mlpDense()[l]);
                dense += (r.attnDense()[l] ? 1 : 0) + (r.mlpDense()[l] ? 1 : 0);
                // the plan on the same layer inputs: no layout where dense, else the predictor's choice
                SparsityPlan.Input ai = new SparsityPlan.Input(3, 37, st.layer(l).attnIn(), b.attentionMask(),
                        keyMask);
                SparsityPlan.Input mi = new SparsityPlan.Input(3, 37, st.layer(l).mlpIn(), b.attentionMask(),
                        keyMask);
                assertThat(auto.attention(l, ai) == null).isEqualTo(r.attnDense()[l]);
                assertThat(auto.mlp(l, mi) == null).isEqualTo(r.mlpDense()[l]);
            }
            OnlineSparsity.StepDensity d = auto.takeStep();
            for (int l = 0; l < 2; l++) {
                assertThat(d.attn()[l]).isEqualTo(r.attnDense()[l] ? 1.0 : r.attnDensity()[l]);
                assertThat(d.mlp()[l]).isCloseTo(r.mlpDense()[l] ? 1.0 : r.mlpDensity()[l],
                        org.assertj.core.data.Offset.offset(1e-12));
            }
            assertThat(dense).as("the median threshold splits the parts").isBetween(1, 3);
        }
    }

    @Test
    void settingsAndModesAreValidated() {
        assertThat(OnlineSparsity.Mode.parse("Auto")).isEqualTo(OnlineSparsity.Mode.AUTO);
        assertThatThrownBy(() -> OnlineSparsity.Mode.parse("sometimes")).hasMessageContaining("sometimes")
                .hasMessageContaining("off, on, auto");
        assertThatThrownBy(() -> new OnlineSparsity.Settings(OnlineSparsity.Mode.OFF, 0.9, 0.9, 0.85))
                .hasMessageContaining("on or auto");
        assertThatThrownBy(() -> new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO, 1.5, 0.9, 0.85))
                .hasMessageContaining("(0, 1]");
        assertThatThrownBy(() -> new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO, 0.9, 0.9, -0.1))
                .hasMessageContaining("[0, 1]");
    }
}
