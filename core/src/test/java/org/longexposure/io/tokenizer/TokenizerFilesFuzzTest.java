package org.longexposure.io.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.FuzzHarness;
import org.longexposure.io.JsonMutator;

/**
 * Seeded mutation fuzzing of the reader of the files a repository ships without tokenizer.json: vocab.json,
 * merges.txt, tokenizer_config.json and special_tokens_map.json, built tiny by {@link TinyTokenizerFiles}. One or two
 * of them are damaged per case: merges.txt line by line (a line broken, padded, tab-separated, duplicated, deleted,
 * swapped, CRLF, a mid-file header, a merge of unknown tokens, truncation, ill-formed UTF-8), the JSON files at the
 * tree level (ids, role tokens, flags, added_tokens_decoder keys and entries), the text level (bad escapes,
 * truncation, raw NaN, deep nesting) and the byte level, or deleted. A few text-level cases damage the real OPT
 * files, whose every load parses 50,000 tokens and merges. {@link Tokenizer#load} must either reject the folder with
 * an {@code InputFormatException} naming one of its files, or load a tokenizer that encodes and decodes without
 * throwing, every id it produces being a token.
 */
class TokenizerFilesFuzzTest {
    private static final int CASES = 2000;
    private static final int OPT_CASES = 4;

    @TempDir
    Path tmp;

    private Path dir;
    private TinyTokenizerFiles base;

    @BeforeEach
    void setUp() throws IOException {
        dir = Files.createDirectories(tmp.resolve("tok"));
        base = new TinyTokenizerFiles();
    }

    /** The base loads and tokenizes, so that rejections below are due to the damage alone. */
    @Test
    void tinyBaseLoadsAndEncodes() throws IOException {
        base.writeVocabAndMerges(dir);
        Tokenizer t = Tokenizer.load(dir);
        assertThat(t.encode(" the")).hasSize(1);
        assertThat(t.encodeWithSpecials("x")).startsWith(t.bosId().orElseThrow());
        assertThat(t.padId()).isPresent();
        assertThat(t.tokenToId("[MARK]")).isPresent();
        TinyTokenizerFiles.exercise(t);
    }

    @Test
    void damagedVocabAndMergesFailOnlyWithInputFormatException() {
        JsonMutator mutator = new JsonMutator(base.domainValues(), List.of("bos_token", "eos_token", "unk_token",
                "pad_token", "add_bos_token", "add_eos_token", "add_prefix_space", "tokenizer_class",
                "added_tokens_decoder", "additional_special_tokens", "content", "special", "lstrip", "rstrip",
                "single_word", "normalized", "-1", "300", "2147483648", "x1", ""));
        SplittableRandom rnd = new SplittableRandom(0xB0CAB5L);
        FuzzHarness.Tally tally = FuzzHarness.run(CASES, 250, Duration.ofSeconds(60), dir.toString(), (i, what) -> {
            TinyTokenizerFiles.clear(dir);
            base.writeVocabAndMerges(dir);
            for (int k = rnd.nextInt(4) == 0 ? 2 : 1; k > 0; k--) {
                int which = rnd.nextInt(20);
                if (which < 8) {
                    damageMerges(dir.resolve("merges.txt"), which == 7, rnd, what);
                } else {
                    String name = which < 13 ? "vocab.json" : which < 17 ? "tokenizer_config.json"
                            : "special_tokens_map.json";
                    damageJson(dir.resolve(name), mutator, rnd, what);
                }
            }
            TinyTokenizerFiles.exercise(Tokenizer.load(dir));
        });
        assertThat(tally.total()).isEqualTo(CASES);
        assertThat(tally.accepted()).isGreaterThan(CASES / 6);
        assertThat(tally.rejected()).isGreaterThan(CASES / 4);
    }

    @Test
    void damagedOptFilesFailOnlyWithInputFormatException() throws IOException {
        String vocabJson = Files.readString(TestTexts.OPT.resolve("vocab.json"));
        String mergesTxt = Files.readString(TestTexts.OPT.resolve("merges.txt"));
        String tokenizerJson = Files.readString(TestTexts.OPT.resolve("tokenizer.json"));
        SplittableRandom rnd = new SplittableRandom(0x0F7L);
        FuzzHarness.Tally tally = FuzzHarness.run(OPT_CASES, OPT_CASES, Duration.ofSeconds(120), dir.toString(),
                (i, what) -> {
            TinyTokenizerFiles.clear(dir);
            if (i % 3 == 0) {
                JsonMutator.Mutant m = JsonMutator.mutateText(tokenizerJson, rnd);
                what.append("tokenizer.json: ").append(m.what());
                TinyTokenizerFiles.write(dir.resolve("tokenizer.json"), m.text());
            } else {
                String merges = mergesTxt;
                String vocab = vocabJson;
                if (i % 3 == 1) {
                    merges = mutateLines(merges, rnd, what);
                } else {
                    JsonMutator.Mutant m = JsonMutator.mutateText(vocab, rnd);
                    what.append("vocab.json: ").append(m.what());
                    vocab = m.text();
                }
                TinyTokenizerFiles.write(dir.resolve("vocab.json"), vocab);
                TinyTokenizerFiles.write(dir.resolve("merges.txt"), merges);
                for (String name : List.of("tokenizer_config.json", "special_tokens_map.json")) {
                    Files.copy(TestTexts.OPT.resolve(name), dir.resolve(name));
                }
            }
            TinyTokenizerFiles.exercise(Tokenizer.load(dir));
        });
        assertThat(tally.total()).isEqualTo(OPT_CASES);
    }

