package org.longexposure.io.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * tokenizer.json features that the OPT and GPT-2 files do not use, each checked against HF on a variant of GPT-2's
 * file: merges stored as pairs, add_prefix_space, Split + ByteLevel sequences with ignore_merges (Llama-3's
 * layout), RoBERTa / template / sequence post-processors, added tokens with lstrip / rstrip / single_word /
 * normalized flags, and a small hand-made merge table where merges compete.
 */
class TokenizerVariantsTest {
    /** Llama-3's pre-tokenization regex, as its tokenizer.json stores it. */
    private static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
            + "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static List<String> texts;
    private static ObjectNode gpt2Json;

    @TempDir
    Path dir;

    @BeforeAll
    static void setUp() throws IOException {
        texts = new ArrayList<>(TestTexts.gutenberg().subList(0, 250));
        texts.addAll(TestTexts.hardCases());
        texts.addAll(TestTexts.randomUnicode(250, 99L));
        gpt2Json = (ObjectNode) JSON.readTree(TestTexts.GPT2.resolve("tokenizer.json").toFile());
    }

    @Test
    void pairMergesPrefixSpaceAndRobertaPostProcessor() throws IOException {
        checkVariant(root -> {
            ArrayNode pairs = JSON.createArrayNode();
            for (JsonNode m : root.get("model").get("merges")) {
                String[] ab = m.asText().split(" ");
                pairs.add(JSON.createArrayNode().add(ab[0]).add(ab[1]));
            }
            ((ObjectNode) root.get("model")).set("merges", pairs);
            ((ObjectNode) root.get("pre_tokenizer")).put("add_prefix_space", true);
            ObjectNode post = JSON.createObjectNode().put("type", "RobertaProcessing");
            post.set("sep", JSON.createArrayNode().add("<|endoftext|>").add(50256));
            post.set("cls", JSON.createArrayNode().add("<|endoftext|>").add(50256));
            post.put("trim_offsets", true).put("add_prefix_space", true);
            root.set("post_processor", post);
        }, texts);
    }

    @Test
    void splitThenByteLevelWithIgnoreMergesAndTemplateSequence() throws IOException {
        checkVariant(root -> {
            ObjectNode split = JSON.createObjectNode().put("type", "Split");
            split.set("pattern", JSON.createObjectNode().put("Regex", LLAMA3_REGEX));
            split.put("behavior", "Isolated").put("invert", false);
            ObjectNode byteLevel = JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", false)
                    .put("trim_offsets", true).put("use_regex", false);
            ObjectNode seq = JSON.createObjectNode().put("type", "Sequence");
            seq.set("pretokenizers", JSON.createArrayNode().add(split).add(byteLevel));
            root.set("pre_tokenizer", seq);
            ((ObjectNode) root.get("model")).put("ignore_merges", true);
            root.set("post_processor", postSequence(template("<|endoftext|>", 50256)));
        }, texts);
    }

    @Test
    void addedTokensWithFlags() throws IOException {
        List<String> withTokens = new ArrayList<>(texts);
        withTokens.addAll(List.of("x <mark> y", "  <mark>", "a<mark>b", "<mark><mark>", "\t\n <mark>", "END of the END",
                "THE END.", "ENDING", "_END_", "END", "é END é", "[R]   next", "[R]\n\nx", "a [R] [R]  b",
                "<|endoftext|>", "<|end", "x<|endoftext|>y", "singing nation at ations", "attention", "ating",
                "<mark>END[R]ing", " <mark> END [R] ing "));
        SplittableRandom rng = new SplittableRandom(3);
        String[] parts = {"<mark>", "END", "[R]", "<|end", "oftext|>", "ing", "ation", "at", " ", "  ", "\n", "x", "é",
                "_", "1"};
        for (int i = 0; i < 300; i++) {
            StringBuilder sb = new StringBuilder();
            for (int k = rng.nextInt(1, 9); k > 0; k--) {
                sb.append(parts[rng.nextInt(parts.length)]);
            }
            withTokens.add(sb.toString());
        }
        checkVariant(root -> {
            ArrayNode added = (ArrayNode) root.get("added_tokens");
            added.add(added(50257, "<mark>", true, false, true, false, false));
            added.add(added(50258, "END", false, true, false, false, true));
            added.add(added(50259, "[R]", true, false, false, true, true));
            added.add(added(50260, "<|end", false, false, false, false, false));
            added.add(added(50261, "ing", false, false, false, false, true));
            added.add(added(50262, "ation", false, false, false, false, true));
            added.add(added(50263, "at", false, false, false, false, true));
        }, withTokens);
    }

    /** A tiny vocabulary over a, b and space whose merges compete (overlapping pairs, rank ties by position). */
    @Test
    void competingMergesOnTinyVocabulary() throws IOException {
        checkTinyVocabulary(false);
    }

    /** The same with ignore_merges: words that are tokens no merge path reaches ("abba") are taken whole. */
    @Test
    void ignoreMergesOnTinyVocabulary() throws IOException {
        checkTinyVocabulary(true);
    }

