package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the GPT2Tokenizer files an OPT or GPT-2 repository ships: {@code vocab.json}, {@code merges.txt}, and the
 * optional {@code tokenizer_config.json} and {@code special_tokens_map.json}.
 *
 * <p>Reference: transformers' {@code GPT2Tokenizer.__init__} (defaults: bos, eos, unk {@code <|endoftext|>};
 * {@code add_bos_token} false; {@code add_prefix_space} false) and {@code convert_slow_tokenizer.GPT2Converter},
 * which builds the equivalent fast tokenizer: ByteLevel pre-tokenizer and decoder, the role tokens and
 * {@code added_tokens_decoder} entries as special added tokens, and a template adding bos/eos when
 * {@code add_bos_token}/{@code add_eos_token} are set. For OPT this gives {@code [2] + ids}, the same as OPT's
 * {@code tokenizer.json}.
 */
final class VocabMergesReader {
    private VocabMergesReader() {}

    static Tokenizer read(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new InputFormatException(dir, null, "folder not found; expected a folder holding vocab.json and "
                    + "merges.txt");
        }
        Path vocabFile = dir.resolve(Tokenizer.VOCAB_JSON);
        Path mergesFile = dir.resolve(Tokenizer.MERGES_TXT);
        HfTokenizerConfig config = HfTokenizerConfig.read(dir);
        if (!config.isGpt2Class()) {
            throw new InputFormatException(config.configFile(), "tokenizer_class", "unsupported tokenizer class \""
                    + config.tokenizerClass().orElseThrow() + "\" for vocab.json + merges.txt; expected "
                    + "GPT2Tokenizer or GPT2TokenizerFast");
        }
        JsonNode vocabJson = JsonFiles.readObject(vocabFile, "the BPE vocabulary (a JSON object from token to id)");
        Map<String, Integer> vocab = BpeFiles.readVocab(vocabFile, vocabJson, "");
        List<BpeFiles.Merge> merges = BpeFiles.readMergesTxt(mergesFile);
        BpeModel bpe = BpeFiles.build(vocabFile, "", vocab, mergesFile, merges, false);

        Map<String, HfTokenizerConfig.TokenSpec> roles = new LinkedHashMap<>(config.roles());
        boolean hasDefault = vocab.containsKey(HfTokenizerConfig.GPT2_DEFAULT_SPECIAL);
        for (String role : List.of("bos_token", "eos_token", "unk_token")) {
            if (hasDefault && !roles.containsKey(role)) {
                roles.put(role, HfTokenizerConfig.TokenSpec.byDefault(HfTokenizerConfig.GPT2_DEFAULT_SPECIAL,
                        vocabFile));
            }
        }

        // added_tokens_decoder first (explicit ids and flags), then each special token not yet there.
        Map<String, AddedToken> added = new LinkedHashMap<>();
        for (AddedToken t : config.addedTokensDecoder()) {
            added.put(t.content(), t);
        }
        List<Map.Entry<String, HfTokenizerConfig.TokenSpec>> specials = new ArrayList<>(roles.entrySet());
        for (int i = 0; i < config.additionalSpecial().size(); i++) {
            specials.add(Map.entry("additional_special_tokens[" + i + "]", config.additionalSpecial().get(i)));
        }
        for (Map.Entry<String, HfTokenizerConfig.TokenSpec> e : specials) {
            HfTokenizerConfig.TokenSpec s = e.getValue();
            if (added.containsKey(s.content())) {
                continue;
            }
            Integer id = vocab.get(s.content());
            if (id == null) {
                throw new InputFormatException(s.file(), e.getKey(), "special token "
                        + BpeFiles.quote(s.content()) + " is neither in " + vocabFile + " nor in added_tokens_decoder");
            }
            added.put(s.content(), new AddedToken(s.content(), id, true, s.singleWord(), s.lstrip(), s.rstrip(),
                    s.normalized()));
        }

        List<AddedToken> addedTokens = AddedVocabulary.assignIds(new ArrayList<>(added.values()), vocab);
        Map<String, Integer> addedIds = new HashMap<>();
        for (AddedToken t : addedTokens) {
            addedIds.put(t.content(), t.id());
        }
        int[] prefix = new int[0];
        int[] suffix = new int[0];
        if (config.addBosToken()) {
            prefix = new int[] {roleTokenId(config, roles, addedIds, "bos_token", "add_bos_token")};
        }
        if (config.addEosToken()) {
            suffix = new int[] {roleTokenId(config, roles, addedIds, "eos_token", "add_eos_token")};
        }
        return new Tokenizer(dir, vocab, bpe, addedTokens,
                new PreTokenizer(List.of(), config.addPrefixSpace(), true), new PostProcessor(prefix, suffix),
                roles);
    }

    private static int roleTokenId(HfTokenizerConfig config, Map<String, HfTokenizerConfig.TokenSpec> roles,
                                   Map<String, Integer> addedIds, String role, String flag) {
        HfTokenizerConfig.TokenSpec spec = roles.get(role);
        if (spec == null) {
            throw new InputFormatException(config.configFile(), flag, flag + " is true but no " + role + " is set");
        }
        Integer id = addedIds.get(spec.content());
        if (id == null) {  // only an empty text is not kept as an added token
            throw new InputFormatException(spec.file(), role, flag + " is true but " + role + " is the empty string; "
                    + "expected the text of a token");
        }
        return id;
    }
}
