package org.longexposure.io.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.InputFormatException;

/** Every accessor of HfConfig on a config.json shaped like the ones transformers writes, and every error. */
class HfConfigTest {
    /** Abridged from facebook/opt-125m's config.json, plus a few fields to exercise each accessor. */
    private static final String OPT = """
            {
              "_name_or_path": "facebook/opt-125m",
              "activation_function": "relu",
              "architectures": ["OPTForCausalLM"],
              "do_layer_norm_before": true,
              "dropout": 0.1,
              "ffn_dim": 3072,
              "hidden_size": 768.0,
              "init_std": 0.02,
              "layer_norm_eps": 1e-05,
              "max_position_embeddings": 2048,
              "model_type": "opt",
              "num_attention_heads": 12,
              "num_hidden_layers": 12,
              "pad_token_id": 1,
              "prefix": "</s>",
              "rope_scaling": null,
              "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "factor": "x"},
              "torch_dtype": "float16",
              "vocab_size": 50272,
              "word_embed_proj_dim": 768,
              "future_field": {"kept": [1, 2]},
              "limit": NaN
            }
            """;

    private static final Path NAME = Path.of("models", "opt", "config.json");

    private static HfConfig opt() {
        return HfConfig.parse(OPT, NAME);
    }

    private static void assertError(Runnable r, String message) {
        assertThatThrownBy(r::run).isInstanceOf(InputFormatException.class).hasMessage(message);
    }

    @Test
    void readsFromAFile(@TempDir Path dir) throws Exception {
        Path p = Files.writeString(dir.resolve("config.json"), OPT);
        HfConfig c = HfConfig.read(p);
        assertThat(c.path()).contains(p);
        assertThat(c.modelType()).isEqualTo("opt");
        assertThat(HfConfig.parse("{}", null).path()).isEmpty();
    }

    @Test
    void keysAreAllKeptInFileOrder() {
        HfConfig c = opt();
        assertThat(c.keys()).hasSize(22).startsWith("_name_or_path", "activation_function")
                .contains("future_field", "rope_scaling").endsWith("limit");
        assertThat(c.has("rope_scaling")).isFalse();
        assertThat(c.has("ffn_dim")).isTrue();
        assertThat(c.has("nope")).isFalse();
        assertThat(c.tree().get("future_field").get("kept").get(1).intValue()).isEqualTo(2);
    }

    @Test
    void ints() {
        HfConfig c = opt();
        assertThat(c.getInt("ffn_dim")).isEqualTo(3072);
        assertThat(c.getInt("hidden_size")).isEqualTo(768); // 768.0: exactly integral
        assertThat(c.getInt("vocab_size", 7)).isEqualTo(50272);
        assertThat(c.getInt("n_inner", 7)).isEqualTo(7);
        assertThat(c.getInt("rope_scaling", 7)).isEqualTo(7); // null counts as absent
        assertThat(c.optInt("pad_token_id")).isEqualTo(OptionalInt.of(1));
        assertThat(c.optInt("bos_token_id")).isEmpty();
    }

    @Test
    void intErrors() {
        HfConfig c = HfConfig.parse("{\"hidden_size\": \"big\", \"dropout\": 0.1, \"big\": 3000000000,"
                + " \"flag\": true, \"none\": null, \"num_heads\": 12}", NAME);
        assertError(() -> c.getInt("hidden_size"),
                NAME + ": field 'hidden_size': expected an integer, found a string \"big\"");
        assertError(() -> c.getInt("dropout", 0),
                NAME + ": field 'dropout': expected an integer in the 32-bit range, found a number 0.1");
        assertError(() -> c.optInt("big"),
                NAME + ": field 'big': expected an integer in the 32-bit range, found a number 3000000000");
        assertError(() -> c.getInt("flag"), NAME + ": field 'flag': expected an integer, found a boolean true");
        assertError(() -> c.getInt("none"), NAME + ": field 'none': expected an integer, found null");
        assertError(() -> c.getInt("num_head"), NAME + ": field 'num_head': required field is missing, "
                + "expected an integer (present: 'num_heads')");
        assertError(() -> c.getInt("vocab_size"), NAME + ": field 'vocab_size': required field is missing, "
                + "expected an integer");
    }

    @Test
    void doubles() {
        HfConfig c = opt();
        assertThat(c.getDouble("layer_norm_eps")).isEqualTo(1e-05);
        assertThat(c.getDouble("ffn_dim")).isEqualTo(3072.0);
        assertThat(c.getDouble("dropout", 0.5)).isEqualTo(0.1);
        assertThat(c.getDouble("attention_dropout", 0.5)).isEqualTo(0.5);
        assertThat(c.getDouble("limit")).isNaN();
        assertThat(c.optDouble("init_std")).isEqualTo(OptionalDouble.of(0.02));
        assertThat(c.optDouble("rope_scaling")).isEmpty();
        assertError(() -> c.getDouble("torch_dtype", 0),
                NAME + ": field 'torch_dtype': expected a number, found a string \"float16\"");
        assertError(() -> c.getDouble("rms_norm_eps"),
                NAME + ": field 'rms_norm_eps': required field is missing, expected a number");
    }

