package org.longexposure.io.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Exact id parity with Hugging Face's Rust tokenizers (through DJL) for OPT and GPT-2, both loading routes, on the
 * Gutenberg sample, hand-written hard cases and random Unicode strings; decode parity and round trips.
 */
class TokenizerHfParityTest {
    private static List<String> texts;
    private static HfOracle hfOpt;
    private static HfOracle hfGpt2;
    private static Expected optIds;
    private static Expected gpt2Ids;
    private static Tokenizer opt;
    private static Tokenizer gpt2;
    private static Tokenizer optSlow;

    /** HF's ids for every text, without and with special tokens. */
    record Expected(List<int[]> plain, List<int[]> special) {
        static Expected of(HfOracle hf, List<String> texts) {
            List<int[]> plain = new ArrayList<>(texts.size());
            List<int[]> special = new ArrayList<>(texts.size());
            for (String s : texts) {
                plain.add(hf.encode(s, false));
                special.add(hf.encode(s, true));
            }
            return new Expected(plain, special);
        }
    }

    @BeforeAll
    static void setUp() {
        texts = TestTexts.all();
        hfOpt = HfOracle.load(TestTexts.OPT.resolve("tokenizer.json"));
        hfGpt2 = HfOracle.load(TestTexts.GPT2.resolve("tokenizer.json"));
        optIds = Expected.of(hfOpt, texts);
        gpt2Ids = Expected.of(hfGpt2, texts);
        opt = Tokenizer.load(TestTexts.OPT);
        gpt2 = Tokenizer.load(TestTexts.GPT2);
        optSlow = Tokenizer.fromVocabAndMerges(TestTexts.OPT);
    }

    @AfterAll
    static void tearDown() {
        hfOpt.close();
        hfGpt2.close();
    }

    @Test
    void optFromTokenizerJsonEqualsHf() {
        assertThat(opt.source()).isEqualTo(TestTexts.OPT.resolve("tokenizer.json"));
        assertSameIds(opt, texts, optIds);
    }

    @Test
    void optFromVocabAndMergesEqualsHf() {
        assertThat(optSlow.source()).isEqualTo(TestTexts.OPT);
        assertSameIds(optSlow, texts, optIds);
    }

    @Test
    void gpt2FromTokenizerJsonEqualsHf() {
        assertSameIds(gpt2, texts, gpt2Ids);
    }

    @Test
    void gpt2FromVocabAndMergesEqualsHf(@TempDir Path dir) throws IOException {
        for (String f : List.of("vocab.json", "merges.txt", "tokenizer_config.json")) {
            Files.copy(TestTexts.GPT2.resolve(f), dir.resolve(f));
        }
        Tokenizer t = Tokenizer.load(dir);
        assertThat(t.source()).isEqualTo(dir);
        assertSameIds(t, texts, gpt2Ids);
        assertThat(t.bosId()).hasValue(50256);
        assertThat(t.eosId()).hasValue(50256);
        assertThat(t.padId()).isEmpty();
        assertThat(t.isSpecial(50256)).isTrue();
    }

    @Test
    void knownIds() {
        // Values from the HF model docs and shared/tokenizers/SOURCES.md; HF itself agrees (checked alongside).
        assertThat(gpt2.encode("Hello world")).containsExactly(15496, 995).containsExactly(hfGpt2.encode("Hello world", false));
        assertThat(gpt2.encodeWithSpecials("Hello world")).containsExactly(15496, 995);
        assertThat(opt.encodeWithSpecials("Hello")).containsExactly(2, 31414).containsExactly(hfOpt.encode("Hello", true));
        assertThat(optSlow.encodeWithSpecials("Hello")).containsExactly(2, 31414);
        assertThat(opt.encode("Hello")).containsExactly(31414);
        assertThat(opt.encodeWithSpecials("Hello, my name is")).containsExactly(2, 31414, 6, 127, 766, 16);
        assertThat(gpt2.encode("Hello, my name is")).containsExactly(15496, 11, 616, 1438, 318);
        assertThat(opt.encode("a</s>b")).contains(2);
        assertThat(gpt2.encode("a<|endoftext|>b")).contains(50256);
    }

