package org.longexposure.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.data.Batch;
import org.longexposure.io.data.DataLoader;
import org.longexposure.io.data.Example;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.peft.lora.LoraLayer;
import org.longexposure.sparsity.predict.OnlineSparsity;
import org.longexposure.sparsity.predict.PredictorFit;
import org.longexposure.sparsity.predict.Predictors;

/**
 * A sparse run (auto mode, predictor refresh every 3 steps: dense refresh steps 1, 4, 7) stopped after step 5 and
 * resumed from its checkpoint reproduces the uninterrupted run bit for bit: losses, gradient norms, realised
 * densities and the step-7 refresh (which reads the restored calibration pool and drift), and the final adapter.
 * Pre-LN fixture (2 layers, 4 heads of 12, ReLU FFN of 80), 5-token attention tiles, rows of awkward length
 * (seq len 29), LoRA with dropout on q and v. Also: the restored state saves to the same bytes, and a resume with
 * other sparsity settings or from a checkpoint without the state is refused naming what differs.
 */
class SparseResumeTest {
    private static final int TOTAL = 8;
    private static final int STOP = 5;
    private static final int REFRESH = 3;
    private static final OnlineSparsity.Settings SETTINGS = new OnlineSparsity.Settings(OnlineSparsity.Mode.AUTO,
            0.9, 0.95, 0.97, 2, true);

    private record Run(CpuBackend be, CausalLm lm, TrainableParams params, List<LoraLayer> layers, Trainer trainer,
                       DataLoader loader, LoraConfig lora, List<Example> rows) implements AutoCloseable {
        static Run start() throws Exception {
            Path model = Path.of(SparseResumeTest.class.getResource("/fixtures/opt-preln/model/config.json").toURI())
                    .getParent();
            CpuBackend be = new CpuBackend(2);
            CausalLm lm = Architecture.load(model, be);
            TrainableParams params = new TrainableParams();
            LoraConfig lora = new LoraConfig(4, 8, 0.1f, List.of("q_proj", "v_proj"), false);
            List<LoraLayer> layers = Lora.apply(lm, lora, be, params, 7);
            TrainConfig tc = new TrainConfig(LrSchedule.constant(3e-2), 0f, 0.9f, 0.999f, 1e-8f, 1.0f, 0f, 1);
            Trainer trainer = new Trainer(be, lm, params, tc, 3, 29);
            SplittableRandom rng = new SplittableRandom(21);
            List<Example> rows = new ArrayList<>();
            for (int i = 0; i < 13; i++) {
                int len = 17 + rng.nextInt(13);
                int[] ids = new int[len];
                for (int j = 0; j < len; j++) {
                    ids[j] = rng.nextInt(3, 211);
                }
                rows.add(new Example(i + 1, ids, ids.clone()));
            }
            return new Run(be, lm, params, layers, trainer, new DataLoader(rows, 3, 29, 1, true, 9), lora, rows);
        }

        /** Predictors fitted on the first two micro-batches of a loader with the training seed. */
        OnlineSparsity fresh() {
            DataLoader peek = new DataLoader(rows, 3, 29, 1, true, 9);
            List<Batch> fit = List.of(peek.next(), peek.next());
            Predictors p = PredictorFit.fit(be, lm, trainer.state(), fit, new PredictorFit.Config(5, 3, 0.9, 16, 7,
                    0.95));
            return new OnlineSparsity(be, lm, p, SETTINGS);
        }

        Checkpoint.State state(int step) {
            return new Checkpoint.State(step, loader.cursor(), layers.stream().map(LoraLayer::forwardCount).toList(),
                    JsonNodeFactory.instance.objectNode());
        }

        @Override
        public void close() {
            lm.close();
            be.close();
        }
    }