    @Test
    void booleans() {
        HfConfig c = opt();
        assertThat(c.getBoolean("do_layer_norm_before", false)).isTrue();
        assertThat(c.getBoolean("enable_bias", true)).isTrue();
        assertThat(c.getBoolean("rope_scaling", false)).isFalse();
        assertError(() -> c.getBoolean("ffn_dim", false),
                NAME + ": field 'ffn_dim': expected a boolean (true or false), found a number 3072");
        HfConfig s = HfConfig.parse("{\"tie_word_embeddings\": \"true\"}", NAME);
        assertError(() -> s.getBoolean("tie_word_embeddings", false),
                NAME + ": field 'tie_word_embeddings': expected a boolean (true or false), found a string \"true\"");
    }

    @Test
    void strings() {
        HfConfig c = opt();
        assertThat(c.modelType()).isEqualTo("opt");
        assertThat(c.getString("activation_function")).isEqualTo("relu");
        assertThat(c.getString("prefix", "x")).isEqualTo("</s>");
        assertThat(c.getString("hidden_act", "gelu")).isEqualTo("gelu");
        assertThat(c.optString("torch_dtype")).isEqualTo(Optional.of("float16"));
        assertThat(c.optString("rope_scaling")).isEmpty();
        assertError(() -> c.optString("vocab_size"),
                NAME + ": field 'vocab_size': expected a string, found a number 50272");
    }

    @Test
    void modelTypeIsRequired() {
        assertError(() -> HfConfig.parse("{\"model\": \"opt\"}", NAME).modelType(),
                NAME + ": field 'model_type': required field is missing, expected a string");
        assertError(() -> HfConfig.parse("{\"model_type\": 3}", NAME).modelType(),
                NAME + ": field 'model_type': expected a string, found a number 3");
    }

    @Test
    void stringLists() {
        HfConfig c = opt();
        assertThat(c.getStringList("architectures")).containsExactly("OPTForCausalLM");
        assertThat(c.getStringList("target_modules")).isEmpty();
        assertThat(c.getStringList("rope_scaling")).isEmpty();
        HfConfig bad = HfConfig.parse("{\"architectures\": [\"A\", 2], \"one\": \"A\"}", NAME);
        assertError(() -> bad.getStringList("architectures"),
                NAME + ": field 'architectures[1]': expected a string, found a number 2");
        assertError(() -> bad.getStringList("one"),
                NAME + ": field 'one': expected an array of strings, found a string \"A\"");
    }

    @Test
    void nestedObjectsNameTheirFieldsWithDots() {
        HfConfig c = opt();
        HfConfig rope = c.optObject("rope_parameters").orElseThrow();
        assertThat(rope.getString("rope_type")).isEqualTo("default");
        assertThat(rope.getDouble("rope_theta")).isEqualTo(10000.0);
        assertThat(rope.keys()).containsExactly("rope_type", "rope_theta", "factor");
        assertThat(c.optObject("rope_scaling")).isEmpty();
        assertThat(c.optObject("absent")).isEmpty();
        assertError(() -> rope.getDouble("factor"),
                NAME + ": field 'rope_parameters.factor': expected a number, found a string \"x\"");
        assertError(() -> c.optObject("ffn_dim"),
                NAME + ": field 'ffn_dim': expected an object, found a number 3072");
    }

    @Test
    void malformedJsonNamesLineAndColumn() {
        assertThatThrownBy(() -> HfConfig.parse("{\n  \"a\": 1,\n  \"b\": }\n", NAME))
                .isInstanceOf(InputFormatException.class)
                .hasMessageStartingWith(NAME + ": config is not valid JSON at line 3, column 8: ")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
        assertThatThrownBy(() -> HfConfig.parse("{\"a\": 1} trailing", NAME))
                .isInstanceOf(InputFormatException.class).hasMessageContaining("config is not valid JSON");
    }

    @Test
    void topLevelMustBeAnObject() {
        assertError(() -> HfConfig.parse("[1]", NAME), NAME + ": config is an array [1], expected a JSON object");
        assertError(() -> HfConfig.parse("", NAME), NAME + ": config is missing, expected a JSON object");
    }

    @Test
    void missingFileAndFolder(@TempDir Path dir) {
        Path p = dir.resolve("config.json");
        assertError(() -> HfConfig.read(p), p + ": file not found");
        assertError(() -> HfConfig.read(dir), dir + ": is a folder, expected a config.json file");
    }

    @Test
    void notUtf8(@TempDir Path dir) throws Exception {
        Path p = Files.write(dir.resolve("config.json"), new byte[] {'{', '"', (byte) 0xFF, '"', ':', '1', '}'});
        assertError(() -> HfConfig.read(p), p + ": not valid UTF-8 text");
    }
}
