package org.longexposure.io.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Splits raw text around added tokens, which then bypass pre-tokenization and BPE.
 *
 * <p>Reference: HF tokenizers {@code AddedVocabulary::extract_and_normalize} / {@code find_matches}. Matching is
 * leftmost-longest and non-overlapping (their Aho-Corasick {@code MatchKind::LeftmostLongest}). Tokens with
 * {@code normalized = false} are matched first on the raw text; tokens with {@code normalized = true} then on the
 * remaining pieces (this reader supports no normalizer, so both passes see the same characters, but the order still
 * decides which token wins an overlap). {@code single_word} drops a match touching a word character ({@code \w},
 * Unicode) on either side; {@code lstrip}/{@code rstrip} extend the match over neighbouring whitespace.
 */
final class AddedVocabulary {
    private static final Pattern WORD_CHAR = Pattern.compile("\\w", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern SPACE_CHAR = Pattern.compile("\\s", Pattern.UNICODE_CHARACTER_CLASS);

    private final Map<Character, List<AddedToken>> rawByFirstChar;
    private final Map<Character, List<AddedToken>> normalizedByFirstChar;
    private final boolean empty;

    AddedVocabulary(List<AddedToken> tokens) {
        List<AddedToken> raw = new ArrayList<>();
        List<AddedToken> normalized = new ArrayList<>();
        for (AddedToken t : tokens) {
            if (!t.content().isEmpty()) {
                (t.normalized() ? normalized : raw).add(t);
            }
        }
        rawByFirstChar = index(raw);
        normalizedByFirstChar = index(normalized);
        empty = raw.isEmpty() && normalized.isEmpty();
    }

    /**
     * The ids HF gives to added tokens, in the order they are declared (HF tokenizers
     * {@code AddedVocabulary::add_tokens}; a tokenizer.json's stored {@code id} is only compared against it, with a
     * warning): a token whose text is already a token keeps that id; a new text gets the next free id, i.e.
     * {@code vocab.size()} for the first one and then one past the largest added id. Empty tokens and exact
     * repeats are dropped.
     *
     * @param vocab the model vocabulary (text → id)
     */
    static List<AddedToken> assignIds(List<AddedToken> declared, Map<String, Integer> vocab) {
        Set<String> specialTexts = new HashSet<>();
        for (AddedToken t : declared) {
            if (t.special() && !t.content().isEmpty()) {
                specialTexts.add(t.content());
            }
        }
        Map<String, Integer> ids = new HashMap<>();
        Map<Integer, AddedToken> byId = new LinkedHashMap<>();
        List<AddedToken> kept = new ArrayList<>();  // as declared, for the repeat check
        int maxAdded = -1;
        for (AddedToken t : declared) {
            if (t.content().isEmpty() || kept.stream().anyMatch(t::sameAs)) {
                continue;
            }
            kept.add(t);
            Integer id = ids.get(t.content());
            if (id == null) {
                id = vocab.get(t.content());
            }
            if (id == null) {
                id = ids.isEmpty() || maxAdded < vocab.size() ? vocab.size() : maxAdded + 1;
            }
            ids.put(t.content(), id);
            maxAdded = Math.max(maxAdded, id);
            // "special" is a property of the text: HF keeps a set of special texts
            byId.put(id, new AddedToken(t.content(), id, specialTexts.contains(t.content()), t.singleWord(),
                    t.lstrip(), t.rstrip(), t.normalized()));
        }
        return new ArrayList<>(byId.values());
    }

    /** A piece of the text: either plain text ({@code token == null}) or one matched added token. */
    record Piece(String text, AddedToken token) {}

    /** Splits {@code text} into plain pieces and added-token pieces, in order; empty plain pieces are dropped. */
    List<Piece> split(String text) {
        List<Piece> pieces = new ArrayList<>();
        if (empty) {
            if (!text.isEmpty()) {
                pieces.add(new Piece(text, null));
            }
            return pieces;
        }
        List<Piece> first = new ArrayList<>();
        findMatches(text, rawByFirstChar, first);
        for (Piece p : first) {
            if (p.token() != null) {
                pieces.add(p);
            } else {
                findMatches(p.text(), normalizedByFirstChar, pieces);
            }
        }
        return pieces;
    }

    private static void findMatches(String s, Map<Character, List<AddedToken>> byFirst, List<Piece> out) {
        if (s.isEmpty()) {
            return;
        }
        if (byFirst.isEmpty()) {
            out.add(new Piece(s, null));
            return;
        }
        int startOffset = 0;
        int i = 0;
        while (i < s.length()) {
            AddedToken match = longestAt(s, i, byFirst);
            if (match == null) {
                i++;
                continue;
            }
            int start = i;
            int stop = i + match.content().length();
            i = stop;  // matches do not overlap, even a discarded one
            if (match.singleWord()) {
                boolean startSpace = start == 0 || !isWordChar(s.codePointBefore(start));
                boolean stopSpace = stop == s.length() || !isWordChar(s.codePointAt(stop));
                if (!startSpace || !stopSpace) {
                    continue;
                }
            }
            if (match.lstrip()) {
                int newStart = start;
                while (newStart > 0 && isSpace(s.codePointBefore(newStart))) {
                    newStart -= Character.charCount(s.codePointBefore(newStart));
                }
                start = Math.max(newStart, startOffset);
            }
            if (match.rstrip()) {
                while (stop < s.length() && isSpace(s.codePointAt(stop))) {
                    stop += Character.charCount(s.codePointAt(stop));
                }
            }
            if (startOffset < start) {
                out.add(new Piece(s.substring(startOffset, start), null));
            }
            out.add(new Piece(s.substring(start, stop), match));
            startOffset = stop;
            i = Math.max(i, stop);
        }
        if (startOffset < s.length()) {
            out.add(new Piece(s.substring(startOffset), null));
        }
    }

    private static AddedToken longestAt(String s, int i, Map<Character, List<AddedToken>> byFirst) {
        List<AddedToken> candidates = byFirst.get(s.charAt(i));
        if (candidates != null) {
            for (AddedToken t : candidates) {  // longest first
                if (s.startsWith(t.content(), i)) {
                    return t;
                }
            }
        }
        return null;
    }

    private static boolean isWordChar(int cp) {
        return WORD_CHAR.matcher(Character.toString(cp)).matches();
    }

    private static boolean isSpace(int cp) {
        return SPACE_CHAR.matcher(Character.toString(cp)).matches();
    }

    private static Map<Character, List<AddedToken>> index(List<AddedToken> tokens) {
        Map<Character, List<AddedToken>> byFirst = new HashMap<>();
        for (AddedToken t : tokens) {
            byFirst.computeIfAbsent(t.content().charAt(0), k -> new ArrayList<>()).add(t);
        }
        for (List<AddedToken> list : byFirst.values()) {
            list.sort(Comparator.comparingInt((AddedToken t) -> t.content().length()).reversed());
        }
        return byFirst;
    }
}
