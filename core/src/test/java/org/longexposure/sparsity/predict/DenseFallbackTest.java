package org.longexposure.sparsity.predict;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.sparsity.predict.OnlineFixtures.batch;
import static org.longexposure.sparsity.predict.OnlineFixtures.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.SparsityPlan;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Auto's dense fallback saved with the predictors (pre-LN fixture, 2 layers, random-token micro-batches, 5-token
 * tiles): the decisions of a refresh go into predictors.json and come back from it; the predictors' plans and an
 * {@link OnlineSparsity} built from loaded predictors run exactly the marked parts dense; a version 1 file (no
 * fallback fields) loads with no fallback; a malformed field is refused naming the file and the field.
 */
class DenseFallbackTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void refreshDecisionsRoundTripAndAreHonouredWhenLoaded(@TempDir Path tmp) throws Exception {
        SplittableRandom rng = new SplittableRandom(31);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(model(), be)) {
            int vocab = lm.config().vocabSize();
            ForwardState st = lm.allocate(3, 37);
            Predictors fitted = PredictorFit.fit(be, lm, st, List.of(batch(rng, 3, 37, vocab)),
                    new PredictorFit.Config(5, 3, 0.9, 16, 7, 0.95));
            Batch b = batch(rng, 3, 37, vocab);
            lm.forward(st, b, false);
            OnlineSparsity probe = new OnlineSparsity(be, lm, fitted,
                    new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO, 0.9, 0.95, 1.0));
            OnlineSparsity.Refresh r0 = probe.refresh(st, b);
            // a threshold between the two layers' attention densities: one layer dense, the other sparse
            double threshold = (r0.attnDensity()[0] + r0.attnDensity()[1]) / 2;
            assertThat(r0.attnDensity()[0]).as("the layers' densities differ").isNotEqualTo(r0.attnDensity()[1]);
            OnlineSparsity auto = new OnlineSparsity(be, lm, fitted,
                    new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO, 0.9, 0.95, threshold));
            lm.forward(st, b, false);
            OnlineSparsity.Refresh r = auto.refresh(st, b);
            assertThat(r.attnDense()[0]).isNotEqualTo(r.attnDense()[1]);

            Path dir = tmp.resolve("pred");
            auto.predictors().save(dir);
            ObjectNode root = (ObjectNode) JSON.readTree(dir.resolve(Predictors.JSON).toFile());
            assertThat(root.get("version").asInt()).isEqualTo(2);
            Predictors back = Predictors.load(dir);
            for (int l = 0; l < 2; l++) {
                assertThat(root.get("layers").get(l).get("attn_dense").asBoolean()).isEqualTo(r.attnDense()[l]);
                assertThat(back.attentionDense(l)).isEqualTo(r.attnDense()[l]);
                assertThat(back.mlpDense(l)).isEqualTo(r.mlpDense()[l]);
                assertThat(fitted.attentionDense(l)).isFalse();
            }

            // honoured: mode on (eval, finetune --sparsity on) and the backend plan run the marked parts dense
            OnlineSparsity on = new OnlineSparsity(be, lm, back,
                    new OnlineSparsity.Settings(OnlineSparsity.Mode.ON, 1, 1, 1));
            SparsityPlan plan = back.plan(be, true, true);
            Tensor keyMask = be.allocate(DType.I32, b.attentionMask().length);
            Tensors.copyFrom(be, keyMask, b.attentionMask());
            for (int l = 0; l < 2; l++) {
                SparsityPlan.Input ai = new SparsityPlan.Input(3, 37, st.layer(l).attnIn(), b.attentionMask(),
                        keyMask);
                SparsityPlan.Input mi = new SparsityPlan.Input(3, 37, st.layer(l).mlpIn(), b.attentionMask(),
                        keyMask);
                assertThat(on.attentionDense(l)).isEqualTo(r.attnDense()[l]);
                assertThat(on.attention(l, ai) == null).as("layer %d attention dense", l).isEqualTo(r.attnDense()[l]);
                assertThat(on.mlp(l, mi) == null).as("layer %d MLP dense", l).isEqualTo(r.mlpDense()[l]);
                assertThat(plan.attention(l, ai) == null).isEqualTo(r.attnDense()[l]);
                assertThat(plan.mlp(l, mi) == null).isEqualTo(r.mlpDense()[l]);
            }
            OnlineSparsity.StepDensity d = on.takeStep();
            for (int l = 0; l < 2; l++) {
                if (r.attnDense()[l]) {
                    assertThat(d.attn()[l]).isEqualTo(1.0);
                } else {
                    assertThat(d.attn()[l]).isLessThan(1.0);
                }
            }
        }
    }

    @Test
    void versionOneFilesHaveNoFallbackAndMalformedFieldsAreNamed(@TempDir Path tmp) throws Exception {
        SplittableRandom rng = new SplittableRandom(32);
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(model(), be)) {
            int vocab = lm.config().vocabSize();
            ForwardState st = lm.allocate(2, 23);
            Predictors fitted = PredictorFit.fit(be, lm, st, List.of(batch(rng, 2, 23, vocab)),
                    new PredictorFit.Config(5, 3, 0.9, 16, 7, 0.95));
            Path dir = tmp.resolve("pred");
            new Predictors(List.of(fitted.attention(0), fitted.attention(1)), List.of(fitted.mlp(0), fitted.mlp(1)),
                    new boolean[] {true, true}, new boolean[] {true, false}).save(dir);
            Path json = dir.resolve(Predictors.JSON);
            ObjectNode root = (ObjectNode) JSON.readTree(json.toFile());

            // as written before the fallback was recorded: version 1, no fallback fields
            ObjectNode v1 = root.deepCopy();
            v1.put("version", 1);
            v1.get("layers").forEach(l -> ((ObjectNode) l).remove(List.of("attn_dense", "mlp_dense")));
            Files.writeString(json, v1.toPrettyString());
            Predictors old = Predictors.load(dir);
            for (int l = 0; l < 2; l++) {
                assertThat(old.attentionDense(l)).isFalse();
                assertThat(old.mlpDense(l)).isFalse();
                assertThat(old.attention(l).coverage()).isEqualTo(fitted.attention(l).coverage());
            }

            ObjectNode bad = root.deepCopy();
            ((ObjectNode) bad.get("layers").get(1)).put("attn_dense", "yes");
            Files.writeString(json, bad.toPrettyString());
            assertThatThrownBy(() -> Predictors.load(dir)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining(Predictors.JSON).hasMessageContaining("layers[1].attn_dense")
                    .hasMessageContaining("yes");

            ObjectNode future = root.deepCopy();
            future.put("version", 9);
            Files.writeString(json, future.toPrettyString());
            assertThatThrownBy(() -> Predictors.load(dir)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("version").hasMessageContaining("9");
        }
    }
}
