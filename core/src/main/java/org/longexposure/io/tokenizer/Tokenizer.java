package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Byte-level BPE tokenizer giving the same ids as Hugging Face's for GPT-2 and OPT (and other byte-level BPE
 * tokenizers stored in the same formats).
 *
 * <p>Reference: HF tokenizers {@code TokenizerImpl::encode_single_sequence} / {@code decode}, and transformers'
 * {@code GPT2Tokenizer}/{@code GPT2TokenizerFast}. Encoding runs, per text:
 * <ol>
 *   <li>added tokens ({@code </s>}, {@code <|endoftext|>}, ...) are cut out of the raw text and become their ids
 *       ({@link AddedVocabulary});</li>
 *   <li>each remaining piece is split into words by GPT-2's regex, after an optional prefix space
 *       ({@link PreTokenizer});</li>
 *   <li>each word's UTF-8 bytes are merged by BPE rank into vocabulary ids ({@link BpeModel}, cached per word);</li>
 *   <li>with special tokens, the model's post-processor wraps the ids ({@link PostProcessor}): OPT prepends
 *       {@code </s>} (id 2), GPT-2 adds nothing.</li>
 * </ol>
 * Decoding maps ids back to tokens, tokens back to bytes, and bytes to text, replacing ill-formed UTF-8 like
 * Python's {@code errors="replace"}. transformers' {@code clean_up_tokenization_spaces} is not applied, so
 * {@code decode(encode(s), false)} gives {@code s} back for any string without unpaired surrogates.
 *
 * <p>Instances are immutable apart from the word cache, which is synchronized: one instance may serve many threads.
 */
public final class Tokenizer {
    static final String TOKENIZER_JSON = "tokenizer.json";
    static final String VOCAB_JSON = "vocab.json";
    static final String MERGES_TXT = "merges.txt";

    private final Path source;
    private final BpeModel model;
    private final AddedVocabulary addedVocabulary;
    private final PreTokenizer preTokenizer;
    private final PostProcessor postProcessor;
    private final String[] idToToken;             // (maxId + 1); null where no token has that id
    private final boolean[] special;              // (maxId + 1); skipped by decode(ids, true)
    private final Map<String, Integer> tokenToId;  // model vocabulary and added tokens, added tokens winning
    private final OptionalInt bosId;
    private final OptionalInt eosId;
    private final OptionalInt padId;

