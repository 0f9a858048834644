package org.longexposure.io.config;

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
import org.longexposure.io.InputFormatException;
import org.longexposure.io.JsonMutator;
import org.longexposure.model.Architecture;
import org.longexposure.model.ModelConfig;

/**
 * Seeded mutation fuzzing of {@code config.json}: real OPT configs (the bundled opt-mini-256 and the test
 * fixtures) are damaged at the tree level (a value replaced by another type, a huge, negative or fractional number,
 * null, an empty string, a nested object; keys deleted, renamed or added; unknown model types), the text level
 * (truncation, deleted or duplicated characters, swapped values, NaN, 1e400, deep nesting) and the byte level
 * (ill-formed UTF-8, through {@link HfConfig#read}). Parsing, the typed accessors (on random keys) and
 * {@link Architecture#config} must either succeed or throw {@link InputFormatException}; an accepted OPT config
 * must describe a buildable model.
 */
class HfConfigFuzzTest {
    private static final int CASES = 6000;
    private static final List<Path> BASES = List.of(Path.of("../models/opt-mini-256/config.json"),
            Path.of("src/test/resources/fixtures/opt-preln/model/config.json"),
            Path.of("src/test/resources/fixtures/opt-postln/model/config.json"));
    private static final List<String> OPT_KEYS = List.of("model_type", "hidden_size", "num_attention_heads",
            "num_hidden_layers", "ffn_dim", "vocab_size", "max_position_embeddings", "word_embed_proj_dim",
            "do_layer_norm_before", "_remove_final_layer_norm", "enable_bias", "activation_function",
            "layer_norm_elementwise_affine", "tie_word_embeddings", "pad_token_id", "bos_token_id", "eos_token_id",
            "architectures", "rope_scaling");

    @TempDir
    Path dir;

    @Test
    void damagedConfigsFailOnlyWithInputFormatException() throws Exception {
        List<String> bases = new ArrayList<>();
        for (Path p : BASES) {
            bases.add(Files.readString(p));
        }
        JsonNodeFactory f = JsonNodeFactory.instance;
        List<JsonNode> domain = new ArrayList<>();
        for (String s : List.of("opt", "gpt2", "llama", "OPT", "opt ", "relu", "gelu", "gelu_new", "silu", "swish",
                "tanh", "RELU", "gelu_pytorch_tanh", "quick_gelu", "float16")) {
            domain.add(f.textNode(s));
        }
        for (int n : new int[] {3, 4, 5, 7, 12, 24, 40, 64, 256, 768, 2048, 50272, -12}) {
            domain.add(f.numberNode(n));
        }
        domain.add(f.numberNode(40.0));
        domain.add(f.objectNode().put("type", "linear").put("factor", 2.0));
        JsonMutator mutator = new JsonMutator(domain, OPT_KEYS);
        Path file = dir.resolve("config.json");
        SplittableRandom rnd = new SplittableRandom(0xC0F16L);
        int[] built = new int[1];

        FuzzHarness.Tally tally = FuzzHarness.run(CASES, 500, Duration.ofSeconds(60), file.toString(), (i, what) -> {
            String base = bases.get(rnd.nextInt(bases.size()));
            int mode = rnd.nextInt(10);
            if (mode == 9) { // bytes, read from a file so that the UTF-8 decoding is exercised too
                byte[] bytes = JsonMutator.mutateBytes(base.getBytes(StandardCharsets.UTF_8), rnd);
                Files.write(file, bytes);
                what.append("bytes ").append(JsonMutator.shorten(new String(bytes, StandardCharsets.ISO_8859_1)));
                exercise(HfConfig.read(file), file, rnd, built);
                return;
            }
            String text = base;
            if (mode <= 3 || mode == 7) {
                JsonNode root = JsonMutator.read(text);
                for (int k = rnd.nextInt(3); k >= 0; k--) {
                    what.append(mutator.mutateTree(root, JsonPointer.empty(), rnd)).append("; ");
                }
                text = JsonMutator.write(root);
            }
            if (mode >= 4) {
                for (int k = mode == 8 ? 2 : 1; k > 0; k--) {
                    JsonMutator.Mutant m = JsonMutator.mutateText(text, rnd);
                    text = m.text();
                    what.append(m.what()).append("; ");
                }
            }
            what.append("text ").append(JsonMutator.shorten(text));
            exercise(HfConfig.parse(text, file), file, rnd, built);
        });
        assertThat(tally.total()).isEqualTo(CASES);
        assertThat(tally.accepted()).isGreaterThan(CASES / 5);
        assertThat(tally.rejected()).isGreaterThan(CASES / 5);
        assertThat(built[0]).isGreaterThan(CASES / 10);
    }

    /**
     * Every accessor on two keys, present or not (each either returns or rejects the value with an
     * InputFormatException), then the OPT mapping; an accepted mapping must be a model one can build.
     */
    private static void exercise(HfConfig hf, Path file, SplittableRandom rnd, int[] built) {
        List<String> names = new ArrayList<>(hf.keys());
        names.addAll(OPT_KEYS);
        names.add("no_such_key");
        for (int n = 0; n < 2; n++) {
            String key = names.get(rnd.nextInt(names.size()));
            tryAccessor(file, () -> hf.getInt(key));
            tryAccessor(file, () -> hf.getInt(key, 3));
            tryAccessor(file, () -> hf.optInt(key));
            tryAccessor(file, () -> hf.getDouble(key));
            tryAccessor(file, () -> hf.optDouble(key));
            tryAccessor(file, () -> hf.getBoolean(key, false));
            tryAccessor(file, () -> hf.getString(key));
            tryAccessor(file, () -> hf.optString(key));
            tryAccessor(file, () -> hf.getStringList(key));
            tryAccessor(file, () -> hf.optObject(key).ifPresent(
                    o -> o.keys().forEach(k -> tryAccessor(file, () -> o.getInt(k)))));
        }
        tryAccessor(file, hf::modelType);
        assertThat(hf.tree().isObject()).isTrue();
        ModelConfig cfg = Architecture.config(hf);
        if (cfg.vocabSize() <= 0 || cfg.hiddenSize() <= 0 || cfg.numLayers() <= 0 || cfg.numHeads() <= 0
                || cfg.hiddenSize() % cfg.numHeads() != 0 || cfg.ffnDim() <= 0 || cfg.maxPositions() <= 0
                || cfg.wordEmbedProjDim() <= 0 || cfg.activation() == null) {
            fail("accepted an unbuildable config: " + cfg);
        }
        built[0]++;
    }

    private static void tryAccessor(Path file, Runnable accessor) {
        try {
            accessor.run();
        } catch (InputFormatException e) {
            if (!e.getMessage().startsWith(file.toString()) || e.getMessage().contains("\n")) {
                fail("accessor message is not one line naming the file: " + e.getMessage());
            }
        }
    }
}
