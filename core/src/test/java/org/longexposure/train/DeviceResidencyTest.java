package org.longexposure.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.FakeDeviceBackend;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.io.data.DataLoader;
import org.longexposure.io.data.Example;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.peft.lora.LoraLayer;
import org.longexposure.sparsity.exposer.Exposer;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.sparsity.mask.NeuronLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The model, LoRA, trainer, checkpoint, adapter IO and Exposer code never touch a backend's tensors except through
 * the backend: on {@link FakeDeviceBackend} (device-like storage that throws on any direct host access, ops that
 * reject tensors they did not allocate) a LoRA run with dropout, gradient accumulation and clipping, its adapter and
 * checkpoint files, a resume from that checkpoint, an adapter reload and a profiling pass all equal the plain CPU
 * backend's bit for bit (same kernels underneath, so any difference is a missed or wrong copy).
 */
class DeviceResidencyTest {
    private static final int STEPS = 3;
    private static final int SAVE_AT = 2;

    private static Path fixture(String name) throws Exception {
        return Path.of(DeviceResidencyTest.class.getResource("/fixtures/" + name + "/model/config.json").toURI())
                .getParent();
    }

    private record Run(Backend be, CausalLm lm, TrainableParams params, List<LoraLayer> layers, Trainer trainer,
                       DataLoader loader, LoraConfig lora) implements AutoCloseable {
        static Run start(Backend be, Path model, List<String> targets) {
            CausalLm lm = Architecture.load(model, be);
            TrainableParams params = new TrainableParams();
            LoraConfig lora = new LoraConfig(3, 8, 0.2f, targets, false);
            List<LoraLayer> layers = Lora.apply(lm, lora, be, params, 17);
            TrainConfig tc = new TrainConfig(new LrSchedule(LrSchedule.Kind.COSINE, 5e-3, 1, STEPS), 0.01f, 0.9f,
                    0.999f, 1e-8f, 0.5f, 0.1f, 2);
            Trainer trainer = new Trainer(be, lm, params, tc, 3, 11);
            SplittableRandom rng = new SplittableRandom(9);
            List<Example> rows = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                int len = 3 + rng.nextInt(9);
                int[] ids = new int[len];
                for (int j = 0; j < len; j++) {
                    ids[j] = rng.nextInt(3, 211);
                }
                rows.add(new Example(i + 1, ids, ids.clone()));
            }
            return new Run(be, lm, params, layers, trainer, new DataLoader(rows, 3, 11, 1, true, 5), lora);
        }

        StepResult step() {
            return trainer.step(List.of(loader.next(), loader.next()));
        }

        Path checkpoint(Path dir) {
            return Checkpoint.save(be, dir, lora, params, trainer.optimizer(), new Checkpoint.State(SAVE_AT,
                    loader.cursor(), layers.stream().map(LoraLayer::forwardCount).toList(),
                    JsonNodeFactory.instance.objectNode()), "fixture");
        }

        void resume(Path ckpt) {
            Checkpoint.State st = Checkpoint.load(be, ckpt, params, trainer.optimizer());
            loader.seek(st.cursor());
            for (int i = 0; i < layers.size(); i++) {
                layers.get(i).setForwardCount(st.dropoutCounters().get(i));
            }
        }

        float[][] weights() {
            return params.all().stream().map(p -> Tensors.toFloats(be, p.value())).toArray(float[][]::new);
        }