    @Test
    void aResumedSparseRunEqualsTheUninterruptedOne(@TempDir Path dir) throws Exception {
        List<SparseSteps.Outcome> straight = new ArrayList<>();
        float[][] finalStraight;
        try (Run r = Run.start()) {
            SparseSteps steps = new SparseSteps(r.lm, r.trainer, r.fresh(), REFRESH);
            for (int s = 1; s <= TOTAL; s++) {
                straight.add(steps.step(List.of(r.loader.next())));
            }
            finalStraight = weights(r.params);
        }

        List<SparseSteps.Outcome> resumed = new ArrayList<>();
        Path ckptDir = dir.resolve("checkpoints");
        try (Run r = Run.start()) {
            OnlineSparsity online = r.fresh();
            SparseSteps steps = new SparseSteps(r.lm, r.trainer, online, REFRESH);
            for (int s = 1; s <= STOP; s++) {
                resumed.add(steps.step(List.of(r.loader.next())));
            }
            Checkpoint.save(r.be, ckptDir, r.lora, r.params, r.trainer.optimizer(), r.state(STOP), "fixture", online);
            steps.step(List.of(r.loader.next())); // work after the checkpoint that a kill would lose
        }
        float[][] finalResumed;
        Path ckpt = Checkpoint.latest(ckptDir).orElseThrow();
        try (Run r = Run.start()) {
            Checkpoint.State st = Checkpoint.load(r.be, ckpt, r.params, r.trainer.optimizer());
            r.loader.seek(st.cursor());
            for (int i = 0; i < r.layers.size(); i++) {
                r.layers.get(i).setForwardCount(st.dropoutCounters().get(i));
            }
            OnlineSparsity online = Checkpoint.loadSparsity(r.be, r.lm, ckpt, SETTINGS);
            // the restored state writes the same bytes as the saved one
            Path again = dir.resolve("again");
            online.save(again);
            try (Stream<Path> files = Files.list(ckpt.resolve(Checkpoint.SPARSITY))) {
                List<Path> saved = files.sorted().toList();
                assertThat(saved).hasSize(5);
                for (Path f : saved) {
                    Path g = again.resolve(f.getFileName());
                    if (f.toString().endsWith(".json")) {
                        assertThat(Files.readString(g)).as(f.getFileName().toString()).isEqualTo(Files.readString(f));
                    } else {
                        assertThat(Files.readAllBytes(g)).as(f.getFileName().toString())
                                .isEqualTo(Files.readAllBytes(f));
                    }
                }
            }
            SparseSteps steps = new SparseSteps(r.lm, r.trainer, online, REFRESH);
            for (int s = st.step() + 1; s <= TOTAL; s++) {
                resumed.add(steps.step(List.of(r.loader.next())));
            }
            finalResumed = weights(r.params);
        }

        assertThat(resumed).hasSize(TOTAL);
        boolean sparseSomewhere = false;
        for (int i = 0; i < TOTAL; i++) {
            SparseSteps.Outcome a = straight.get(i);
            SparseSteps.Outcome b = resumed.get(i);
            assertThat(b.result().loss()).as("loss at step %d", i + 1).isEqualTo(a.result().loss());
            assertThat(b.result().gradNorm()).as("grad norm at step %d", i + 1).isEqualTo(a.result().gradNorm());
            assertThat(b.refresh() != null).as("refresh at step %d", i + 1).isEqualTo(i % REFRESH == 0);
            if (a.refresh() != null) {
                assertThat(b.refresh().attnRecallStale()).isEqualTo(a.refresh().attnRecallStale());
                assertThat(b.refresh().attnCoverage()).isEqualTo(a.refresh().attnCoverage());
                assertThat(b.refresh().attnMargin()).isEqualTo(a.refresh().attnMargin());
                assertThat(b.refresh().mlpCoverage()).isEqualTo(a.refresh().mlpCoverage());
                assertThat(b.refresh().attnDense()).isEqualTo(a.refresh().attnDense());
                assertThat(b.refresh().mlpDense()).isEqualTo(a.refresh().mlpDense());
            } else {
                assertThat(b.density().attn()).isEqualTo(a.density().attn());
                assertThat(b.density().mlp()).isEqualTo(a.density().mlp());
                for (int l = 0; l < 2; l++) {
                    sparseSomewhere |= i >= STOP && (a.density().attn()[l] < 1 || a.density().mlp()[l] < 1);
                }
            }
        }
        assertThat(finalResumed).isDeepEqualTo(finalStraight);
        assertThat(sparseSomewhere).as("some layer part ran sparse after the resume").isTrue();
        // the step-7 refresh saw a drift (calibrated at step 4, scored on step 7's ground truth)
        double[] margin = straight.get(6).refresh().attnMargin();
        for (double m : margin) {
            assertThat(m).isNotNaN().isGreaterThanOrEqualTo(0.0);
        }
    }

    @Test
    void otherSettingsOrAMissingStateAreRefusedByName(@TempDir Path dir) throws Exception {
        Path ckptDir = dir.resolve("checkpoints");
        try (Run r = Run.start()) {
            OnlineSparsity online = r.fresh();
            SparseSteps steps = new SparseSteps(r.lm, r.trainer, online, REFRESH);
            steps.step(List.of(r.loader.next()));
            Checkpoint.save(r.be, ckptDir, r.lora, r.params, r.trainer.optimizer(), r.state(1), "fixture", online);
            Checkpoint.save(r.be, dir.resolve("dense"), r.lora, r.params, r.trainer.optimizer(), r.state(1),
                    "fixture");
            Path ckpt = Checkpoint.latest(ckptDir).orElseThrow();
            assertThat(Checkpoint.hasSparsity(ckpt)).isTrue();
            assertThatThrownBy(() -> Checkpoint.loadSparsity(r.be, r.lm, ckpt, new OnlineSparsity.Settings(
                    OnlineSparsity.Mode.AUTO, 0.8, 0.95, 0.97, 2, true)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("attn_mass 0.9").hasMessageContaining("attn_mass 0.8");
            assertThatThrownBy(() -> Checkpoint.loadSparsity(r.be, r.lm, ckpt, new OnlineSparsity.Settings(
                    OnlineSparsity.Mode.ON, 0.9, 0.95, 0.97, 2, true)))
                    .hasMessageContaining("mode \"auto\"").hasMessageContaining("mode \"on\"");
            assertThatThrownBy(() -> Checkpoint.loadSparsity(r.be, r.lm, ckpt, new OnlineSparsity.Settings(
                    OnlineSparsity.Mode.AUTO, 0.9, 0.95, 0.97, 3, true)))
                    .hasMessageContaining("calibration_window 2").hasMessageContaining("calibration_window 3");
            Path dense = Checkpoint.latest(dir.resolve("dense")).orElseThrow();
            assertThat(Checkpoint.hasSparsity(dense)).isFalse();
            assertThatThrownBy(() -> Checkpoint.loadSparsity(r.be, r.lm, dense, SETTINGS))
                    .isInstanceOf(InputFormatException.class).hasMessageContaining("holds no sparsity");
        }
    }

    private static float[][] weights(TrainableParams p) {
        return p.all().stream().map(x -> x.value().toFloatArray()).toArray(float[][]::new);
    }
}
