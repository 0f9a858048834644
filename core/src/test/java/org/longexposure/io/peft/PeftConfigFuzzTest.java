package org.longexposure.io.peft;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.FuzzHarness;
import org.longexposure.io.JsonMutator;
import org.longexposure.model.Linear;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TargetModules;

/**
 * Seeded mutation fuzzing of {@code adapter_config.json}: the config PEFT wrote for the test fixture and the ones we
 * write (name list and regex targets) are damaged at the tree level (r, lora_alpha, lora_dropout, target_modules,
 * peft_type, bias, the pattern maps replaced by other types, huge, negative or fractional numbers, null, empty
 * strings; keys deleted or added), the text level and the byte level. {@link PeftAdapterIO#readLoraConfig} must
 * either throw {@code InputFormatException} naming the file or return a config that can be used: finite scaling,
 * and targets that resolve against OPT's linear layers or fail only because they name none of them.
 */
class PeftConfigFuzzTest {
    private static final int CASES = 5000;
    private static final List<String> KEYS = List.of("r", "lora_alpha", "lora_dropout", "target_modules",
            "peft_type", "bias", "fan_in_fan_out", "use_rslora", "rank_pattern", "alpha_pattern", "task_type");

    @TempDir
    Path dir;

    @Test
    void damagedAdapterConfigsFailOnlyWithInputFormatException() throws Exception {
        List<String> bases = List.of(
                Files.readString(Path.of("src/test/resources/fixtures/opt-postln/adapter/adapter_config.json")),
                JsonMutator.write(PeftAdapterIO.configJson(new LoraConfig(8, 16, 0.05f, List.of("q_proj", "v_proj"),
                        false), "facebook/opt-125m")),
                JsonMutator.write(PeftAdapterIO.configJson(new LoraConfig(4, 8, 0f,
                        List.of(".*decoder\\.layers\\.[01]\\.self_attn\\.(q|v)_proj"), true), "opt")));
        JsonNodeFactory f = JsonNodeFactory.instance;
        List<JsonNode> domain = new ArrayList<>();
        for (String s : List.of("LORA", "lora", "PREFIX_TUNING", "none", "all", "lora_only", "q_proj", "fc1",
                "self_attn.q_proj", ".*q_proj", "(q|v)_proj", "q_proj(", "[", "all-linear", "CAUSAL_LM")) {
            domain.add(f.textNode(s));
        }
        for (double d : new double[] {3, 16, 0.1, 0.99, 1.0, 1e39, -8, 3.0}) {
            domain.add(f.numberNode(d));
        }
        domain.add(f.arrayNode().add("q_proj").add(7));
        domain.add(f.arrayNode().add("q_proj").addNull());
        domain.add(f.arrayNode().add("k_proj").add(f.objectNode().put("name", "v_proj")));
        domain.add(f.objectNode().put("q_proj", 4));
        JsonMutator mutator = new JsonMutator(domain, KEYS);
        List<Linear> optLinears = optLinears();
        Path file = dir.resolve(PeftAdapterIO.CONFIG);
        SplittableRandom rnd = new SplittableRandom(0x9EF7L);
        int[] usable = new int[1];

        FuzzHarness.Tally tally = FuzzHarness.run(CASES, 500, Duration.ofSeconds(60), file.toString(), (i, what) -> {
            String text = bases.get(rnd.nextInt(bases.size()));
            int mode = rnd.nextInt(10);
            if (mode < 6 || mode == 8) {
                JsonNode root = JsonMutator.read(text);
                for (int k = rnd.nextInt(3); k >= 0; k--) {
                    what.append(mutator.mutateTree(root, JsonPointer.empty(), rnd)).append("; ");
                }
                text = JsonMutator.write(root);
            }
            if (mode >= 6) {
                JsonMutator.Mutant m = JsonMutator.mutateText(text, rnd);
                text = m.text();
                what.append(m.what()).append("; ");
            }
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            if (mode == 9) {
                bytes = JsonMutator.mutateBytes(bytes, rnd);
                what.append("bytes mutated; ");
            }
            Files.write(file, bytes);
            what.append(JsonMutator.shorten(text));
            LoraConfig cfg = PeftAdapterIO.readLoraConfig(dir);
            if (cfg.r() < 1 || !(cfg.dropout() >= 0 && cfg.dropout() < 1) || cfg.targetModules().isEmpty()
                    || !Float.isFinite(cfg.scaling())) {
                fail("accepted an unusable config: " + cfg);
            }
            try {
                assertThat(TargetModules.resolve(cfg.targetModules(), optLinears)).isNotEmpty();
                usable[0]++;
            } catch (IllegalArgumentException e) {
                // another model's module names are valid input; anything else should have been rejected above
                if (!e.getMessage().contains("matches no linear layer")) {
                    fail("accepted targets that cannot be resolved: " + cfg.targetModules(), e);
                }
            }
        });
        assertThat(tally.total()).isEqualTo(CASES);
        assertThat(tally.accepted()).isGreaterThan(CASES / 5);
        assertThat(tally.rejected()).isGreaterThan(CASES / 5);
        assertThat(usable[0]).isGreaterThan(CASES / 10);
    }

    /** The linear layers of a 2-layer OPT, by their HF module paths (weights are not needed to match names). */
    private static List<Linear> optLinears() {
        List<Linear> out = new ArrayList<>();
        for (int l = 0; l < 2; l++) {
            String p = "model.decoder.layers." + l + ".";
            for (String name : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                    "self_attn.out_proj", "fc1", "fc2")) {
                out.add(new Linear(p + name, null, null));
            }
        }
        return out;
    }
}
