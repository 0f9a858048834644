package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Reads a Hugging Face tokenizers file ({@code tokenizer.json}) whose model is byte-level BPE.
 *
 * <p>Reference: the serde layout of HF tokenizers 0.21 ({@code TokenizerImpl}'s fields {@code added_tokens},
 * {@code normalizer}, {@code pre_tokenizer}, {@code model}, {@code post_processor}, {@code decoder}). Supported:
 * model {@code BPE} (the {@code type} key may be missing in older files) with merges as {@code "a b"} strings or
 * {@code ["a", "b"]} pairs and optional {@code ignore_merges}; no normalizer; pre-tokenizer {@code ByteLevel},
 * possibly last in a {@code Sequence} after {@code Split} steps with behaviour {@code Isolated}; decoder
 * {@code ByteLevel}; post-processor {@code TemplateProcessing}, {@code RobertaProcessing}, {@code BertProcessing},
 * {@code ByteLevel} (adds nothing) or a {@code Sequence} of these. Anything else is an error naming the field, so that
 * a tokenizer that would give other ids than HF's is never loaded silently.
 */
final class TokenizerJsonReader {
    private TokenizerJsonReader() {}

    static Tokenizer read(Path file) {
        JsonNode root = JsonFiles.readObject(file, "a Hugging Face tokenizers file (tokenizer.json)");

        JsonNode model = root.get("model");
        if (model == null || !model.isObject()) {
            throw new InputFormatException(file, "model", "expected an object describing the BPE model, found "
                    + (model == null ? "nothing" : JsonFiles.describe(model)));
        }
        checkModel(file, model);
        boolean ignoreMerges = JsonFiles.optBoolean(file, model, "ignore_merges", "model.ignore_merges", false);
        Map<String, Integer> vocab = BpeFiles.readVocab(file, model.get("vocab"), "model.vocab");
        List<BpeFiles.Merge> merges = BpeFiles.readMergesJson(file, model.get("merges"), "model.merges");
        BpeModel bpe = BpeFiles.build(file, "model.vocab", vocab, file, merges, ignoreMerges);

        JsonNode normalizer = root.get("normalizer");
        if (normalizer != null && !normalizer.isNull()) {
            throw new InputFormatException(file, "normalizer", "unsupported normalizer " + typeOf(normalizer)
                    + "; byte-level BPE tokenizers read here have none (null)");
        }
        PreTokenizer pre = preTokenizer(file, root.get("pre_tokenizer"));
        checkDecoder(file, root.get("decoder"), "decoder");
        List<AddedToken> added = AddedVocabulary.assignIds(addedTokens(file, root.get("added_tokens")), vocab);
        BitSet tokenIds = new BitSet();
        vocab.values().forEach(tokenIds::set);
        added.forEach(t -> tokenIds.set(t.id()));
        PostProcessor post = postProcessor(file, root.get("post_processor"), "post_processor", tokenIds);

        Path dir = file.toAbsolutePath().getParent();
        HfTokenizerConfig config = HfTokenizerConfig.read(dir);
        Map<String, HfTokenizerConfig.TokenSpec> roles = new HashMap<>(config.roles());
        if (config.isGpt2Class() && added.stream().anyMatch(
                t -> t.content().equals(HfTokenizerConfig.GPT2_DEFAULT_SPECIAL))) {
            for (String role : List.of("bos_token", "eos_token")) {
                roles.putIfAbsent(role, HfTokenizerConfig.TokenSpec.byDefault(HfTokenizerConfig.GPT2_DEFAULT_SPECIAL,
                        file));
            }
        }
        return new Tokenizer(file, vocab, bpe, added, pre, post, roles);
    }

