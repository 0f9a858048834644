package org.longexposure.io.tokenizer;

import java.util.List;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Cuts a plain-text piece (between added tokens) into the words that BPE sees.
 *
 * <p>Reference: HF tokenizers {@code pre_tokenizers::split::Split} (behaviour "Isolated": matches and the gaps
 * between them both become pieces) followed by {@code pre_tokenizers::byte_level::ByteLevel}: optionally prepend a
 * space to each piece that does not start with one ({@code add_prefix_space}), then optionally split it with
 * GPT-2's regex ({@code use_regex}). Empty pieces are dropped at every step. The byte mapping itself happens in
 * {@link BpeModel}, which receives each word as raw text.
 *
 * @param splits         regexes of the {@code Split} steps that run before ByteLevel, in order (GPT-2 and OPT: none)
 * @param addPrefixSpace ByteLevel's {@code add_prefix_space}
 * @param useRegex       ByteLevel's {@code use_regex}
 */
record PreTokenizer(List<Pattern> splits, boolean addPrefixSpace, boolean useRegex) {
    PreTokenizer {
        splits = List.copyOf(splits);
    }

    /** Calls {@code word} for each word of {@code text}, in order. */
    void forEachWord(String text, Consumer<String> word) {
        splitFrom(0, text, word);
    }

    private void splitFrom(int step, String piece, Consumer<String> word) {
        if (step == splits.size()) {
            byteLevel(piece, word);
            return;
        }
        Matcher m = splits.get(step).matcher(piece);
        int last = 0;
        while (m.find()) {
            if (m.end() == m.start()) {
                continue;
            }
            if (m.start() > last) {
                splitFrom(step + 1, piece.substring(last, m.start()), word);
            }
            splitFrom(step + 1, piece.substring(m.start(), m.end()), word);
            last = m.end();
        }
        if (last < piece.length()) {
            splitFrom(step + 1, last == 0 ? piece : piece.substring(last), word);
        }
    }

    private void byteLevel(String piece, Consumer<String> word) {
        String s = addPrefixSpace && !piece.startsWith(" ") ? " " + piece : piece;
        if (!useRegex) {
            word.accept(s);
            return;
        }
        Matcher m = ByteLevel.GPT2_PATTERN.matcher(s);
        int last = 0;
        while (m.find()) {
            if (m.start() > last) {
                word.accept(s.substring(last, m.start()));  // unreachable for GPT-2's regex, which matches every char
            }
            word.accept(s.substring(m.start(), m.end()));
            last = m.end();
        }
        if (last < s.length()) {
            word.accept(s.substring(last));
        }
    }
}