    private void checkTinyVocabulary(boolean ignoreMerges) throws IOException {
        String[][] merges = {{"a", "a"}, {"b", "a"}, {"a", "b"}, {"aa", "a"}, {"Ġ", "a"}, {"ab", "a"}, {"b", "aa"},
                {"aa", "b"}, {"aa", "aa"}, {"ba", "b"}, {"Ġa", "a"}, {"Ġ", "b"}, {"Ġaa", "aa"}, {"baa", "b"},
                {"ab", "ab"}, {"Ġb", "a"}, {"aaaa", "a"}, {"Ġ", "Ġ"}, {"ĠĠ", "Ġ"}};
        ObjectNode vocab = JSON.createObjectNode();
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(ByteLevel.byteToChar(b)), b);
        }
        ArrayNode mergeList = JSON.createArrayNode();
        for (String[] m : merges) {
            if (!vocab.has(m[0] + m[1])) {
                vocab.put(m[0] + m[1], vocab.size());
            }
            mergeList.add(m[0] + " " + m[1]);
        }
        for (String unreachable : List.of("abba", "Ġabab", "bbb")) {
            vocab.put(unreachable, vocab.size());
        }
        ObjectNode model = JSON.createObjectNode().put("type", "BPE").put("ignore_merges", ignoreMerges);
        model.putNull("dropout");
        model.putNull("unk_token");
        model.set("vocab", vocab);
        model.set("merges", mergeList);
        ObjectNode root = JSON.createObjectNode().put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        root.set("added_tokens", JSON.createArrayNode());
        root.putNull("normalizer");
        root.set("pre_tokenizer", JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", false)
                .put("trim_offsets", true).put("use_regex", true));
        root.putNull("post_processor");
        root.set("decoder", JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", true)
                .put("trim_offsets", true).put("use_regex", true));
        root.set("model", model);

        SplittableRandom rng = new SplittableRandom(11);
        List<String> words = new ArrayList<>();
        for (int i = 0; i < 2000; i++) {
            StringBuilder sb = new StringBuilder();
            for (int k = rng.nextInt(1, 40); k > 0; k--) {
                int c = rng.nextInt(10);
                sb.append(c < 5 ? 'a' : c < 8 ? 'b' : ' ');
            }
            words.add(sb.toString());
        }
        words.add("abba abab bbb abba");
        words.add("a".repeat(1000));
        words.add(" ".repeat(300) + "ab".repeat(300));
        Path file = dir.resolve("tokenizer.json");
        JSON.writeValue(file.toFile(), root);
        compare(file, words);
    }

    // --- helpers

    private void checkVariant(Consumer<ObjectNode> edit, List<String> cases) throws IOException {
        ObjectNode root = gpt2Json.deepCopy();
        edit.accept(root);
        Path file = dir.resolve("tokenizer.json");
        JSON.writeValue(file.toFile(), root);
        compare(file, cases);
    }

    private static void compare(Path file, List<String> cases) {
        Tokenizer ours = Tokenizer.fromTokenizerJson(file);
        try (HfOracle hf = HfOracle.load(file)) {
            TokenizerHfParityTest.assertSameIds(ours, cases, TokenizerHfParityTest.Expected.of(hf, cases));
            for (String s : cases) {
                int[] ids = ours.encodeWithSpecials(s);
                for (boolean skip : new boolean[] {false, true}) {
                    String expected = hf.decode(ids, skip);
                    String actual = ours.decode(ids, skip);
                    if (!actual.equals(expected)) {
                        assertThat(actual).as("decode of %s, skip %s", TokenizerHfParityTest.show(s), skip)
                                .isEqualTo(expected);
                    }
                }
            }
        }
    }

    private static ObjectNode added(int id, String content, boolean special, boolean singleWord, boolean lstrip,
                                    boolean rstrip, boolean normalized) {
        return JSON.createObjectNode().put("id", id).put("content", content).put("single_word", singleWord)
                .put("lstrip", lstrip).put("rstrip", rstrip).put("normalized", normalized).put("special", special);
    }

    /** TemplateProcessing with {@code token} before and after the sequence. */
    private static ObjectNode template(String token, int id) {
        ObjectNode t = JSON.createObjectNode().put("type", "TemplateProcessing");
        ObjectNode special = JSON.createObjectNode().set("SpecialToken",
                JSON.createObjectNode().put("id", token).put("type_id", 0));
        ObjectNode seqA = JSON.createObjectNode().set("Sequence", JSON.createObjectNode().put("id", "A").put("type_id", 0));
        ObjectNode seqB = JSON.createObjectNode().set("Sequence", JSON.createObjectNode().put("id", "B").put("type_id", 1));
        t.set("single", JSON.createArrayNode().add(special).add(seqA).add(special.deepCopy()));
        t.set("pair", JSON.createArrayNode().add(special.deepCopy()).add(seqA.deepCopy()).add(seqB));
        ObjectNode entry = JSON.createObjectNode().put("id", token);
        entry.set("ids", JSON.createArrayNode().add(id));
        entry.set("tokens", JSON.createArrayNode().add(token));
        t.set("special_tokens", JSON.createObjectNode().set(token, entry));
        return t;
    }

    /** A post-processor Sequence: ByteLevel (no tokens), then {@code inner}. */
    private static ObjectNode postSequence(ObjectNode inner) {
        ObjectNode seq = JSON.createObjectNode().put("type", "Sequence");
        seq.set("processors", JSON.createArrayNode()
                .add(JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", false)
                        .put("trim_offsets", false).put("use_regex", false))
                .add(inner));
        return seq;
    }
}