    private static void checkModel(Path file, JsonNode model) {
        Optional<String> type = JsonFiles.optText(file, model, "type", "model.type");
        if (type.isEmpty() && !model.has("merges")) {
            throw new InputFormatException(file, "model.type", "missing model type; expected \"BPE\"");
        }
        if (type.isPresent() && !type.get().equals("BPE")) {
            throw new InputFormatException(file, "model.type", "unsupported model type \"" + type.get()
                    + "\"; expected \"BPE\" (byte-level BPE as in GPT-2, OPT, Llama-3)");
        }
        JsonNode dropout = model.get("dropout");
        if (dropout != null && !dropout.isNull() && !(dropout.isNumber() && dropout.doubleValue() == 0.0)) {
            throw new InputFormatException(file, "model.dropout", "BPE dropout " + dropout
                    + " makes encoding random; expected null");
        }
        for (String field : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            Optional<String> v = JsonFiles.optText(file, model, field, "model." + field);
            if (v.isPresent() && !v.get().isEmpty()) {
                throw new InputFormatException(file, "model." + field, "unsupported value " + BpeFiles.quote(v.get())
                        + "; byte-level BPE expects null or \"\"");
            }
        }
    }

    // --- pre-tokenizer

    private static PreTokenizer preTokenizer(Path file, JsonNode node) {
        if (node == null || node.isNull()) {
            throw new InputFormatException(file, "pre_tokenizer", "missing; expected a ByteLevel pre-tokenizer");
        }
        List<JsonNode> steps = new ArrayList<>();
        List<String> paths = new ArrayList<>();
        flattenSequence(file, node, "pre_tokenizer", "pretokenizers", steps, paths);
        List<Pattern> splits = new ArrayList<>();
        for (int i = 0; i < steps.size(); i++) {
            JsonNode step = steps.get(i);
            String path = paths.get(i);
            String type = typeOf(step);
            boolean last = i == steps.size() - 1;
            if (type.equals("ByteLevel")) {
                if (!last) {
                    throw new InputFormatException(file, path, "a ByteLevel pre-tokenizer must be the last step");
                }
                return new PreTokenizer(splits,
                        JsonFiles.optBoolean(file, step, "add_prefix_space", path + ".add_prefix_space", true),
                        JsonFiles.optBoolean(file, step, "use_regex", path + ".use_regex", true));
            } else if (type.equals("Split")) {
                splits.add(splitPattern(file, step, path));
            } else {
                throw new InputFormatException(file, path + ".type", "unsupported pre-tokenizer " + type
                        + "; expected ByteLevel, possibly after Split steps in a Sequence");
            }
        }
        throw new InputFormatException(file, "pre_tokenizer", "no ByteLevel step; expected a ByteLevel pre-tokenizer");
    }

    private static Pattern splitPattern(Path file, JsonNode step, String path) {
        String behavior = JsonFiles.optText(file, step, "behavior", path + ".behavior").orElse("");
        if (!behavior.equals("Isolated")) {
            throw new InputFormatException(file, path + ".behavior", "unsupported Split behavior \"" + behavior
                    + "\"; expected \"Isolated\"");
        }
        if (JsonFiles.optBoolean(file, step, "invert", path + ".invert", false)) {
            throw new InputFormatException(file, path + ".invert", "unsupported inverted Split; expected false");
        }
        JsonNode pattern = step.get("pattern");
        if (pattern != null && pattern.isObject() && pattern.size() == 1 && pattern.has("String")
                && pattern.get("String").isTextual()) {
            return Pattern.compile(Pattern.quote(pattern.get("String").asText()));
        }
        if (pattern != null && pattern.isObject() && pattern.size() == 1 && pattern.has("Regex")
                && pattern.get("Regex").isTextual()) {
            try {
                // \s, \w, \d as Unicode classes, as in Oniguruma, which HF tokenizers compiles these with.
                return Pattern.compile(pattern.get("Regex").asText(), Pattern.UNICODE_CHARACTER_CLASS);
            } catch (PatternSyntaxException e) {
                throw new InputFormatException(file, path + ".pattern.Regex", "regex not understood: "
                        + e.getDescription() + "; expected a regex java.util.regex can compile", e);
            }
        }
        throw new InputFormatException(file, path + ".pattern", "expected {\"Regex\": \"...\"} or {\"String\": \"...\"}, "
                + "found " + (pattern == null ? "nothing" : JsonFiles.describe(pattern)));
    }

