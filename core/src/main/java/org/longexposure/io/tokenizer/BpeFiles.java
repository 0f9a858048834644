package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The BPE vocabulary and merges as they are stored (a JSON object token → id; merges as {@code "a b"} lines or
 * {@code ["a", "b"]} pairs), checked and turned into a {@link BpeModel}.
 *
 * <p>Reference: HF tokenizers {@code models::bpe::BPE::read_file} / {@code convert_merges_to_hashmap} and
 * {@code BpeBuilder::build}: a merges line starting with {@code #version} is a header; every other line must be
 * two tokens separated by one space; the rank of a merge is its position among the merges; both halves and their
 * concatenation must be in the vocabulary.
 */
final class BpeFiles {
    /**
     * One merge and where it was read, for error messages: {@code line N} of merges.txt (1-based, {@code jsonPath}
     * null) or {@code jsonPath[N]} of tokenizer.json (0-based).
     */
    record Merge(String left, String right, String jsonPath, int index) {
        String where() {
            return jsonPath == null ? "line " + index : jsonPath + "[" + index + "]";
        }
    }

    private BpeFiles() {}

    /** Reads a vocabulary object (token → id). Ids must be non-negative ints, each used once. */
    static Map<String, Integer> readVocab(Path file, JsonNode vocab, String path) {
        if (vocab == null || !vocab.isObject()) {
            throw new InputFormatException(file, path, "expected a JSON object from token to id, found "
                    + (vocab == null ? "nothing" : JsonFiles.describe(vocab)));
        }
        Map<String, Integer> out = new LinkedHashMap<>(vocab.size() * 2);
        Map<Integer, String> seen = new HashMap<>(vocab.size() * 2);
        for (Map.Entry<String, JsonNode> e : vocab.properties()) {
            JsonNode v = e.getValue();
            if (!JsonFiles.isTokenId(v)) {
                JsonFiles.tokenId(file, v, (path.isEmpty() ? "" : path + ".") + quote(e.getKey()));  // throws
            }
            int id = v.intValue();
            String previous = seen.put(id, e.getKey());
            if (previous != null) {
                throw new InputFormatException(file, (path.isEmpty() ? "" : path + ".") + quote(e.getKey()), "id " + id
                        + " is also used by token " + quote(previous) + "; expected each id once");
            }
            out.put(e.getKey(), id);
        }
        if (out.isEmpty()) {
            throw new InputFormatException(file, path.isEmpty() ? null : path, "the vocabulary is empty");
        }
        return out;
    }

    /** Reads {@code merges.txt}: an optional {@code #version} header, then one {@code "left right"} per line. */
    static List<Merge> readMergesTxt(Path file) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(file)))
                    .toString();
        } catch (NoSuchFileException e) {
            throw new InputFormatException(file, null, "file not found; expected the BPE merges (one \"left right\" "
                    + "pair per line)", e);
        } catch (CharacterCodingException e) {
            throw new InputFormatException(file, null, "not valid UTF-8; expected the BPE merges as UTF-8 text", e);
        } catch (IOException e) {
            throw new InputFormatException(file, null, "cannot read the BPE merges: " + e, e);
        }
        List<Merge> merges = new ArrayList<>();
        String[] lines = text.split("\n", -1);
        int count = lines.length;
        if (count > 0 && lines[count - 1].isEmpty()) {
            count--;  // the newline that ends the last line
        }
        for (int i = 0; i < count; i++) {
            String line = lines[i].endsWith("\r") ? lines[i].substring(0, lines[i].length() - 1) : lines[i];
            if (line.startsWith("#version")) {
                continue;
            }
            merges.add(splitMerge(file, line, null, i + 1));
        }
        return merges;
    }

    /** Reads {@code model.merges} of tokenizer.json: strings {@code "a b"} (older files) or pairs {@code ["a","b"]}. */
    static List<Merge> readMergesJson(Path file, JsonNode merges, String path) {
        if (merges == null || !merges.isArray()) {
            throw new InputFormatException(file, path, "expected a list of merges, found "
                    + (merges == null ? "nothing" : JsonFiles.describe(merges)));
        }
        List<Merge> out = new ArrayList<>(merges.size());
        for (int i = 0; i < merges.size(); i++) {
            JsonNode m = merges.get(i);
            if (m.isTextual()) {
                out.add(splitMerge(file, m.asText(), path, i));
            } else if (m.isArray() && m.size() == 2 && m.get(0).isTextual() && m.get(1).isTextual()) {
                out.add(new Merge(m.get(0).asText(), m.get(1).asText(), path, i));
            } else {
                throw new InputFormatException(file, path + "[" + i + "]", "expected a merge as \"left right\" or [\"left\", \"right\"], "
                        + "found " + JsonFiles.describe(m));
            }
        }
        return out;
    }

    /**
     * Checks the vocabulary against the merges and the byte alphabet and builds the model. Every one of the 256
     * byte-alphabet chars must be a token, since a byte-level BPE word starts as one symbol per byte.
     */
    static BpeModel build(Path vocabFile, String vocabPath, Map<String, Integer> vocab, Path mergesFile,
                          List<Merge> merges, boolean ignoreMerges) {
        int[] byteIds = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(ByteLevel.byteToChar(b)));
            if (id == null) {
                throw new InputFormatException(vocabFile, vocabPath.isEmpty() ? null : vocabPath, String.format(
                        "no token for byte 0x%02X (char U+%04X); a byte-level BPE vocabulary must hold all 256",
                        b, (int) ByteLevel.byteToChar(b)));
            }
            byteIds[b] = id;
        }
        PairRanks ranks = new PairRanks(merges.size());
        int[] mergedIds = new int[merges.size()];
        for (int r = 0; r < merges.size(); r++) {
            Merge m = merges.get(r);
            Integer left = vocab.get(m.left());
            Integer right = vocab.get(m.right());
            Integer merged = vocab.get(m.left() + m.right());
            String missing = left == null ? m.left() : right == null ? m.right() : merged == null
                    ? m.left() + m.right() : null;
            if (missing != null) {
                throw new InputFormatException(mergesFile, m.where(), "merge " + quote(m.left()) + " + "
                        + quote(m.right()) + " uses token " + quote(missing) + ", which is not in the vocabulary");
            }
            ranks.put(left, right, r);
            mergedIds[r] = merged;
        }
        return new BpeModel(vocab, byteIds, ranks, mergedIds, ignoreMerges);
    }

    private static Merge splitMerge(Path file, String line, String jsonPath, int index) {
        int sp = line.indexOf(' ');
        if (sp <= 0 || sp == line.length() - 1 || line.indexOf(' ', sp + 1) >= 0) {
            throw new InputFormatException(file, new Merge("", "", jsonPath, index).where(),
                    "expected a merge as two tokens separated by one space, found " + quote(line));
        }
        return new Merge(line.substring(0, sp), line.substring(sp + 1), jsonPath, index);
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        s.codePoints().limit(60).forEach(cp -> {
            if (cp < 0x20 || cp == 0x7F) {
                sb.append(String.format("\\u%04x", cp));
            } else {
                sb.appendCodePoint(cp);
            }
        });
        return sb.append(s.codePointCount(0, s.length()) > 60 ? "...\"" : "\"").toString();
    }
}
