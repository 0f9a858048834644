package org.longexposure.train;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.DataLoader;
import org.longexposure.io.data.Example;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.peft.lora.LoraLayer;

/**
 * A run stopped after step k and resumed from its checkpoint reproduces the uninterrupted run bit for bit: same
 * losses, gradient norms and final weights (shuffled data, LoRA dropout, AdamW state, LR schedule all restored).
 */
class ResumeTest {
    private static final int TOTAL = 8;
    private static final int STOP = 3;

    private record Run(CpuBackend be, CausalLm lm, TrainableParams params, List<LoraLayer> layers, Trainer trainer,
                       DataLoader loader, LoraConfig lora) implements AutoCloseable {
        static Run start() throws Exception {
            Path model = Path.of(ResumeTest.class.getResource("/fixtures/opt-preln/model/config.json").toURI())
                    .getParent();
            CpuBackend be = new CpuBackend(2);
            CausalLm lm = Architecture.load(model, be);
            TrainableParams params = new TrainableParams();
            LoraConfig lora = new LoraConfig(4, 8, 0.2f, List.of("q_proj", "v_proj", "fc1"), false);
            List<LoraLayer> layers = Lora.apply(lm, lora, be, params, 11);
            TrainConfig tc = new TrainConfig(new LrSchedule(LrSchedule.Kind.COSINE, 5e-3, 2, TOTAL), 0.01f, 0.9f,
                    0.999f, 1e-8f, 1.0f, 0.1f, 2);
            Trainer trainer = new Trainer(be, lm, params, tc, 3, 10);
            SplittableRandom rng = new SplittableRandom(4);
            List<Example> rows = new ArrayList<>();
            for (int i = 0; i < 9; i++) {
                int len = 4 + rng.nextInt(7);
                int[] ids = new int[len];
                for (int j = 0; j < len; j++) {
                    ids[j] = rng.nextInt(3, 211);
                }
                rows.add(new Example(i + 1, ids, ids.clone()));
            }
            return new Run(be, lm, params, layers, trainer, new DataLoader(rows, 3, 10, 1, true, 5), lora);
        }

        StepResult step() {
            return trainer.step(List.of(loader.next(), loader.next()));
        }

        @Override
        public void close() {
            lm.close();
            be.close();
        }
    }

    @Test
    void resumedRunEqualsUninterruptedRun(@TempDir Path dir) throws Exception {
        List<StepResult> straight = new ArrayList<>();
        float[][] finalStraight;
        try (Run r = Run.start()) {
            for (int s = 1; s <= TOTAL; s++) {
                straight.add(r.step());
            }
            finalStraight = weights(r.params);
        }

        List<StepResult> resumed = new ArrayList<>();
        try (Run r = Run.start()) {
            for (int s = 1; s <= STOP; s++) {
                resumed.add(r.step());
            }
            Checkpoint.save(r.be, dir, r.lora, r.params, r.trainer.optimizer(), new Checkpoint.State(STOP,
                    r.loader.cursor(), r.layers.stream().map(LoraLayer::forwardCount).toList(),
                    com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode()), "fixture");
            r.step(); // work after the checkpoint that a kill would lose
        }
        float[][] finalResumed;
        try (Run r = Run.start()) {
            Path ckpt = Checkpoint.latest(dir).orElseThrow();
            assertThat(ckpt.getFileName().toString()).isEqualTo("step-" + STOP);
            Checkpoint.State st = Checkpoint.load(r.be, ckpt, r.params, r.trainer.optimizer());
            r.loader.seek(st.cursor());
            for (int i = 0; i < r.layers.size(); i++) {
                r.layers.get(i).setForwardCount(st.dropoutCounters().get(i));
            }
            for (int s = st.step() + 1; s <= TOTAL; s++) {
                resumed.add(r.step());
            }
            finalResumed = weights(r.params);
        }
        assertThat(resumed).hasSize(TOTAL);
        for (int i = 0; i < TOTAL; i++) {
            assertThat(resumed.get(i).loss()).as("loss at step %d", i + 1).isEqualTo(straight.get(i).loss());
            assertThat(resumed.get(i).gradNorm()).as("grad norm at step %d", i + 1)
                    .isEqualTo(straight.get(i).gradNorm());
            assertThat(resumed.get(i).lr()).isEqualTo(straight.get(i).lr());
        }
        assertThat(finalResumed).isDeepEqualTo(finalStraight);
        // the run really moved: losses differ across steps
        assertThat(straight.get(0).loss()).isNotEqualTo(straight.get(TOTAL - 1).loss());
    }

    private static float[][] weights(TrainableParams p) {
        return p.all().stream().map(x -> x.value().toFloatArray()).toArray(float[][]::new);
    }
}
