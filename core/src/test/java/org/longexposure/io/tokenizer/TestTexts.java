package org.longexposure.io.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Texts the tokenizer tests encode: the Gutenberg sample, hand-written hard cases, and seeded random strings. */
final class TestTexts {
    static final Path RESOURCES = Path.of("src/test/resources/tokenizers");
    static final Path OPT = RESOURCES.resolve("opt");
    static final Path GPT2 = RESOURCES.resolve("gpt2");

    private TestTexts() {}

    /** The 1,984 Project Gutenberg samples (see SOURCES.md next to the file). */
    static List<String> gutenberg() {
        List<String> out = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        try {
            for (String line : Files.readAllLines(RESOURCES.resolve("gutenberg-sample.jsonl"))) {
                out.add(json.readValue(line, String.class));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    /** Cases chosen to break a tokenizer: specials in text, contractions, whitespace runs, scripts, emoji. */
    static List<String> hardCases() {
        return List.of(
                "", " ", "  ", "\n", "\n\n", "\n\n\n", "\t", " \t \n ", "a\tb", "\r\n", "x \n y",
                "Hello world", " Hello world", "Hello world ", "Hello  world", "  multiple   spaces   ",
                "don't", "I'm, you're, we've, they'll, he'd, it's", "DON'T I'M", "'s 's'''", "''tis", "rock 'n' roll",
                "</s>", "a</s>b", "</s></s>", "Hello </s> world", "</s>Hello", "text</s>", "<s>", "<pad>", "<unk>",
                "<mask>", "</s", "<</s>>", " </s> ", "<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>",
                "Je suis allé à l'école.", "naïve café résumé", "Ærøskøbing", "Straße", "e\u0301", "\u00e9",
                "1234567890", "3.14159", "1,000,000", "Ⅻ", "½ ¾", "x² y³", "٣٤٥", "१२३",
                "😀", "😀😀", "👩‍👩‍👧‍👦", "👍🏽", "🇫🇷🇩🇪", " 😀 ", "a😀b",
                "中文字符", "日本語のテキスト、句読点。", "한국어 텍스트", "हिन्दी भाषा", "العربية", "עברית", "ภาษาไทย",
                "Привет, мир!", "Ελληνικά", "∀x ∈ ℝ: x² ≥ 0", "→ ← ↑ ↓", "…", "— – -", "“quoted” ‘single’",
                "!!!", "???", "...", "----", "*     *     *", "((()))", "$$$", "@#%^&*", "__init__", "a_b_c",
                "\u00a0", "a\u00a0b", "\u2003em space", "\u3000ideographic", "x\u0085y", "\u000b\u000c",
                "\u001c\u001d\u001e\u001f", "\u180e", "zero\u200bwidth", "\u2028\u2029", "\u202f\u205f", "\ufeffBOM",
                "\u0000", "\u0001\u007f", "\ufffd", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🀄", "\uD83D\uDE00 surrogate pair",
                "word\n\nword", "line one\nline two\n", "   leading", "trailing   ", " \n \n ",
                "Hello, my name is", "The quick brown fox jumps over the lazy dog.");
    }

    /**
     * Seeded random strings over characters from many Unicode blocks assigned long ago (so that the JDK's and
     * Oniguruma's Unicode tables agree on them), weighted towards spaces and apostrophes to stress the regex.
     */
    static List<String> randomUnicode(int count, long seed) {
        int[][] ranges = {
                {0x20, 0x7E}, {0x20, 0x20}, {0x27, 0x27}, {0x09, 0x0D}, {0x1C, 0x1F}, {0x85, 0x85}, {0xA0, 0xFF},
                {0x100, 0x17F}, {0x300, 0x36F}, {0x391, 0x3C9}, {0x410, 0x44F}, {0x5D0, 0x5EA}, {0x660, 0x669},
                {0x905, 0x939}, {0x93E, 0x94D}, {0xE01, 0xE3A}, {0x1680, 0x1680}, {0x2000, 0x200D},
                {0x2010, 0x2027}, {0x2028, 0x202F}, {0x205F, 0x205F}, {0x2070, 0x2079}, {0x20A0, 0x20B5},
                {0x2160, 0x2182}, {0x2190, 0x21FF}, {0x2200, 0x22FF}, {0x3000, 0x303F}, {0x3041, 0x3094},
                {0x4E00, 0x4FFF}, {0xAC00, 0xACFF}, {0xFF01, 0xFF5E}, {0x1D400, 0x1D454}, {0x1F300, 0x1F320},
                {0x1F600, 0x1F64F}, {0x1F3FB, 0x1F3FF}, {0x200D, 0x200D}, {0xFE0F, 0xFE0F},
        };
        SplittableRandom rng = new SplittableRandom(seed);
        List<String> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int len = 1 + rng.nextInt(24);
            StringBuilder sb = new StringBuilder();
            for (int k = 0; k < len; k++) {
                int[] r = ranges[rng.nextInt(ranges.length)];
                sb.appendCodePoint(r[0] + rng.nextInt(r[1] - r[0] + 1));
            }
            out.add(sb.toString());
        }
        return out;
    }

    /** Everything above: the sample, the hard cases and 400 random strings. */
    static List<String> all() {
        List<String> out = new ArrayList<>(gutenberg());
        out.addAll(hardCases());
        out.addAll(randomUnicode(400, 20261122L));
        return out;
    }
}