    // --- decoder

    private static void checkDecoder(Path file, JsonNode node, String path) {
        if (node == null || node.isNull()) {
            throw new InputFormatException(file, path, "missing; expected a ByteLevel decoder");
        }
        String type = typeOf(node);
        if (!type.equals("ByteLevel")) {
            throw new InputFormatException(file, path + ".type", "unsupported decoder " + type
                    + "; expected ByteLevel");
        }
    }

    // --- added tokens

    private static List<AddedToken> addedTokens(Path file, JsonNode node) {
        List<AddedToken> out = new ArrayList<>();
        if (node == null || node.isNull()) {
            return out;
        }
        if (!node.isArray()) {
            throw new InputFormatException(file, "added_tokens", "expected a list, found " + JsonFiles.describe(node));
        }
        for (int i = 0; i < node.size(); i++) {
            JsonNode t = node.get(i);
            String path = "added_tokens[" + i + "]";
            if (!t.isObject()) {
                throw new InputFormatException(file, path, "expected an object with id and content, found "
                        + JsonFiles.describe(t));
            }
            int id = JsonFiles.tokenId(file, t.get("id"), path + ".id");
            String content = JsonFiles.optText(file, t, "content", path + ".content")
                    .orElseThrow(() -> new InputFormatException(file, path + ".content", "missing token text"));
            out.add(new AddedToken(content, id,
                    JsonFiles.optBoolean(file, t, "special", path + ".special", false),
                    JsonFiles.optBoolean(file, t, "single_word", path + ".single_word", false),
                    JsonFiles.optBoolean(file, t, "lstrip", path + ".lstrip", false),
                    JsonFiles.optBoolean(file, t, "rstrip", path + ".rstrip", false),
                    JsonFiles.optBoolean(file, t, "normalized", path + ".normalized", true)));
        }
        return out;
    }

    // --- post-processor

    /** The post-processor; every id it adds must be in {@code tokenIds}, else decoding its output would fail. */
    private static PostProcessor postProcessor(Path file, JsonNode node, String path, BitSet tokenIds) {
        if (node == null || node.isNull()) {
            return PostProcessor.NONE;
        }
        String type = typeOf(node);
        switch (type) {
            case "ByteLevel":
                return PostProcessor.NONE;  // only trims offsets
            case "TemplateProcessing":
                return template(file, node, path, tokenIds);
            case "RobertaProcessing":
            case "BertProcessing":
                return new PostProcessor(new int[] {pairId(file, node, "cls", path, tokenIds)},
                        new int[] {pairId(file, node, "sep", path, tokenIds)});
            case "Sequence": {
                JsonNode list = node.get("processors");
                if (list == null || !list.isArray()) {
                    throw new InputFormatException(file, path + ".processors", "expected a list of post-processors");
                }
                PostProcessor result = PostProcessor.NONE;
                for (int i = 0; i < list.size(); i++) {
                    result = postProcessor(file, list.get(i), path + ".processors[" + i + "]", tokenIds)
                            .around(result);
                }
                return result;
            }
            default:
                throw new InputFormatException(file, path + ".type", "unsupported post-processor " + type
                        + "; expected TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel or Sequence");
        }
    }

