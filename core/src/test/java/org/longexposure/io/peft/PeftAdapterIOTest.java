package org.longexposure.io.peft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.InputFormatException;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/** PEFT adapter folders: round trip, the peft-written fixture, and errors naming the file and field. */
class PeftAdapterIOTest {
    @Test
    void roundTripKeepsConfigAndWeights(@TempDir Path dir) {
        try (CpuBackend be = new CpuBackend(1)) {
            TrainableParams p = new TrainableParams();
            Tensor a = be.allocate(DType.F32, 2, 3).copyFrom(new float[]{1, 2, 3, 4, 5, 6});
            p.add(be, "base_model.model.x.q_proj.lora_A.weight", a);
            LoraConfig cfg = new LoraConfig(2, 4, 0.1f, List.of("q_proj"), true);
            PeftAdapterIO.write(be, dir.resolve("ad"), cfg, p, "base");
            PeftAdapterIO.write(be, dir.resolve("ad"), cfg, p, "base"); // replacing an existing folder works
            assertThat(PeftAdapterIO.readLoraConfig(dir.resolve("ad"))).isEqualTo(cfg);
            TrainableParams q = new TrainableParams();
            Tensor a2 = be.allocate(DType.F32, 2, 3);
            q.add(be, "base_model.model.x.q_proj.lora_A.weight", a2);
            PeftAdapterIO.loadWeights(be, dir.resolve("ad"), q);
            assertThat(a2.toFloatArray()).containsExactly(1, 2, 3, 4, 5, 6);
            assertThat(dir.toFile().list()).containsExactly("ad");
        }
    }

    @Test
    void readsTheConfigPeftWrote() throws Exception {
        Path ad = Path.of(getClass().getResource("/fixtures/opt-postln/adapter/adapter_config.json").toURI())
                .getParent();
        LoraConfig cfg = PeftAdapterIO.readLoraConfig(ad);
        assertThat(cfg.r()).isEqualTo(3);
        assertThat(cfg.useRslora()).isTrue();
        assertThat(cfg.targetModules()).containsExactlyInAnyOrder("q_proj", "k_proj", "v_proj", "out_proj", "fc1",
                "fc2");
    }

    @Test
    void errorsNameFileAndField(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("adapter_config.json").hasMessageContaining("not found");
        Files.writeString(dir.resolve("adapter_config.json"), "{\"peft_type\": \"PREFIX_TUNING\"}");
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).hasMessageContaining("peft_type")
                .hasMessageContaining("PREFIX_TUNING");
        Files.writeString(dir.resolve("adapter_config.json"), "{\"r\": \"eight\"}");
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).hasMessageContaining("'r'")
                .hasMessageContaining("expected an integer");
        Files.writeString(dir.resolve("adapter_config.json"), "{\"r\": 8,");
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).hasMessageContaining("not valid JSON");
    }

    /**
     * Found by PeftConfigFuzzTest: these configs were read without complaint and failed later, when the model was
     * adapted (a bad regex, a target that is not a string) or trained (an infinite lora_alpha).
     */
    @Test
    void targetsAndAlphaAreCheckedWhenRead(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("adapter_config.json");
        Files.writeString(file, "{\"target_modules\": [\"q_proj\", \"k_proj[\"]}");
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("adapter_config.json: field 'target_modules': target_modules entry 'k_proj[' "
                        + "is not a valid regular expression");
        Files.writeString(file, "{\"target_modules\": [\"q_proj\", 7]}");
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("field 'target_modules[1]': expected a module name (a string), found a number 7");
        Files.writeString(file, "{\"lora_alpha\": 1e39}");
        assertThatThrownBy(() -> PeftAdapterIO.readLoraConfig(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("field 'lora_alpha': expected a finite number in float range, got 1.0E39");
        Files.writeString(file, "{\"target_modules\": \".*\\\\.(q|v)_proj\", \"lora_alpha\": -3.4e38}");
        assertThat(PeftAdapterIO.readLoraConfig(dir).targetModules()).containsExactly(".*\\.(q|v)_proj");
    }
}
