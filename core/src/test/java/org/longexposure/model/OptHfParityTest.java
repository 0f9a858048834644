package org.longexposure.model;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;
import org.longexposure.train.LrSchedule;
import org.longexposure.train.StepResult;
import org.longexposure.train.TrainConfig;
import org.longexposure.train.Trainer;

/**
 * Parity with Hugging Face: fixtures made by {@code tools/fixtures/gen_opt_fixtures.py} with transformers'
 * {@code OPTForCausalLM} and peft's LoRA, computed in float64. Our float32 CPU engine must match the logits and the
 * loss within 1e-4 relative, the LoRA gradients and a 20-step AdamW trajectory (losses, gradient norms, final
 * weights) within 1e-3. One pre-LN config, and one post-LN config with word_embed_proj_dim ≠ hidden_size, rsLoRA
 * and LoRA on every linear.
 */
class OptHfParityTest {
    /** Logits and loss: 1e-4 relative (the bar), with a small absolute floor for logits near zero. */
    private static final Tolerances.Tol LOGITS = new Tolerances.Tol(1e-5, 1e-4);
    /** Gradients and the 20-step trajectory: 1e-3 relative. */
    private static final Tolerances.Tol GRADS = new Tolerances.Tol(1e-6, 1e-3);

    private static Path fixture(String name) throws URISyntaxException {
        return Path.of(OptHfParityTest.class.getResource("/fixtures/" + name + "/meta.json").toURI()).getParent();
    }

    /** Batch {@code i} of the fixture's (NB, B, T) int32 tensors. */
    private static Batch batch(SafetensorsFile f, int i) {
        Tensor ids = f.tensor("input_ids");
        int b = ids.shape().idim(1);
        int t = ids.shape().idim(2);
        return new Batch(b, t, ints(ids, i), ints(f.tensor("attention_mask"), i), ints(f.tensor("labels"), i));
    }

    private static int[] ints(Tensor t, int i) {
        int per = Math.toIntExact(t.numel() / t.shape().dim(0));
        int[] out = new int[per];
        for (int j = 0; j < per; j++) {
            out[j] = t.getInt((long) i * per + j);
        }
        return out;
    }

    private static double[] doubles(Tensor t) {
        double[] out = new double[Math.toIntExact(t.numel())];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getFloat(i);
        }
        return out;
    }

    /** A model with the fixture's adapter loaded, on a fresh backend. */
    private record Setup(CpuBackend be, CausalLm model, TrainableParams params) implements AutoCloseable {
        static Setup of(Path dir) {
            CpuBackend be = new CpuBackend(2);
            CausalLm model = Architecture.load(dir.resolve("model"), be);
            LoraConfig cfg = PeftAdapterIO.readLoraConfig(dir.resolve("adapter"));
            TrainableParams params = new TrainableParams();
            Lora.apply(model, cfg, be, params, 7);
            PeftAdapterIO.loadWeights(be, dir.resolve("adapter"), params);
            return new Setup(be, model, params);
        }

        @Override
        public void close() {
            model.close();
            be.close();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt-preln", "opt-postln"})
    void logitsLossAndLoraGradientsMatchHuggingFace(String name) throws Exception {
        Path dir = fixture(name);
        try (Setup s = Setup.of(dir);
             SafetensorsFile batches = SafetensorsFile.open(dir.resolve("batches.safetensors"));
             SafetensorsFile expected = SafetensorsFile.open(dir.resolve("expected.safetensors"))) {
            Batch b0 = batch(batches, 0);
            ForwardState state = s.model.allocate(b0.batchSize(), b0.seqLen());
            double loss = s.model.forwardLoss(state, b0, 0f, false);

            // logits at real (non-padding) positions; padded query rows are undefined in HF too
            float[] logits = state.logits().toFloatArray();
            double[] ref = doubles(expected.tensor("logits"));
            int v = s.model.config().vocabSize();
            List<Float> ours = new ArrayList<>();
            List<Double> theirs = new ArrayList<>();
            for (int row = 0; row < b0.batchSize() * b0.seqLen(); row++) {
                if (b0.attentionMask()[row] == 0) {
                    continue;
                }
                for (int j = 0; j < v; j++) {
                    ours.add(logits[row * v + j]);
                    theirs.add(ref[row * v + j]);
                }
            }
            float[] o = new float[ours.size()];
            double[] r = new double[theirs.size()];
            for (int i = 0; i < o.length; i++) {
                o[i] = ours.get(i);
                r[i] = theirs.get(i);
            }
            TensorAssert.assertClose(name + " logits", LOGITS, o, r, o.length);
            double refLoss = expected.tensor("loss").getFloat(0);
            assertThat(Math.abs(loss - refLoss)).as("loss %s vs HF %s", loss, refLoss)
                    .isLessThanOrEqualTo(1e-4 * Math.abs(refLoss));

            s.params.zeroGrad(s.be);
            s.model.backward(state, 1f);
            for (TrainableParams.Param p : s.params.all()) {
                TensorAssert.assertClose(name + " grad " + p.name(), GRADS, p.grad().toFloatArray(),
                        doubles(expected.tensor("grad/" + p.name())), (int) p.grad().numel());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt-preln", "opt-postln"})
    void twentyAdamWStepsFollowHuggingFaceTrajectory(String name) throws Exception {
        Path dir = fixture(name);
        try (Setup s = Setup.of(dir);
             SafetensorsFile batches = SafetensorsFile.open(dir.resolve("batches.safetensors"));
             SafetensorsFile expected = SafetensorsFile.open(dir.resolve("expected.safetensors"))) {
            int nb = batches.tensor("input_ids").shape().idim(0);
            Batch first = batch(batches, 0);
            TrainConfig cfg = new TrainConfig(LrSchedule.constant(1e-2), 0.01f, 0.9f, 0.999f, 1e-8f, 1.0f, 0f, 1);
            Trainer trainer = new Trainer(s.be, s.model, s.params, cfg, first.batchSize(), first.seqLen());
            double[] refLoss = doubles(expected.tensor("trajectory/loss"));
            double[] refNorm = doubles(expected.tensor("trajectory/grad_norm"));
            float[] loss = new float[refLoss.length];
            float[] norm = new float[refLoss.length];
            for (int step = 0; step < refLoss.length; step++) {
                StepResult r = trainer.step(List.of(batch(batches, step % nb)));
                loss[step] = (float) r.loss();
                norm[step] = (float) r.gradNorm();
            }
            TensorAssert.assertClose(name + " trajectory loss", GRADS, loss, refLoss, loss.length);
            TensorAssert.assertClose(name + " trajectory grad norm", GRADS, norm, refNorm, norm.length);
            for (TrainableParams.Param p : s.params.all()) {
                TensorAssert.assertClose(name + " final " + p.name(), GRADS, p.value().toFloatArray(),
                        doubles(expected.tensor("final/" + p.name())), (int) p.value().numel());
            }
        }
    }
}