    /** TemplateProcessing's "single" template: special-token pieces before and after the one sequence piece. */
    private static PostProcessor template(Path file, JsonNode node, String path, BitSet tokenIds) {
        JsonNode single = node.get("single");
        if (single == null || !single.isArray()) {
            throw new InputFormatException(file, path + ".single", "expected the single-sequence template as a list");
        }
        Map<String, int[]> specials = new LinkedHashMap<>();
        JsonNode st = node.get("special_tokens");
        if (st != null && st.isObject()) {
            for (Map.Entry<String, JsonNode> e : st.properties()) {
                String p = path + ".special_tokens." + BpeFiles.quote(e.getKey());
                JsonNode ids = e.getValue().get("ids");
                if (ids == null || !ids.isArray()) {
                    throw new InputFormatException(file, p + ".ids", "expected a list of token ids");
                }
                int[] arr = new int[ids.size()];
                for (int i = 0; i < arr.length; i++) {
                    arr[i] = specialId(file, ids.get(i), p + ".ids[" + i + "]", tokenIds);
                }
                specials.put(e.getKey(), arr);
            }
        }
        IntList prefix = new IntList(4);
        IntList suffix = new IntList(4);
        int sequences = 0;
        for (int i = 0; i < single.size(); i++) {
            JsonNode piece = single.get(i);
            String p = path + ".single[" + i + "]";
            if (piece.has("Sequence")) {
                sequences++;
            } else if (piece.has("SpecialToken")) {
                String id = JsonFiles.optText(file, piece.get("SpecialToken"), "id", p + ".SpecialToken.id")
                        .orElseThrow(() -> new InputFormatException(file, p + ".SpecialToken.id", "missing"));
                int[] ids = specials.get(id);
                if (ids == null) {
                    throw new InputFormatException(file, p + ".SpecialToken.id", "special token " + BpeFiles.quote(id)
                            + " is not listed in " + path + ".special_tokens");
                }
                (sequences == 0 ? prefix : suffix).addAll(ids);
            } else {
                throw new InputFormatException(file, p, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, found "
                        + JsonFiles.describe(piece));
            }
        }
        if (sequences != 1) {
            throw new InputFormatException(file, path + ".single", "expected exactly one Sequence piece, found "
                    + sequences);
        }
        return new PostProcessor(prefix.toArray(), suffix.toArray());
    }

    /** RobertaProcessing's {@code "cls": ["<s>", 0]}: the id of a [token, id] pair. */
    private static int pairId(Path file, JsonNode node, String field, String path, BitSet tokenIds) {
        JsonNode pair = node.get(field);
        if (pair == null || !pair.isArray() || pair.size() != 2) {
            throw new InputFormatException(file, path + "." + field, "expected [token, id], found "
                    + (pair == null ? "nothing" : JsonFiles.describe(pair)));
        }
        return specialId(file, pair.get(1), path + "." + field + "[1]", tokenIds);
    }

    /** A post-processor's token id, which must belong to a token of the vocabulary or the added tokens. */
    private static int specialId(Path file, JsonNode v, String path, BitSet tokenIds) {
        int id = JsonFiles.tokenId(file, v, path);
        if (!tokenIds.get(id)) {
            throw new InputFormatException(file, path, "token id " + id + " is neither in model.vocab nor among the "
                    + "added_tokens; expected the id of a special token");
        }
        return id;
    }

    // --- helpers

    /** Appends the steps of a (possibly nested) Sequence, or {@code node} itself. */
    private static void flattenSequence(Path file, JsonNode node, String path, String listField, List<JsonNode> steps,
                                        List<String> paths) {
        if (!node.isObject()) {
            throw new InputFormatException(file, path, "expected an object with a \"type\", found "
                    + JsonFiles.describe(node));
        }
        if (typeOf(node).equals("Sequence")) {
            JsonNode list = node.get(listField);
            if (list == null || !list.isArray()) {
                throw new InputFormatException(file, path + "." + listField, "expected a list of steps");
            }
            for (int i = 0; i < list.size(); i++) {
                flattenSequence(file, list.get(i), path + "." + listField + "[" + i + "]", listField, steps, paths);
            }
        } else {
            steps.add(node);
            paths.add(path);
        }
    }

    private static String typeOf(JsonNode node) {
        JsonNode t = node.get("type");
        return t != null && t.isTextual() ? t.asText() : "(no type)";
    }
}
