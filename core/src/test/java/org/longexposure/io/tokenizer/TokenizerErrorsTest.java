package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Missing and malformed tokenizer files give a {@link org.longexposure.io.InputFormatException} naming the file, the place in it and what
 * was expected. Built on a tiny valid byte-level BPE (256 byte tokens + "Ġt", "he", "Ġthe").
 */
class TokenizerErrorsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private ObjectNode vocab;

    @BeforeEach
    void tinyVocabulary() {
        vocab = JSON.createObjectNode();
        for (int b = 0; b < 256; b++) {
            vocab.put(String.valueOf(ByteLevel.byteToChar(b)), b);
        }
        vocab.put("Ġt", 256).put("he", 257).put("Ġthe", 258).put("<|endoftext|>", 259);
    }

    // --- the tiny tokenizer itself works, so the failures below are due to the corruption alone

    @Test
    void tinyFilesLoadByBothRoutes() throws IOException {
        writeVocabAndMerges("#version: 0.2\nĠ t\nh e\nĠt he\n");
        Tokenizer slow = Tokenizer.load(dir);
        assertThat(slow.encode(" the")).containsExactly(258);
        assertThat(slow.bosId()).hasValue(259);
        writeTokenizerJson(root -> {});
        Tokenizer fast = Tokenizer.load(dir);
        assertThat(fast.source()).isEqualTo(dir.resolve("tokenizer.json"));
        assertThat(fast.encode("the the")).containsExactly('t', 257, 258);
    }

    // --- folder level

    @Test
    void missingFolder() {
        Path missing = dir.resolve("nope");
        assertThatThrownBy(() -> Tokenizer.load(missing))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(missing.toString())
                .hasMessageContaining("folder not found")
                .hasMessageContaining("tokenizer.json, or vocab.json and merges.txt");
    }

    @Test
    void folderWithoutTokenizerFiles() {
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("no tokenizer files")
                .satisfies(e -> assertThat(((InputFormatException) e).path().orElseThrow()).isEqualTo(dir));
    }

    @Test
    void mergesMissing() throws IOException {
        Files.writeString(dir.resolve("vocab.json"), vocab.toString());
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("merges.txt")
                .hasMessageContaining("file not found; expected the BPE merges")
                .satisfies(e -> assertThat(((InputFormatException) e).path().orElseThrow()).isEqualTo(dir.resolve("merges.txt")));
    }

    @Test
    void vocabMissing() throws IOException {
        Files.writeString(dir.resolve("merges.txt"), "Ġ t\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("vocab.json")
                .hasMessageContaining("file not found; expected the BPE vocabulary");
    }

    // --- vocab.json + merges.txt

    @Test
    void vocabNotJson() throws IOException {
        writeVocabAndMerges("Ġ t\n");
        Files.writeString(dir.resolve("vocab.json"), "{\"a\": 1, \"b\": ");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("vocab.json")
                .hasMessageContaining("not valid JSON")
                .hasMessageContaining("line 1");
    }

    @Test
    void vocabIdNotAnInteger() throws IOException {
        vocab.put("he", "seven");
        writeVocabAndMerges("Ġ t\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("vocab.json: \"he\":")
                .hasMessageContaining("expected a non-negative integer token id, found string \"seven\"");
    }

    @Test
    void vocabIdUsedTwice() throws IOException {
        vocab.put("he", 256);
        writeVocabAndMerges("Ġ t\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("id 256 is also used by token \"Ġt\"");
    }

    @Test
    void vocabLacksAByte() throws IOException {
        vocab.remove(String.valueOf(ByteLevel.byteToChar(0x41)));
        writeVocabAndMerges("Ġ t\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("no token for byte 0x41");
    }

    @Test
    void mergeLineWithThreeTokens() throws IOException {
        writeVocabAndMerges("#version: 0.2\nĠ t\nh e x\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("merges.txt: line 3:")
                .hasMessageContaining("expected a merge as two tokens separated by one space, found \"h e x\"")
                .satisfies(e -> assertThat(((InputFormatException) e).subject()).hasValue("line 3"));
    }

    @Test
    void mergeLineWithOneToken() throws IOException {
        writeVocabAndMerges("Ġ t\nhe\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": line 2:")
                .hasMessageContaining("found \"he\"");
    }

    @Test
    void mergeOfUnknownToken() throws IOException {
        writeVocabAndMerges("Ġ t\nh e\nĠt hex\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": line 3:")
                .hasMessageContaining("uses token \"hex\", which is not in the vocabulary");
    }

    @Test
    void unsupportedTokenizerClass() throws IOException {
        writeVocabAndMerges("Ġ t\n");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"tokenizer_class\": \"LlamaTokenizer\"}");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer_config.json: tokenizer_class:")
                .hasMessageContaining("unsupported tokenizer class \"LlamaTokenizer\"");
    }

    @Test
    void specialTokenNotInVocabulary() throws IOException {
        writeVocabAndMerges("Ġ t\n");
        Files.writeString(dir.resolve("special_tokens_map.json"), "{\"bos_token\": \"<s>\"}");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": bos_token:")
                .hasMessageContaining("special token \"<s>\" is neither in")
                .satisfies(e -> assertThat(((InputFormatException) e).path().orElseThrow())
                        .isEqualTo(dir.resolve("special_tokens_map.json")));
    }

    @Test
    void roleTokenBesideTokenizerJsonNotInVocabulary() throws IOException {
        writeTokenizerJson(root -> {});
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"pad_token\": {\"content\": \"<pad>\"}}");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer_config.json: pad_token:")
                .hasMessageContaining("token \"<pad>\" is not in the vocabulary");
    }

    @Test
    void addBosWithoutBosToken() throws IOException {
        vocab.remove("<|endoftext|>");
        writeVocabAndMerges("Ġ t\n");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": true}");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": add_bos_token:")
                .hasMessageContaining("no bos_token is set");
    }

    // --- tokenizer.json

    @Test
    void tokenizerJsonNotJson() throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), "{\n  \"model\": {\n    \"type\": \"BPE\",\n  oops");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer.json")
                .hasMessageContaining("not valid JSON")
                .hasMessageContaining("line 4");
    }

    @Test
    void wordPieceModel() throws IOException {
        writeTokenizerJson(root -> ((ObjectNode) root.get("model")).put("type", "WordPiece"));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer.json: model.type:")
                .hasMessageContaining("unsupported model type \"WordPiece\"; expected \"BPE\"");
    }

    @Test
    void modelMissing() throws IOException {
        writeTokenizerJson(root -> root.remove("model"));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": model:")
                .hasMessageContaining("expected an object describing the BPE model");
    }

    @Test
    void mergeEntryOfWrongShape() throws IOException {
        writeTokenizerJson(root -> ((ArrayNode) root.get("model").get("merges")).add(17));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": model.merges[3]:")
                .hasMessageContaining("expected a merge as \"left right\" or [\"left\", \"right\"], found number 17");
    }

    @Test
    void unsupportedNormalizer() throws IOException {
        writeTokenizerJson(root -> root.set("normalizer", JSON.createObjectNode().put("type", "NFC")));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": normalizer:")
                .hasMessageContaining("unsupported normalizer NFC");
    }

    @Test
    void unsupportedPreTokenizer() throws IOException {
        writeTokenizerJson(root -> root.set("pre_tokenizer", JSON.createObjectNode().put("type", "Whitespace")));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": pre_tokenizer.type:")
                .hasMessageContaining("unsupported pre-tokenizer Whitespace; expected ByteLevel");
    }

    @Test
    void unsupportedDecoder() throws IOException {
        writeTokenizerJson(root -> root.set("decoder", JSON.createObjectNode().put("type", "WordPiece")));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": decoder.type:")
                .hasMessageContaining("unsupported decoder WordPiece; expected ByteLevel");
    }

    @Test
    void templateNamingAnUnlistedSpecialToken() throws IOException {
        writeTokenizerJson(root -> {
            ObjectNode post = JSON.createObjectNode().put("type", "TemplateProcessing");
            post.set("single", JSON.createArrayNode()
                    .add(JSON.createObjectNode().set("SpecialToken", JSON.createObjectNode().put("id", "<s>")))
                    .add(JSON.createObjectNode().set("Sequence", JSON.createObjectNode().put("id", "A"))));
            post.set("special_tokens", JSON.createObjectNode());
            root.set("post_processor", post);
        });
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining(": post_processor.single[0].SpecialToken.id:")
                .hasMessageContaining("special token \"<s>\" is not listed");
    }

    @Test
    void decodeOfUnknownId() throws IOException {
        writeTokenizerJson(root -> {});
        Tokenizer t = Tokenizer.load(dir);
        assertThatThrownBy(() -> t.decode(new int[] {5, 260}, false))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("token id 260 has no token")
                .hasMessageContaining("valid ids are 0..259");
        assertThatThrownBy(() -> t.decode(new int[] {-1}, false)).isInstanceOf(IllegalArgumentException.class);
    }

    // --- regressions found by the fuzz tests (TokenizerJsonFuzzTest, TokenizerFilesFuzzTest)

    /** Jackson's depth and number-length limits report no location; that must not break the message. */
    @Test
    void jsonPastJacksonLimits() throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": " + "[".repeat(1200));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer.json: not valid JSON (Document nesting depth (1001) exceeds");
        Files.delete(dir.resolve("tokenizer.json"));
        writeVocabAndMerges("Ġ t\n");
        Files.writeString(dir.resolve("vocab.json"), "{\"a\": 1" + "0".repeat(1500) + "}");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("vocab.json: not valid JSON (Number value length (1501) exceeds");
    }

    /** A huge id used to size the id → token table: NegativeArraySizeException or OutOfMemoryError before. */
    @Test
    void vocabIdTooLarge() throws IOException {
        vocab.put("he", Integer.MAX_VALUE);
        writeVocabAndMerges("Ġ t\n");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("vocab.json: \"he\": token id 2147483647 is too large; expected at most "
                        + "16777215");
        Files.delete(dir.resolve("vocab.json"));
        Files.delete(dir.resolve("merges.txt"));
        writeTokenizerJson(root -> ((ObjectNode) root.get("model").get("vocab")).put("he", 2_000_000_000));
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer.json: model.vocab.\"he\": token id 2000000000 is too large");
    }

    /** A template id with no token was added by encodeWithSpecials, and decoding that output then threw. */
    @Test
    void postProcessorIdWithoutToken() throws IOException {
        writeTokenizerJson(root -> {
            ObjectNode post = JSON.createObjectNode().put("type", "TemplateProcessing");
            post.set("single", JSON.createArrayNode()
                    .add(JSON.createObjectNode().set("SpecialToken",
                            JSON.createObjectNode().put("id", "<|endoftext|>")))
                    .add(JSON.createObjectNode().set("Sequence", JSON.createObjectNode().put("id", "A"))));
            ObjectNode spec = JSON.createObjectNode().put("id", "<|endoftext|>");
            spec.set("ids", JSON.createArrayNode().add(317));
            post.set("special_tokens", JSON.createObjectNode().set("<|endoftext|>", spec));
            root.set("post_processor", post);
        });
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer.json: post_processor.special_tokens.\"<|endoftext|>\".ids[0]: "
                        + "token id 317 is neither in model.vocab nor among the added_tokens");
        writeTokenizerJson(root -> {
            ObjectNode post = JSON.createObjectNode().put("type", "RobertaProcessing");
            post.set("sep", JSON.createArrayNode().add("<|endoftext|>").add(259));
            post.set("cls", JSON.createArrayNode().add("<s>").add(260));
            root.set("post_processor", post);
        });
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer.json: post_processor.cls[1]: token id 260 is neither");
    }

    /** An empty bos token is dropped from the added tokens, and add_bos_token then met a null id. */
    @Test
    void addBosWithEmptyBosToken() throws IOException {
        writeVocabAndMerges("Ġ t\n");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": true, \"bos_token\": \"\", "
                + "\"added_tokens_decoder\": {\"7\": {\"content\": \"\"}}}");
        assertThatThrownBy(() -> Tokenizer.load(dir))
                .isInstanceOf(InputFormatException.class)
                .hasMessageContaining("tokenizer_config.json: bos_token: add_bos_token is true but bos_token is the "
                        + "empty string");
    }

    // --- helpers

    private void writeVocabAndMerges(String merges) throws IOException {
        Files.writeString(dir.resolve("vocab.json"), vocab.toString());
        Files.writeString(dir.resolve("merges.txt"), merges);
    }

    private void writeTokenizerJson(Consumer<ObjectNode> edit) throws IOException {
        ObjectNode model = JSON.createObjectNode().put("type", "BPE");
        model.set("vocab", vocab);
        model.set("merges", JSON.createArrayNode().add("Ġ t").add("h e").add(JSON.createArrayNode().add("Ġt").add("he")));
        ObjectNode root = JSON.createObjectNode();
        root.set("added_tokens", JSON.createArrayNode().add(JSON.createObjectNode().put("id", 259)
                .put("content", "<|endoftext|>").put("special", true)));
        root.putNull("normalizer");
        root.set("pre_tokenizer", JSON.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", false));
        root.putNull("post_processor");
        root.set("decoder", JSON.createObjectNode().put("type", "ByteLevel"));
        root.set("model", model);
        edit.accept(root);
        Files.writeString(dir.resolve("tokenizer.json"), root.toString());
    }
}