    /** merges.txt: one or two line-level edits, or ill-formed UTF-8. */
    private static void damageMerges(Path p, boolean bytes, SplittableRandom rnd, StringBuilder what)
            throws IOException {
        // lenient decoding: an earlier edit of this case may have broken the UTF-8
        String text = new String(Files.readAllBytes(p), StandardCharsets.UTF_8);
        if (bytes) {
            Files.write(p, JsonMutator.mutateBytes(text.getBytes(StandardCharsets.UTF_8), rnd));
            what.append("merges.txt bytes mutated; ");
            return;
        }
        for (int k = rnd.nextInt(2); k >= 0; k--) {
            text = mutateLines(text, rnd, what);
        }
        TinyTokenizerFiles.write(p, text);
        what.append("merges.txt ").append(JsonMutator.shorten(text)).append("; ");
    }

    /** A JSON file: tree and/or text edits, its bytes damaged, or the file deleted. */
    private static void damageJson(Path p, JsonMutator mutator, SplittableRandom rnd, StringBuilder what)
            throws IOException {
        String name = p.getFileName().toString();
        if (!Files.exists(p)) {
            return;  // deleted by an earlier edit of this case
        }
        int mode = rnd.nextInt(8);
        if (mode == 7) {
            Files.delete(p);
            what.append("deleted ").append(name).append("; ");
            return;
        }
        if (mode == 6) {
            Files.write(p, JsonMutator.mutateBytes(Files.readAllBytes(p), rnd));
            what.append(name).append(" bytes mutated; ");
            return;
        }
        // lenient decoding: an earlier edit of this case may have broken the UTF-8
        String text = new String(Files.readAllBytes(p), StandardCharsets.UTF_8);
        JsonNode root = mode < 4 ? JsonMutator.readOrNull(text) : null;  // null: damaged by an earlier edit
        if (root != null) {
            for (int k = rnd.nextInt(2); k >= 0; k--) {
                what.append(name).append(": ").append(mutator.mutateTree(root, JsonPointer.empty(), rnd)).append("; ");
            }
            text = JsonMutator.write(root);
        }
        if (mode >= 3 || root == null) {
            JsonMutator.Mutant m = JsonMutator.mutateText(text, rnd);
            text = m.text();
            what.append(name).append(": ").append(m.what()).append("; ");
        }
        TinyTokenizerFiles.write(p, text);
        what.append(JsonMutator.shorten(text)).append("; ");
    }

    /** One line-level edit of merges.txt. */
    private static String mutateLines(String text, SplittableRandom rnd, StringBuilder what) {
        List<String> lines = new ArrayList<>(List.of(text.split("\n", -1)));
        int n = lines.size();
        int at = rnd.nextInt(n);
        String line = lines.get(at);
        int op = rnd.nextInt(13);
        switch (op) {
            case 0 -> lines.set(at, line.replaceFirst(" ", ""));
            case 1 -> lines.set(at, JsonMutator.pick(List.of(line + " ", " " + line, line.replaceFirst(" ", "  "),
                    line + " x"), rnd));
            case 2 -> lines.set(at, line.replace(' ', '\t'));
            case 3 -> lines.add(at, line);
            case 4 -> lines.remove(at);
            case 5 -> {
                int other = rnd.nextInt(n);
                lines.set(at, lines.get(other));
                lines.set(other, line);
            }
            case 6 -> lines.add(at, "");
            case 7 -> lines.add(at, "#version: 0.2");
            case 8 -> lines.add(at, JsonMutator.pick(List.of("zz qq", "e h", "Ġthe Ġthe", "Ġ the", "Ġt he",
                    "<|endoftext|> </s>", "\\u0120 t", "Ġ\u0000 t"), rnd));
            case 9 -> {
                for (int i = 0; i < lines.size(); i++) {
                    lines.set(i, lines.get(i) + "\r");
                }
            }
            case 10 -> lines.set(at, JsonMutator.editString(line, rnd));
            case 11 -> lines.set(at, line + "\r");
            default -> {
                String joined = String.join("\n", lines);
                what.append("merges.txt truncated; ");
                return joined.substring(0, rnd.nextInt(joined.length() + 1));
            }
        }
        what.append("merges.txt line op ").append(op).append(" at ").append(at).append("; ");
        return String.join("\n", lines);
    }
}
