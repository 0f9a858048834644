package org.longexposure.io.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.FuzzHarness;
import org.longexposure.io.JsonMutator;

/**
 * Seeded mutation fuzzing of the tokenizer.json reader. A tiny valid tokenizer.json ({@link TinyTokenizerFiles}: four
 * layouts, GPT-2's, OPT's {@code </s>} template, a Llama-3-like Split + ByteLevel sequence with pair merges and
 * ignore_merges and a Sequence post-processor, RoBERTa's processor) is damaged at the tree level (vocabulary entries,
 * merges as strings and pairs, added tokens, pre-tokenizer, decoder and post-processor types and fields, template
 * ids), the text level (truncation, deleted or duplicated characters, raw NaN, deep nesting, bad escapes) and the
 * byte level, sometimes with damaged tokenizer_config.json / special_tokens_map.json beside it.
 * {@link Tokenizer#load} must either reject the folder with an {@code InputFormatException} naming one of its files,
 * or load a tokenizer that encodes and decodes without throwing, every id it produces being a token.
 */
class TokenizerJsonFuzzTest {
    private static final int CASES = 2500;
    /** Where mutations start (those that exist in the layout at hand); deeper ones aim at rarely reached fields. */
    private static final List<JsonPointer> FOCUSES = List.of("", "", "/model", "/model/vocab", "/model/merges",
            "/added_tokens", "/added_tokens/3", "/pre_tokenizer", "/pre_tokenizer/pretokenizers",
            "/pre_tokenizer/pretokenizers/0/pattern", "/post_processor", "/post_processor/single",
            "/post_processor/special_tokens/<~1s>", "/post_processor/special_tokens/<~1s>/ids", "/post_processor/sep",
            "/post_processor/cls", "/post_processor/processors",
            "/post_processor/processors/1/special_tokens/<|endoftext|>/ids", "/decoder").stream()
            .map(JsonPointer::compile).toList();

    @TempDir
    Path tmp;

    private Path dir;
    private TinyTokenizerFiles base;

    @BeforeEach
    void setUp() throws IOException {
        dir = Files.createDirectories(tmp.resolve("tok"));
        base = new TinyTokenizerFiles();
    }

    /** The bases load and tokenize, so that rejections below are due to the damage alone. */
    @Test
    void tinyBasesLoadAndEncode() throws IOException {
        assertThat(base.mergeCount()).isBetween(40, 70);
        for (int layout = 0; layout < 4; layout++) {
            TinyTokenizerFiles.clear(dir);
            TinyTokenizerFiles.write(dir.resolve("tokenizer.json"), JsonMutator.write(base.tokenizerJson(layout)));
            Tokenizer t = Tokenizer.load(dir);
            assertThat(t.encode(" the")).as("layout %d", layout).hasSize(1);
            assertThat(t.decode(t.encode("the cat and 12 café"), false)).isEqualTo("the cat and 12 café");
            TinyTokenizerFiles.exercise(t);
        }
    }

    @Test
    void damagedTokenizerJsonFailsOnlyWithInputFormatException() {
        List<JsonNode> domain = base.domainValues();
        JsonMutator mutator = new JsonMutator(domain, List.of("type", "vocab", "merges", "ignore_merges", "dropout",
                "pretokenizers", "processors", "special_tokens", "single", "ids", "pattern", "behavior", "invert",
                "add_prefix_space", "use_regex", "single_word", "lstrip", "rstrip", "normalized", "special", "cls",
                "sep", "continuing_subword_prefix", "end_of_word_suffix"));
        JsonMutator sideMutator = new JsonMutator(domain, List.of("bos_token", "eos_token", "pad_token",
                "add_bos_token", "add_eos_token", "tokenizer_class", "added_tokens_decoder"));
        SplittableRandom rnd = new SplittableRandom(0x70CE11L);
        FuzzHarness.Tally tally = FuzzHarness.run(CASES, 300, Duration.ofSeconds(60), dir.toString(), (i, what) -> {
            TinyTokenizerFiles.clear(dir);
            int layout = rnd.nextInt(4);
            ObjectNode root = base.tokenizerJson(layout);
            what.append("layout ").append(layout).append("; ");
            int mode = rnd.nextInt(10);
            if (mode < 7) {
                for (int k = rnd.nextInt(3); k >= 0; k--) {
                    JsonPointer focus = FOCUSES.get(rnd.nextInt(FOCUSES.size()));
                    if (!root.at(focus).isContainerNode() || root.at(focus).isEmpty()) {
                        focus = JsonPointer.empty();
                    }
                    what.append(mutator.mutateTree(root, focus, rnd)).append("; ");
                }
            }
            String text = JsonMutator.write(root);
            if (mode >= 6) {
                JsonMutator.Mutant m = JsonMutator.mutateText(text, rnd);
                text = m.text();
                what.append(m.what()).append("; ");
            }
            Path file = dir.resolve("tokenizer.json");
            if (mode == 9 && rnd.nextBoolean()) {
                Files.write(file, JsonMutator.mutateBytes(text.getBytes(StandardCharsets.UTF_8), rnd));
                what.append("bytes mutated; ");
            } else {
                TinyTokenizerFiles.write(file, text);
            }
            if (rnd.nextInt(4) == 0) {
                String bos = layout == 1 ? "</s>" : "<|endoftext|>";
                ObjectNode config = base.tokenizerConfig(bos);
                ObjectNode map = TinyTokenizerFiles.specialTokensMap(bos);
                what.append(rnd.nextBoolean() ? "config: " + sideMutator.mutateTree(config, JsonPointer.empty(), rnd)
                        : "map: " + sideMutator.mutateTree(map, JsonPointer.empty(), rnd)).append("; ");
                TinyTokenizerFiles.write(dir.resolve("tokenizer_config.json"), JsonMutator.write(config));
                TinyTokenizerFiles.write(dir.resolve("special_tokens_map.json"), JsonMutator.write(map));
            }
            TinyTokenizerFiles.exercise(Tokenizer.load(dir));
        });
        assertThat(tally.total()).isEqualTo(CASES);
        assertThat(tally.accepted()).isGreaterThan(CASES / 6);
        assertThat(tally.rejected()).isGreaterThan(CASES / 4);
    }
}