    @Test
    void specialTokenRolesAndVocabulary() {
        for (Tokenizer t : List.of(opt, optSlow)) {
            assertThat(t.bosId()).hasValue(2);
            assertThat(t.eosId()).hasValue(2);
            assertThat(t.padId()).hasValue(1);
            assertThat(t.vocabSize()).isEqualTo(50265);
            assertThat(t.maxTokenId()).isEqualTo(50264);
            assertThat(t.specialPrefix()).containsExactly(2);
            assertThat(t.specialSuffix()).isEmpty();
            assertThat(t.isSpecial(2)).isTrue();
            assertThat(t.isSpecial(1)).isTrue();
            assertThat(t.isSpecial(5)).isFalse();
            assertThat(t.idToToken(5)).hasValue("Ġthe");
            assertThat(t.tokenToId("Ġthe")).hasValue(5);
            assertThat(t.tokenToId("</s>")).hasValue(2);
            assertThat(t.tokenToId("no such token")).isEmpty();
            assertThat(t.idToToken(50265)).isEmpty();
            assertThat(t.idToToken(-1)).isEmpty();
        }
        assertThat(gpt2.bosId()).hasValue(50256);
        assertThat(gpt2.eosId()).hasValue(50256);
        assertThat(gpt2.padId()).isEmpty();
        assertThat(gpt2.vocabSize()).isEqualTo(50257);
        assertThat(gpt2.specialPrefix()).isEmpty();
        assertThat(gpt2.idToToken(262)).hasValue("Ġthe");
    }

    @Test
    void decodeInvertsEncode() {
        for (Tokenizer t : List.of(opt, gpt2)) {
            for (String s : texts) {
                String back = t.decode(t.encode(s), false);
                if (!back.equals(s)) {
                    assertThat(back).as("round trip of %s", show(s)).isEqualTo(s);
                }
            }
        }
    }

    @Test
    void decodeEqualsHf() {
        for (int i = 0; i < texts.size(); i++) {
            int[] ids = optIds.special().get(i);
            assertThat(opt.decode(ids, true)).isEqualTo(hfOpt.decode(ids, true));
            assertThat(opt.decode(ids, false)).isEqualTo(hfOpt.decode(ids, false));
        }
    }

    /** Random id sequences decode to the same text as HF, including broken UTF-8 (replaced by U+FFFD). */
    @Test
    void decodeOfRandomIdsEqualsHf() {
        // Tokens that are single bytes >= 0x80 or partial UTF-8 sequences, so that most sequences are ill-formed.
        int[] optPartial = partialUtf8Ids(opt);
        int[] gpt2Partial = partialUtf8Ids(gpt2);
        SplittableRandom rng = new SplittableRandom(7);
        for (int i = 0; i < 1200; i++) {
            boolean useOpt = i % 2 == 0;
            Tokenizer t = useOpt ? opt : gpt2;
            int[] partial = useOpt ? optPartial : gpt2Partial;
            int[] ids = new int[1 + rng.nextInt(7)];
            for (int k = 0; k < ids.length; k++) {
                ids[k] = rng.nextInt(3) == 0 ? rng.nextInt(t.maxTokenId() + 1) : partial[rng.nextInt(partial.length)];
            }
            HfOracle hf = useOpt ? hfOpt : hfGpt2;
            for (boolean skip : new boolean[] {false, true}) {
                String expected = hf.decode(ids, skip);
                String actual = t.decode(ids, skip);
                if (!actual.equals(expected)) {
                    assertThat(actual).as("decode %s, skip %s", Arrays.toString(ids), skip).isEqualTo(expected);
                }
            }
        }
    }

    /** Lone surrogates cannot reach HF at all; here they encode as U+FFFD. */
    @Test
    void loneSurrogatesEncodeAsReplacementChar() {
        assertThat(opt.encode("a\uD800b")).containsExactly(hfOpt.encode("a\uFFFDb", false));
        assertThat(opt.encode("\uDC00 x \uD83D")).containsExactly(hfOpt.encode("\uFFFD x \uFFFD", false));
    }

    private static int[] partialUtf8Ids(Tokenizer t) {
        List<Integer> ids = new ArrayList<>();
        for (int id = 0; id <= t.maxTokenId(); id++) {
            String token = t.idToToken(id).orElse("");
            if (token.isEmpty() || token.length() > 3) {
                continue;
            }
            boolean allHighBytes = token.chars().allMatch(c -> ByteLevel.charToByte((char) c) >= 0x80);
            if (allHighBytes) {
                ids.add(id);
            }
        }
        assertThat(ids).hasSizeGreaterThan(100);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    static void assertSameIds(Tokenizer ours, List<String> texts, Expected hf) {
        for (int i = 0; i < texts.size(); i++) {
            String s = texts.get(i);
            int[] plain = ours.encode(s);
            if (!Arrays.equals(plain, hf.plain().get(i))) {
                assertThat(plain).as("ids of %s", show(s)).containsExactly(hf.plain().get(i));
            }
            int[] special = ours.encodeWithSpecials(s);
            if (!Arrays.equals(special, hf.special().get(i))) {
                assertThat(special).as("ids with specials of %s", show(s)).containsExactly(hf.special().get(i));
            }
        }
    }

    static String show(String s) {
        StringBuilder sb = new StringBuilder("\"");
        s.codePoints().forEach(cp -> {
            if (cp < 0x20 || (cp >= 0x7F && cp < 0xA1) || Character.isWhitespace(cp)) {
                sb.append(String.format("\\u%04x", cp));
            } else {
                sb.appendCodePoint(cp);
            }
        });
        return sb.append('"').toString();
    }
}