        @Override
        public void close() {
            lm.close();
            be.close();
        }
    }

    /** What one backend produced: step results, final weights, file bytes, reloaded-adapter loss and logits. */
    private record Outcome(List<StepResult> steps, float[][] weights, List<byte[]> files, List<StepResult> resumed,
                           float[][] resumedWeights, double reloadLoss, float[] reloadLogits, String exposure) {
    }

    private static Outcome run(IntFunction<Backend> backends, Path model, List<String> targets, Path out)
            throws Exception {
        List<StepResult> steps = new ArrayList<>();
        List<byte[]> files = new ArrayList<>();
        float[][] weights;
        Path ckpt;
        Path adapter = out.resolve("adapter");
        try (Run r = Run.start(backends.apply(2), model, targets)) {
            for (int s = 1; s <= STEPS; s++) {
                steps.add(r.step());
                if (s == SAVE_AT) {
                    ckpt = r.checkpoint(out.resolve("checkpoints"));
                    files.add(Files.readAllBytes(ckpt.resolve(PeftAdapterIO.WEIGHTS)));
                    files.add(Files.readAllBytes(ckpt.resolve(Checkpoint.OPTIMIZER)));
                }
            }
            weights = r.weights();
            PeftAdapterIO.write(r.be, adapter, r.lora, r.params, "fixture");
            files.add(Files.readAllBytes(adapter.resolve(PeftAdapterIO.WEIGHTS)));
        }
        List<StepResult> resumed = new ArrayList<>();
        float[][] resumedWeights;
        try (Run r = Run.start(backends.apply(2), model, targets)) {
            r.resume(Checkpoint.latest(out.resolve("checkpoints")).orElseThrow());
            for (int s = SAVE_AT + 1; s <= STEPS; s++) {
                resumed.add(r.step());
            }
            resumedWeights = r.weights();
        }
        Batch batch = evalBatch();
        try (Backend be = backends.apply(2); CausalLm lm = Architecture.load(model, be)) {
            TrainableParams params = new TrainableParams();
            Lora.apply(lm, PeftAdapterIO.readLoraConfig(adapter), be, params, 0);
            PeftAdapterIO.loadWeights(be, adapter, params);
            ForwardState st = lm.allocate(batch.batchSize(), batch.seqLen());
            double loss = lm.forwardLoss(st, batch, 0f, false);
            float[] logits = Tensors.toFloats(be, st.logits());
            String exposure = Exposer.expose(be, lm, List.of(batch), new Exposer.Config(16, 5, 0.05, 0.9))
                    .toJson().toString();
            return new Outcome(steps, weights, files, resumed, resumedWeights, loss, logits, exposure);
        }
    }

    private static Batch evalBatch() {
        int b = 2;
        int t = 9;
        SplittableRandom rng = new SplittableRandom(21);
        int[] ids = new int[b * t];
        int[] mask = new int[b * t];
        for (int i = 0; i < ids.length; i++) {
            boolean real = i < t || i % t < 6; // second row right-padded after 6 tokens
            ids[i] = real ? rng.nextInt(3, 211) : 1;
            mask[i] = real ? 1 : 0;
        }
        int[] labels = ids.clone();
        for (int i = 0; i < labels.length; i++) {
            labels[i] = mask[i] == 1 ? labels[i] : Batch.IGNORE;
        }
        return new Batch(b, t, ids, mask, labels);
    }

    @ParameterizedTest
    @CsvSource({"opt-preln, q_proj v_proj fc1", "opt-postln, q_proj out_proj fc2 project_in"})
    void trainingCheckpointsAdaptersAndProfilingOnDeviceTensorsEqualCpu(String fixture, String targetList,
                                                                       @TempDir Path dir) throws Exception {
        Path model = fixture(fixture);
        List<String> targets = List.of(targetList.split(" "));
        Outcome cpu = run(CpuBackend::new, model, targets, dir.resolve("cpu"));
        List<FakeDeviceBackend> opened = new ArrayList<>();
        Outcome dev = run(n -> {
            FakeDeviceBackend be = new FakeDeviceBackend(n);
            opened.add(be);
            return be;
        }, model, targets, dir.resolve("dev"));

        assertThat(dev.steps()).hasSize(STEPS);
        for (int i = 0; i < STEPS; i++) {
            assertThat(dev.steps().get(i).loss()).as("loss at step %d", i + 1).isEqualTo(cpu.steps().get(i).loss());
            assertThat(dev.steps().get(i).gradNorm()).as("grad norm at step %d", i + 1)
                    .isEqualTo(cpu.steps().get(i).gradNorm());
        }
        assertThat(dev.weights()).isDeepEqualTo(cpu.weights());
        for (int f = 0; f < cpu.files().size(); f++) {
            assertThat(dev.files().get(f)).as("file %d", f).isEqualTo(cpu.files().get(f));
        }
        // the resumed run continues exactly as the uninterrupted one
        for (int i = 0; i < STEPS - SAVE_AT; i++) {
            assertThat(dev.resumed().get(i).loss()).isEqualTo(cpu.steps().get(SAVE_AT + i).loss());
            assertThat(dev.resumed().get(i).gradNorm()).isEqualTo(cpu.steps().get(SAVE_AT + i).gradNorm());
        }
        assertThat(dev.resumedWeights()).isDeepEqualTo(cpu.weights());
        assertThat(cpu.resumedWeights()).isDeepEqualTo(cpu.weights());
        assertThat(dev.reloadLoss()).isEqualTo(cpu.reloadLoss());
        assertThat(dev.reloadLogits()).isEqualTo(cpu.reloadLogits());
        assertThat(dev.exposure()).isEqualTo(cpu.exposure());
        // the runs really trained, and the fake device really held the model: weights were adopted, bytes moved
        assertThat(cpu.steps().get(0).loss()).isNotEqualTo(cpu.steps().get(STEPS - 1).loss());
        assertThat(opened).hasSize(3).allSatisfy(be -> {
            assertThat(be.adoptedWeights()).isGreaterThan(0);
            assertThat(be.bytesWritten()).isGreaterThan(0);
            assertThat(be.bytesRead()).isGreaterThan(0);
        });
    }

    @Test
    void sparsityLayoutsRoundTripThroughTheBackend() {
        boolean[][][] keep = new boolean[2][3][3];
        keep[0][0][0] = true;
        keep[0][2][1] = true;
        keep[1][1][0] = true;
        keep[1][1][1] = true;
        boolean[][] neurons = {{true, false, true}, {false, false, true}};
        try (FakeDeviceBackend dev = new FakeDeviceBackend(1); CpuBackend cpu = new CpuBackend(1)) {
            BlockLayout onDev = BlockLayouts.fromBooleans(keep, 11, 4, dev);
            assertThat(BlockLayouts.toBooleans(dev, onDev)).isDeepEqualTo(keep);
            assertThat(BlockLayouts.density(dev, onDev))
                    .isEqualTo(BlockLayouts.density(BlockLayouts.fromBooleans(keep, 11, 4, cpu)));
            NeuronLayout n = NeuronLayouts.fromBooleans(neurons, 7, 4, 37, 16, dev);
            assertThat(NeuronLayouts.density(dev, n, 37))
                    .isEqualTo(NeuronLayouts.density(NeuronLayouts.fromBooleans(neurons, 7, 4, 37, 16, cpu), 37));
            assertThatThrownBy(() -> BlockLayouts.toBooleans(onDev)).isInstanceOf(IllegalStateException.class);
        }
    }

    /** The harness itself: direct host access and foreign tensors fail, so the test above can catch a stray one. */
    @Test
    void fakeDeviceRejectsDirectHostAccessAndForeignTensors() {
        try (FakeDeviceBackend dev = new FakeDeviceBackend(1); CpuBackend cpu = new CpuBackend(1)) {
            Tensor t = dev.allocate(DType.F32, 2, 3);
            assertThatThrownBy(() -> t.getFloat(0)).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(() -> t.copyFrom(new float[6])).isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(t::toFloatArray).isInstanceOf(IllegalStateException.class);
            Tensor host = cpu.allocate(DType.F32, 2, 3);
            assertThatThrownBy(() -> dev.activation().addForward(t, t, host))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not allocated by this");
            Tensors.copyFrom(dev, t, new float[]{1, 2, 3, 4, 5, 6});
            dev.activation().addForward(t, t, t);
            assertThat(Tensors.toFloats(dev, t.slice(1, 1))).containsExactly(8, 10, 12);
        }
    }
}
