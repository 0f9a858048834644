package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What transformers reads from {@code tokenizer_config.json} and {@code special_tokens_map.json} next to the
 * vocabulary: which tokens play the bos/eos/pad/... roles, extra special tokens, and the slow GPT2Tokenizer's
 * {@code add_bos_token}, {@code add_eos_token}, {@code add_prefix_space}. Both files are optional; a role named in
 * {@code special_tokens_map.json} overrides the same role in {@code tokenizer_config.json}, as in transformers'
 * {@code PreTrainedTokenizerBase.from_pretrained}. Unknown keys are ignored (a foreign file, read leniently).
 *
 * @param roles               role name ({@code bos_token}, {@code eos_token}, ...) → token, in file order
 * @param additionalSpecial   {@code additional_special_tokens}
 * @param addedTokensDecoder  {@code added_tokens_decoder} of tokenizer_config.json: tokens with explicit ids
 * @param tokenizerClass      {@code tokenizer_class}, if given
 * @param addBosToken         {@code add_bos_token} (GPT2Tokenizer default false)
 * @param addEosToken         {@code add_eos_token} (default false)
 * @param addPrefixSpace      {@code add_prefix_space} (GPT2Tokenizer default false)
 * @param configFile          where the roles and flags were read (for error messages)
 */
record HfTokenizerConfig(Map<String, TokenSpec> roles, List<TokenSpec> additionalSpecial,
                         List<AddedToken> addedTokensDecoder, Optional<String> tokenizerClass, boolean addBosToken,
                         boolean addEosToken, boolean addPrefixSpace, Path configFile) {

    static final String CONFIG_FILE = "tokenizer_config.json";
    static final String SPECIAL_TOKENS_FILE = "special_tokens_map.json";
    /** The roles transformers knows ({@code SPECIAL_TOKENS_ATTRIBUTES}), except the additional list. */
    static final List<String> ROLE_NAMES =
            List.of("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token");
    /** GPT2Tokenizer's constructor defaults for bos, eos and unk. */
    static final String GPT2_DEFAULT_SPECIAL = "<|endoftext|>";

    /**
     * A token as written in these files: a bare string, or an object with {@code content} and flags.
     *
     * @param file the file that named it, for error messages
     */
    record TokenSpec(String content, boolean singleWord, boolean lstrip, boolean rstrip, boolean normalized,
                     Path file) {
        /** A default role token, named by no file. */
        static TokenSpec byDefault(String content, Path assumedIn) {
            return new TokenSpec(content, false, false, false, false, assumedIn);
        }
    }

    /** Reads both files from {@code dir}; missing files leave everything at the defaults. */
    static HfTokenizerConfig read(Path dir) {
        Path configFile = dir.resolve(CONFIG_FILE);
        Path mapFile = dir.resolve(SPECIAL_TOKENS_FILE);
        Optional<JsonNode> config = JsonFiles.readObjectIfExists(configFile, "the transformers tokenizer config");
        Optional<JsonNode> map = JsonFiles.readObjectIfExists(mapFile, "the special-token roles");

        Map<String, TokenSpec> roles = new LinkedHashMap<>();
        List<TokenSpec> additional = new ArrayList<>();
        List<AddedToken> decoder = new ArrayList<>();
        Optional<String> tokenizerClass = Optional.empty();
        boolean addBos = false;
        boolean addEos = false;
        boolean addPrefixSpace = false;
        if (config.isPresent()) {
            JsonNode c = config.get();
            readRoles(configFile, c, roles, additional);
            tokenizerClass = JsonFiles.optText(configFile, c, "tokenizer_class", "tokenizer_class");
            addBos = JsonFiles.optBoolean(configFile, c, "add_bos_token", "add_bos_token", false);
            addEos = JsonFiles.optBoolean(configFile, c, "add_eos_token", "add_eos_token", false);
            addPrefixSpace = JsonFiles.optBoolean(configFile, c, "add_prefix_space", "add_prefix_space", false);
            readAddedTokensDecoder(configFile, c, decoder);
        }
        if (map.isPresent()) {
            Map<String, TokenSpec> mapRoles = new LinkedHashMap<>();
            List<TokenSpec> mapAdditional = new ArrayList<>();
            readRoles(mapFile, map.get(), mapRoles, mapAdditional);
            roles.putAll(mapRoles);
            if (map.get().hasNonNull("additional_special_tokens")) {
                additional = mapAdditional;
            }
        }
        return new HfTokenizerConfig(roles, additional, decoder, tokenizerClass, addBos, addEos, addPrefixSpace,
                configFile);
    }

    /** True when transformers would build a GPT2Tokenizer(Fast) here, whose defaults then apply. */
    boolean isGpt2Class() {
        return tokenizerClass.isEmpty() || tokenizerClass.get().equals("GPT2Tokenizer")
                || tokenizerClass.get().equals("GPT2TokenizerFast");
    }

    private static void readRoles(Path file, JsonNode node, Map<String, TokenSpec> roles, List<TokenSpec> additional) {
        for (String role : ROLE_NAMES) {
            JsonNode v = node.get(role);
            if (v != null && !v.isNull()) {
                roles.put(role, spec(file, v, role));
            }
        }
        JsonNode extra = node.get("additional_special_tokens");
        if (extra != null && !extra.isNull()) {
            if (!extra.isArray()) {
                throw new InputFormatException(file, "additional_special_tokens",
                        "expected a list of tokens, found " + JsonFiles.describe(extra));
            }
            for (int i = 0; i < extra.size(); i++) {
                additional.add(spec(file, extra.get(i), "additional_special_tokens[" + i + "]"));
            }
        }
    }

    private static void readAddedTokensDecoder(Path file, JsonNode config, List<AddedToken> out) {
        JsonNode decoder = config.get("added_tokens_decoder");
        if (decoder == null || decoder.isNull()) {
            return;
        }
        if (!decoder.isObject()) {
            throw new InputFormatException(file, "added_tokens_decoder",
                    "expected an object from id to token, found " + JsonFiles.describe(decoder));
        }
        for (Map.Entry<String, JsonNode> e : decoder.properties()) {
            String path = "added_tokens_decoder." + e.getKey();
            int id;
            try {
                id = Integer.parseInt(e.getKey());
            } catch (NumberFormatException ex) {
                throw new InputFormatException(file, path, "expected a token id as key, found \"" + e.getKey() + "\"");
            }
            if (id < 0) {
                throw new InputFormatException(file, path, "expected a non-negative token id as key");
            }
            TokenSpec s = spec(file, e.getValue(), path);
            boolean special = JsonFiles.optBoolean(file, e.getValue(), "special", path + ".special", false);
            out.add(new AddedToken(s.content(), id, special, s.singleWord(), s.lstrip(), s.rstrip(), s.normalized()));
        }
    }

    private static TokenSpec spec(Path file, JsonNode v, String path) {
        if (v.isTextual()) {
            return new TokenSpec(v.asText(), false, false, false, false, file);
        }
        if (!v.isObject()) {
            throw new InputFormatException(file, path, "expected a token string or an object with \"content\", found "
                    + JsonFiles.describe(v));
        }
        String content = JsonFiles.optText(file, v, "content", path + ".content")
                .orElseThrow(() -> new InputFormatException(file, path + ".content", "missing token text"));
        return new TokenSpec(content,
                JsonFiles.optBoolean(file, v, "single_word", path + ".single_word", false),
                JsonFiles.optBoolean(file, v, "lstrip", path + ".lstrip", false),
                JsonFiles.optBoolean(file, v, "rstrip", path + ".rstrip", false),
                JsonFiles.optBoolean(file, v, "normalized", path + ".normalized", false), file);
    }
}
