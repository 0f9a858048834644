package org.longexposure.io.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import org.longexposure.io.JsonMutator;

/**
 * A tiny valid byte-level BPE tokenizer in every stored form, as the base of the fuzz tests: the 256 byte-alphabet
 * tokens, about 60 merges made from a few words (each word's byte chars merged left to right, plus a few merges of
 * two multi-char tokens, which compete with them), {@code <|endoftext|>} and {@code </s>}, and added tokens with
 * every flag. Written as tokenizer.json in four layouts, or as vocab.json + merges.txt + tokenizer_config.json +
 * special_tokens_map.json. Also what a loaded tokenizer must do however damaged its files were ({@link #exercise}).
 */
final class TinyTokenizerFiles {
    static final List<String> SLOW_FILES = List.of("vocab.json", "merges.txt", "tokenizer_config.json",
            "special_tokens_map.json");
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    /** Words whose byte-level spellings are merged left to right into the tiny vocabulary. */
    private static final List<String> WORDS = List.of(" the", " and", "ing", " of", " to", "tion", " in", "ed", "er",
            " is", "é", " café", "'s", "\n\n", "  ", "12", "he", "the", " hello", " world", "ation", " that", " with",
            "re", "on", "ion", "or");
    /** Merges of two multi-char tokens, which compete with the left-to-right ones. */
    private static final String[][] PAIR_MERGES = {{"Ġt", "he"}, {"Ġ", "the"}, {"at", "ion"}, {"Ġw", "or"}};
    /** Llama-3's pre-tokenization regex, as its tokenizer.json stores it. */
    private static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
            + "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** Texts every loaded tokenizer encodes: added tokens, specials, merges, controls, an unpaired surrogate. */
    private static final List<String> TEXTS = List.of("", "the cat and the hello world", " café<|endoftext|>x",
            "[MARK] END ing END's", "\n\n  12 's tion\u0000", "</s>hello</s>", "<pad><s>  <|endoftext|>",
            "a\uD800b 😀 ÿ\u00ad", "with ation   \t\r\n");

    private final ObjectNode vocab = F.objectNode();
    private final List<String[]> merges = new ArrayList<>();
    private final List<String> slowFiles;  // the texts of SLOW_FILES