    /**
     * @param vocab the BPE model's vocabulary (token → id)
     * @param roles role name ({@code bos_token}, {@code eos_token}, {@code pad_token}, ...) → token; each must be a
     *              token, else an error naming the file that named it
     */
    Tokenizer(Path source, Map<String, Integer> vocab, BpeModel model, List<AddedToken> addedTokens,
              PreTokenizer preTokenizer, PostProcessor postProcessor, Map<String, HfTokenizerConfig.TokenSpec> roles) {
        this.source = source;
        this.model = model;
        this.addedVocabulary = new AddedVocabulary(addedTokens);
        this.preTokenizer = preTokenizer;
        this.postProcessor = postProcessor;
        int maxId = -1;
        for (int id : vocab.values()) {
            maxId = Math.max(maxId, id);
        }
        for (AddedToken t : addedTokens) {
            maxId = Math.max(maxId, t.id());
        }
        this.idToToken = new String[maxId + 1];
        this.special = new boolean[maxId + 1];
        this.tokenToId = new HashMap<>(vocab);
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            idToToken[e.getValue()] = e.getKey();
        }
        for (AddedToken t : addedTokens) {
            idToToken[t.id()] = t.content();
            special[t.id()] |= t.special();
            tokenToId.put(t.content(), t.id());
        }
        this.bosId = roleId(roles, "bos_token");
        this.eosId = roleId(roles, "eos_token");
        this.padId = roleId(roles, "pad_token");
    }

    // --- loading

    /**
     * Loads the tokenizer stored in folder {@code dir}: from {@code tokenizer.json} if the folder has one
     * ({@link #fromTokenizerJson}), else from {@code vocab.json} + {@code merges.txt} ({@link #fromVocabAndMerges}).
     *
     * @throws org.longexposure.io.InputFormatException if the folder or a needed file is missing or malformed, or asks for something
     *                            other than byte-level BPE
     */
    public static Tokenizer load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new InputFormatException(dir, null, Files.exists(dir) ? "not a folder; expected a folder holding "
                    + "tokenizer.json, or vocab.json and merges.txt" : "folder not found; expected a folder holding "
                    + "tokenizer.json, or vocab.json and merges.txt");
        }
        if (Files.exists(dir.resolve(TOKENIZER_JSON))) {
            return fromTokenizerJson(dir.resolve(TOKENIZER_JSON));
        }
        if (!Files.exists(dir.resolve(VOCAB_JSON)) && !Files.exists(dir.resolve(MERGES_TXT))) {
            throw new InputFormatException(dir, null, "no tokenizer files; expected tokenizer.json, or vocab.json and "
                    + "merges.txt (with optional tokenizer_config.json and special_tokens_map.json)");
        }
        return fromVocabAndMerges(dir);
    }

    /**
     * Loads a Hugging Face tokenizers file ({@code tokenizer.json}) holding a byte-level BPE model. The
     * {@code tokenizer_config.json} and {@code special_tokens_map.json} beside it, if any, say which tokens are
     * bos/eos/pad (when they name none and the tokenizer class is GPT-2's, {@code <|endoftext|>} plays bos and eos,
     * as GPT2Tokenizer's defaults say). Encoding and post-processing follow the file alone.
     */
    public static Tokenizer fromTokenizerJson(Path tokenizerJson) {
        return TokenizerJsonReader.read(tokenizerJson);
    }

    /**
     * Loads the files an OPT or GPT-2 repository ships without {@code tokenizer.json}: {@code vocab.json},
     * {@code merges.txt}, and optionally {@code tokenizer_config.json} and {@code special_tokens_map.json}, read as
     * transformers' AutoTokenizer would (the fast tokenizer converted from GPT2Tokenizer): role tokens and
     * {@code added_tokens_decoder} entries become special added tokens; {@code add_bos_token}/{@code add_eos_token}
     * decide the post-processing; {@code add_prefix_space} the prefix space; GPT2Tokenizer's defaults
     * ({@code <|endoftext|>} as bos, eos and unk, if in the vocabulary) fill roles the files leave out.
     */
    public static Tokenizer fromVocabAndMerges(Path dir) {
        return VocabMergesReader.read(dir);
    }

    // --- encoding

    /** The ids of {@code text} without special tokens (HF {@code encode(text, add_special_tokens=False)}). */
    public int[] encode(String text) {
        return encode(text, false);
    }

    /**
     * The ids of {@code text} with the model's default special tokens, i.e. what HF
     * {@code tokenizer(text)["input_ids"]} returns: OPT {@code [2, ...]}, GPT-2 no change.
     */
    public int[] encodeWithSpecials(String text) {
        return encode(text, true);
    }

    /**
     * The ids of {@code text}; with {@code addSpecialTokens} the post-processor's tokens are added around them.
     * Added tokens written in the text ({@code "</s>"}) become their ids either way. Unpaired surrogates in
     * {@code text} are encoded as U+FFFD.
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        String s = ByteLevel.replaceLoneSurrogates(text);
        IntList out = new IntList(s.length() / 3 + 4);
        if (addSpecialTokens) {
            out.addAll(postProcessor.prefix());
        }
        for (AddedVocabulary.Piece piece : addedVocabulary.split(s)) {
            if (piece.token() != null) {
                out.add(piece.token().id());
            } else {
                preTokenizer.forEachWord(piece.text(), word -> model.encodeWord(word, out));
            }
        }
        if (addSpecialTokens) {
            out.addAll(postProcessor.suffix());
        }
        return out.toArray();
    }

    // --- decoding

    /**
     * The text of {@code ids} (HF {@code decode(ids, skip_special_tokens)}): tokens' byte-level chars become bytes,
     * then UTF-8 text with each ill-formed byte sequence replaced by U+FFFD. With {@code skipSpecialTokens},
     * special tokens (OPT's {@code </s>}, {@code <pad>}) are left out.
     *
     * @throws IllegalArgumentException if an id has no token (negative, past the vocabulary, or a gap in it)
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        ByteLevel.ByteSink bytes = new ByteLevel.ByteSink();
        for (int id : ids) {
            String token = id >= 0 && id < idToToken.length ? idToToken[id] : null;
            if (token == null) {
                throw new IllegalArgumentException("token id " + id + " has no token in " + source
                        + "; valid ids are 0.." + (idToToken.length - 1) + " (" + vocabSize() + " tokens)");
            }
            if (skipSpecialTokens && special[id]) {
                continue;
            }
            ByteLevel.appendTokenBytes(token, bytes);
        }
        return bytes.decodeUtf8Lossy();
    }

    // --- vocabulary

    /**
     * Number of distinct tokens, added tokens included (HF {@code len(tokenizer)}): OPT 50,265, GPT-2 50,257.
     * An embedding needs at least {@link #maxTokenId()} + 1 rows.
     */
    public int vocabSize() {
        return tokenToId.size();
    }

    /** The largest id of any token. */
    public int maxTokenId() {
        return idToToken.length - 1;
    }

    /** The token with id {@code id} in its stored (byte-alphabet) form, e.g. {@code "Ġthe"}; empty if none. */
    public Optional<String> idToToken(int id) {
        return id >= 0 && id < idToToken.length ? Optional.ofNullable(idToToken[id]) : Optional.empty();
    }

    /** The id of a token in its stored form ({@code "Ġthe"}, {@code "</s>"}); empty if it is not a token. */
    public OptionalInt tokenToId(String token) {
        Integer id = tokenToId.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** Whether {@code id} is a special token, one that {@code decode(ids, true)} leaves out. */
    public boolean isSpecial(int id) {
        return id >= 0 && id < special.length && special[id];
    }

    /** The beginning-of-sequence token's id (OPT 2, GPT-2 50256), if the tokenizer has one. */
    public OptionalInt bosId() {
        return bosId;
    }

    /** The end-of-sequence token's id (OPT 2, GPT-2 50256), if the tokenizer has one. */
    public OptionalInt eosId() {
        return eosId;
    }

    /** The padding token's id (OPT 1; GPT-2 has none), if the tokenizer has one. */
    public OptionalInt padId() {
        return padId;
    }

    /** The ids {@link #encodeWithSpecials} puts before the text (OPT {@code [2]}, GPT-2 none). */
    public int[] specialPrefix() {
        return postProcessor.prefix().clone();
    }

    /** The ids {@link #encodeWithSpecials} puts after the text (none for OPT and GPT-2). */
    public int[] specialSuffix() {
        return postProcessor.suffix().clone();
    }

    /** The file or folder this tokenizer was loaded from. */
    public Path source() {
        return source;
    }

    @Override
    public String toString() {
        return "Tokenizer[byte-level BPE, " + vocabSize() + " tokens, prefix " + Arrays.toString(postProcessor.prefix())
                + ", suffix " + Arrays.toString(postProcessor.suffix()) + ", from " + source + "]";
    }

    private OptionalInt roleId(Map<String, HfTokenizerConfig.TokenSpec> roles, String role) {
        HfTokenizerConfig.TokenSpec spec = roles.get(role);
        if (spec == null) {
            return OptionalInt.empty();
        }
        Integer id = tokenToId.get(spec.content());
        if (id == null) {
            throw new InputFormatException(spec.file(), role, "token " + BpeFiles.quote(spec.content())
                    + " is not in the vocabulary of " + source);
        }
        return OptionalInt.of(id);
    }
}