    TinyTokenizerFiles() {
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(ByteLevel.byteToChar(b)), b);
        }
        for (String w : WORDS) {
            String chars = ByteLevel.toByteChars(w.getBytes(StandardCharsets.UTF_8));
            for (int k = 2; k <= chars.length(); k++) {
                addMerge(chars.substring(0, k - 1), chars.substring(k - 1, k));
            }
        }
        for (String[] m : PAIR_MERGES) {
            addMerge(m[0], m[1]);
        }
        vocab.put("<|endoftext|>", vocab.size());
        vocab.put("</s>", vocab.size());
        StringBuilder sb = new StringBuilder("#version: 0.2\n");
        for (String[] m : merges) {
            sb.append(m[0]).append(' ').append(m[1]).append('\n');
        }
        String bos = "<|endoftext|>";
        slowFiles = List.of(JsonMutator.write(vocab), sb.toString(), JsonMutator.write(tokenizerConfig(bos)),
                JsonMutator.write(specialTokensMap(bos)));
    }

    private void addMerge(String left, String right) {
        if (!vocab.has(left) || !vocab.has(right)) {
            throw new IllegalStateException("merge of unknown token: " + left + " " + right);
        }
        for (String[] m : merges) {
            if (m[0].equals(left) && m[1].equals(right)) {
                return;
            }
        }
        merges.add(new String[] {left, right});
        if (!vocab.has(left + right)) {
            vocab.put(left + right, vocab.size());
        }
    }

    int mergeCount() {
        return merges.size();
    }

    /** Writes the slow-tokenizer files into {@code dir}. */
    void writeVocabAndMerges(Path dir) throws IOException {
        for (int i = 0; i < SLOW_FILES.size(); i++) {
            write(dir.resolve(SLOW_FILES.get(i)), slowFiles.get(i));
        }
    }

    /**
     * A tiny tokenizer.json: 0 GPT-2 (ByteLevel post-processor), 1 OPT ({@code </s>} template), 2 Llama-3-like
     * (Split + ByteLevel, pair merges, ignore_merges, a Sequence post-processor), 3 RoBERTa's processor.
     */
    ObjectNode tokenizerJson(int layout) {
        ObjectNode model = F.objectNode().put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false).put("byte_fallback", false);
        if (layout == 2) {
            model.put("ignore_merges", true);
        }
        model.set("vocab", vocab.deepCopy());
        ArrayNode m = model.putArray("merges");
        for (String[] pair : merges) {
            if (layout == 2) {
                m.add(F.arrayNode().add(pair[0]).add(pair[1]));
            } else {
                m.add(pair[0] + " " + pair[1]);
            }
        }
        ObjectNode root = F.objectNode().put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        int eot = vocab.get("<|endoftext|>").intValue();
        int eos = vocab.get("</s>").intValue();
        ArrayNode added = root.putArray("added_tokens");
        added.add(added(eot, "<|endoftext|>", true, false, false, false, false));
        added.add(added(eos, "</s>", true, false, false, false, true));
        added.add(added(vocab.size(), "<pad>", true, false, false, false, false));
        added.add(added(vocab.size() + 1, "[MARK]", false, false, true, true, true));
        added.add(added(vocab.size() + 2, "END", false, true, false, false, true));
        root.putNull("normalizer");
        ObjectNode byteLevel = F.objectNode().put("type", "ByteLevel").put("add_prefix_space", false)
                .put("trim_offsets", true).put("use_regex", layout != 2);
        if (layout == 2) {
            ObjectNode split = F.objectNode().put("type", "Split");
            split.set("pattern", F.objectNode().put("Regex", LLAMA3_REGEX));
            split.put("behavior", "Isolated").put("invert", false);
            ObjectNode seq = F.objectNode().put("type", "Sequence");
            seq.set("pretokenizers", F.arrayNode().add(split).add(byteLevel));
            root.set("pre_tokenizer", seq);
        } else {
            root.set("pre_tokenizer", byteLevel);
        }
        switch (layout) {
            case 0 -> root.set("post_processor", F.objectNode().put("type", "ByteLevel").put("trim_offsets", true));
            case 1 -> root.set("post_processor", template("</s>", eos));
            case 2 -> {
                ObjectNode seq = F.objectNode().put("type", "Sequence");
                seq.set("processors", F.arrayNode().add(F.objectNode().put("type", "ByteLevel"))
                        .add(template("<|endoftext|>", eot)));
                root.set("post_processor", seq);
            }
            default -> {
                ObjectNode post = F.objectNode().put("type", "RobertaProcessing");
                post.set("sep", F.arrayNode().add("</s>").add(eos));
                post.set("cls", F.arrayNode().add("<|endoftext|>").add(eot));
                post.put("trim_offsets", true).put("add_prefix_space", false);
                root.set("post_processor", post);
            }
        }
        root.set("decoder", F.objectNode().put("type", "ByteLevel").put("add_prefix_space", true)
                .put("trim_offsets", true).put("use_regex", true));
        root.set("model", model);
        return root;
    }

    private static ObjectNode template(String token, int id) {
        ObjectNode post = F.objectNode().put("type", "TemplateProcessing");
        post.set("single", F.arrayNode()
                .add(F.objectNode().set("SpecialToken", F.objectNode().put("id", token).put("type_id", 0)))
                .add(F.objectNode().set("Sequence", F.objectNode().put("id", "A").put("type_id", 0))));
        ObjectNode specials = post.putObject("special_tokens");
        ObjectNode spec = specials.putObject(token).put("id", token);
        spec.putArray("ids").add(id);
        spec.putArray("tokens").add(token);
        return post;
    }

    private static ObjectNode added(int id, String content, boolean special, boolean singleWord, boolean lstrip,
                                    boolean rstrip, boolean normalized) {
        return F.objectNode().put("id", id).put("content", content).put("single_word", singleWord)
                .put("lstrip", lstrip).put("rstrip", rstrip).put("normalized", normalized).put("special", special);
    }

    ObjectNode tokenizerConfig(String bos) {
        ObjectNode c = F.objectNode().put("add_bos_token", true).put("add_prefix_space", false);
        ObjectNode dec = c.putObject("added_tokens_decoder");
        dec.set(String.valueOf(vocab.size()), F.objectNode().put("content", "<pad>").put("lstrip", false)
                .put("normalized", true).put("rstrip", false).put("single_word", false).put("special", true));
        dec.set(String.valueOf(vocab.size() + 1), F.objectNode().put("content", "[MARK]").put("lstrip", true)
                .put("normalized", false).put("rstrip", true).put("single_word", false).put("special", true));
        c.put("bos_token", bos).put("clean_up_tokenization_spaces", true).put("eos_token", bos)
                .put("errors", "replace").put("pad_token", "<pad>").put("tokenizer_class", "GPT2Tokenizer")
                .put("unk_token", bos);
        c.set("model_max_length", F.numberNode(new BigInteger("1000000000000000019884624838656")));
        return c;
    }

    static ObjectNode specialTokensMap(String bos) {
        ObjectNode m = F.objectNode();
        m.set("bos_token", F.objectNode().put("content", bos).put("lstrip", false).put("normalized", true)
                .put("rstrip", false).put("single_word", false));
        m.put("eos_token", bos).put("pad_token", "<pad>");
        m.putArray("additional_special_tokens").add("[MARK]");
        return m;
    }

    /** Values worth trying in tokenizer files: type names, token strings, ids near and far from the real ones. */
    List<JsonNode> domainValues() {
        List<JsonNode> out = new ArrayList<>();
        for (String s : List.of("BPE", "ByteLevel", "Sequence", "Split", "TemplateProcessing", "RobertaProcessing",
                "BertProcessing", "WordPiece", "Unigram", "NFC", "Whitespace", "Isolated", "Removed", "A",
                "<|endoftext|>", "</s>", "<pad>", "[MARK]", "Ġ", "Ġthe", "Ġt he", "Ġt  he", "he", "t", " ",
                "GPT2Tokenizer", "GPT2TokenizerFast", "LlamaTokenizer", "\\p{L}+", "(", "(?i:'s)|\\s+", "a*",
                "(?<=a)b", "\\p{IsNope}", "[", "$", "x{2,1}")) {
            out.add(F.textNode(s));
        }
        for (int id : new int[] {0, 255, 256, vocab.size() - 1, vocab.size(), vocab.size() + 3, 50256, 99999,
                (1 << 24) - 1, 1 << 24, 1 << 30, Integer.MAX_VALUE - 1}) {
            out.add(F.numberNode(id));
        }
        out.add(F.arrayNode().add("Ġt").add("he"));
        out.add(F.arrayNode().add("Ġt").add(5));
        out.add(F.arrayNode().add("</s>").add(2));
        out.add(F.objectNode().put("Regex", "\\s+"));
        out.add(F.objectNode().put("String", " "));
        out.add(F.objectNode().put("content", "<s>").put("special", true));
        out.add(F.objectNode().put("content", ""));
        out.add(F.objectNode().put("id", 3).put("content", "x"));
        out.add(F.objectNode().put("type", "ByteLevel"));
        out.add(F.objectNode().put("type", "Sequence").set("processors", F.arrayNode()));
        ObjectNode nested = F.objectNode().put("type", "Sequence");
        nested.set("pretokenizers", F.arrayNode().add(F.objectNode().put("type", "ByteLevel")));
        out.add(nested);
        ObjectNode deepRegex = F.objectNode().put("Regex", "(".repeat(5000) + "a" + ")".repeat(5000));
        out.add(deepRegex);
        return out;
    }

    // --- what a loaded tokenizer must do

    /** Encodes and decodes a few texts; every id produced must be a token, every role id too. */
    static void exercise(Tokenizer t) {
        assertThat(t.vocabSize()).isPositive();
        for (OptionalInt role : List.of(t.bosId(), t.eosId(), t.padId())) {
            if (role.isPresent() && t.idToToken(role.getAsInt()).isEmpty()) {
                fail("role id " + role.getAsInt() + " has no token");
            }
        }
        for (String s : TEXTS) {
            int[] plain = t.encode(s);
            int[] withSpecials = t.encodeWithSpecials(s);
            for (int[] ids : List.of(plain, withSpecials)) {
                for (int id : ids) {
                    if (t.idToToken(id).isEmpty()) {
                        fail("encoding " + JsonMutator.shorten(s) + " gave id " + id + ", which has no token");
                    }
                }
                t.decode(ids, false);
                t.decode(ids, true);
            }
        }
    }

    // --- files

    /** Writes text as UTF-8, an unpaired surrogate becoming '?' (as any UTF-8 writer must choose something). */
    static void write(Path p, String text) throws IOException {
        Files.write(p, text.getBytes(StandardCharsets.UTF_8));
    }

    /** Removes every tokenizer file from {@code dir}. */
    static void clear(Path dir) throws IOException {
        for (String name : List.of("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                "special_tokens_map.json")) {
            Files.deleteIfExists(dir.resolve(name));
        }
    }
}
