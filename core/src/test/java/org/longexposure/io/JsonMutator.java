package org.longexposure.io;

import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Seeded mutations of JSON documents for the readers' fuzz tests. Three levels:
 * <ul>
 *   <li>the tree: a value somewhere below a chosen node is replaced by one of a palette (other JSON types, huge,
 *       negative and fractional numbers, null, empty and odd strings, nested containers), deleted, swapped with a
 *       sibling, wrapped in an array, nudged (numbers) or edited (strings), or a sibling is added;</li>
 *   <li>the text: truncation, deleted, duplicated, inserted or replaced characters, a literal replaced by raw text
 *       that no tree can hold (NaN, 1e400, a 1,200-digit number, 1,500 nested brackets, bad escapes), two literals
 *       swapped;</li>
 *   <li>the bytes: flipped bits, ill-formed UTF-8, a byte order mark.</li>
 * </ul>
 * Each mutation returns a short description for failure messages. The location is found by a random walk down
 * from the chosen node, so that a 50,000-entry vocabulary costs no more than a small object.
 */
public final class JsonMutator {
    /** A mutated document and what was done to it. */
    public record Mutant(String text, String what) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    /** A JSON literal: a string (keys included), a number, true, false or null. */
    private static final Pattern LITERAL = Pattern.compile(
            "\"(?:[^\"\\\\]|\\\\.)*\"|-?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|true|false|null");
    /** Raw text that replaces a literal: things Python's json writes, things no JSON tree holds, bad escapes. */
    private static final List<String> RAW = List.of("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400",
            "1" + "0".repeat(1200), "0." + "3".repeat(1200), "[".repeat(1500) + "]".repeat(1500),
            "{\"a\":".repeat(1100) + "1" + "}".repeat(1100), "01", ".5", "+1", "1.", "0x10", "'x'", "\"\\x41\"",
            "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\\ud800\"", "\"a\nb\"", "\"\t\"", "\"" + "\\\\".repeat(40) + "\"",
            "\"\\u0000\"", "--1", "1e", "-", "tru", "nul", "\"unterminated", "[1,]", "{,}", "[,1]", "{\"a\"}",
            "/* c */ 1", "// c\n1", "\"é\"", "\"\uD83D\uDE00\"", "\"\u2028\"", "9223372036854775808", "-0", "1E+2");
    private static final List<String> INSERTS = List.of("{", "}", "[", "]", "\"", ",", ":", "\\", "\u0000", "é",
            "\uD800", "\uDC00", " ", "\n", "\r", "\t", "-", "0", "9", "e", ".", "N", "NaN", "/", "//", "/*", "'",
            "\u00A0", "\uFEFF", "\u2028", "null", "\"\":", ",\"\":null");

    private final List<JsonNode> values;
    private final List<String> keys;

    /**
     * @param domainValues values worth trying besides the generic palette (type names, ids, token strings ...)
     * @param domainKeys   keys worth adding besides a mutated copy of an existing one
     */
    public JsonMutator(List<JsonNode> domainValues, List<String> domainKeys) {
        List<JsonNode> all = new ArrayList<>(genericValues());
        all.addAll(domainValues);
        this.values = List.copyOf(all);
        List<String> k = new ArrayList<>(List.of("", " ", "x", "type", "content", "id", "\u0000", "é"));
        k.addAll(domainKeys);
        this.keys = List.copyOf(k);
    }

    /** The palette every reader is tried with: each JSON type, number edge cases, odd strings, nesting. */
    public static List<JsonNode> genericValues() {
        ArrayNode deep = F.arrayNode();
        ArrayNode at = deep;
        for (int i = 0; i < 30; i++) {
            ArrayNode inner = F.arrayNode();
            at.add(inner);
            at = inner;
        }
        return List.of(F.nullNode(), F.booleanNode(true), F.booleanNode(false), F.numberNode(0), F.numberNode(1),
                F.numberNode(-1), F.numberNode(2), F.numberNode(7), F.numberNode(Integer.MAX_VALUE),
                F.numberNode(Integer.MAX_VALUE + 1L), F.numberNode(Integer.MIN_VALUE),
                F.numberNode(Integer.MIN_VALUE - 1L), F.numberNode(Long.MAX_VALUE),
                F.numberNode(BigInteger.TEN.pow(30)), F.numberNode(BigInteger.TEN.pow(30).negate()),
                F.numberNode(1.5), F.numberNode(0.5), F.numberNode(-0.0), F.numberNode(768.0), F.numberNode(1e-300),
                F.numberNode(1e300), F.numberNode(-2.5), F.numberNode(1e10), F.textNode(""), F.textNode(" "),
                F.textNode("0"), F.textNode("12"), F.textNode("true"), F.textNode("null"), F.textNode("\u0000"),
                F.textNode("\uD800"), F.textNode("é"), F.textNode("a".repeat(300)), F.textNode("\n"),
                F.textNode("\uD83D\uDE00"), F.textNode("a b"), F.arrayNode(), F.arrayNode().addNull(),
                F.arrayNode().add(1).add(2), F.arrayNode().add("a").add("b"), F.arrayNode().add("a"), F.objectNode(),
                F.objectNode().put("a", 1), F.objectNode().put("type", "x"), F.objectNode().putNull("type"), deep);
    }

    // --- tree level

    /**
     * Mutates, in place, a value at or below {@code focus} of {@code root} (which must exist and be a container);
     * returns what was done.
     */
    public String mutateTree(JsonNode root, JsonPointer focus, SplittableRandom rnd) {
        JsonNode parent = root.at(focus);
        String path = focus.toString();
        if (!parent.isContainerNode() || parent.isEmpty()) {
            return "nothing (focus " + path + " is empty)";
        }
        // random walk: stop at a child with some probability, else go down into a non-empty container
        Object key = randomKey(parent, rnd);
        while (true) {
            JsonNode child = get(parent, key);
            if (!child.isContainerNode() || child.isEmpty() || rnd.nextInt(5) < 2) {
                break;
            }
            path = path + "/" + key;
            parent = child;
            key = randomKey(parent, rnd);
        }
        String where = path + "/" + key;
        JsonNode current = get(parent, key);
        switch (rnd.nextInt(8)) {
            case 0, 1 -> {
                JsonNode v = pick(values, rnd).deepCopy();
                set(parent, key, v);
                return "replaced " + where + " by " + shorten(v.toString());
            }
            case 2 -> {
                if (parent.isObject()) {
                    ((ObjectNode) parent).remove((String) key);
                } else {
                    ((ArrayNode) parent).remove((Integer) key);
                }
                return "deleted " + where;
            }
            case 3 -> {
                JsonNode v = rnd.nextBoolean() ? current.deepCopy() : pick(values, rnd).deepCopy();
                if (parent.isObject()) {
                    String k = rnd.nextBoolean() ? pick(keys, rnd) : editString((String) key, rnd);
                    ((ObjectNode) parent).set(k, v);
                    return "added " + path + "/" + k + " = " + shorten(v.toString());
                }
                int at = rnd.nextInt(parent.size() + 1);
                ((ArrayNode) parent).insert(at, v);
                return "inserted " + shorten(v.toString()) + " at " + path + "/" + at;
            }
            case 4 -> {
                Object other = randomKey(parent, rnd);
                JsonNode o = get(parent, other);
                set(parent, other, current);
                set(parent, key, o);
                return "swapped " + where + " and " + path + "/" + other;
            }
            case 5 -> {
                if (current.isTextual()) {
                    String s = editString(current.textValue(), rnd);
                    set(parent, key, F.textNode(s));
                    return "edited " + where + " to " + shorten(F.textNode(s).toString());
                }
                if (parent.isObject() && rnd.nextBoolean()) {
                    String k = editString((String) key, rnd);
                    ObjectNode o = (ObjectNode) parent;
                    o.remove((String) key);
                    o.set(k, current);
                    return "renamed " + where + " to " + shorten(k);
                }
                JsonNode v = nudge(current, rnd);
                set(parent, key, v);
                return "nudged " + where + " to " + shorten(v.toString());
            }
            case 6 -> {
                JsonNode v = rnd.nextBoolean() ? F.arrayNode().add(current) : F.objectNode().set("content", current);
                set(parent, key, v);
                return "wrapped " + where;
            }
            default -> {
                JsonNode v = nudge(current, rnd);
                set(parent, key, v);
                return "nudged " + where + " to " + shorten(v.toString());
            }
        }
    }

    private static Object randomKey(JsonNode container, SplittableRandom rnd) {
        int i = rnd.nextInt(container.size());
        if (container.isArray()) {
            return i;
        }
        Iterator<String> names = container.fieldNames();
        for (int k = 0; k < i; k++) {
            names.next();
        }
        return names.next();
    }

    private static JsonNode get(JsonNode container, Object key) {
        return container.isObject() ? container.get((String) key) : container.get((Integer) key);
    }

    private static void set(JsonNode container, Object key, JsonNode v) {
        if (container.isObject()) {
            ((ObjectNode) container).set((String) key, v);
        } else {
            ((ArrayNode) container).set((Integer) key, v);
        }
    }

    /** A number moved by one, negated, scaled past int range, or made fractional; other values get a neighbour. */
    private JsonNode nudge(JsonNode v, SplittableRandom rnd) {
        if (v.isNumber()) {
            long n = v.asLong();
            return switch (rnd.nextInt(6)) {
                case 0 -> F.numberNode(n + 1);
                case 1 -> F.numberNode(n - 1);
                case 2 -> F.numberNode(-n);
                case 3 -> F.numberNode(n * 1_000_000_000L);
                case 4 -> F.numberNode(v.asDouble() + 0.5);
                default -> F.numberNode(0);
            };
        }
        if (v.isBoolean()) {
            return F.booleanNode(!v.booleanValue());
        }
        if (v.isTextual()) {
            return F.textNode(editString(v.textValue(), rnd));
        }
        return pick(values, rnd).deepCopy();
    }

    /** A character or two deleted, duplicated, inserted or replaced, or the string emptied or doubled. */
    public static String editString(String s, SplittableRandom rnd) {
        int op = rnd.nextInt(7);
        if (s.isEmpty() || op == 0) {
            return s + pick(INSERTS, rnd);
        }
        int at = rnd.nextInt(s.length());
        return switch (op) {
            case 1 -> s.substring(0, at) + s.substring(at + 1);
            case 2 -> s.substring(0, at + 1) + s.charAt(at) + s.substring(at + 1);
            case 3 -> s.substring(0, at) + pick(INSERTS, rnd) + s.substring(at);
            case 4 -> s.substring(0, at) + (char) rnd.nextInt(0x20, 0x250) + s.substring(at + 1);
            case 5 -> rnd.nextBoolean() ? "" : s + s;
            default -> s.toUpperCase(java.util.Locale.ROOT);
        };
    }

    // --- text level

    /** One edit of the text; see the class comment. */
    public static Mutant mutateText(String s, SplittableRandom rnd) {
        if (s.isEmpty()) {
            return new Mutant(pick(INSERTS, rnd), "inserted into empty text");
        }
        int at = rnd.nextInt(s.length());
        switch (rnd.nextInt(8)) {
            case 0 -> {
                return new Mutant(s.substring(0, at), "truncated to " + at + " chars");
            }
            case 1 -> {
                int n = 1 + rnd.nextInt(8);
                return new Mutant(s.substring(0, at) + s.substring(Math.min(s.length(), at + n)),
                        "deleted " + n + " chars at " + at);
            }
            case 2 -> {
                int end = Math.min(s.length(), at + 1 + rnd.nextInt(16));
                return new Mutant(s.substring(0, end) + s.substring(at, end) + s.substring(end),
                        "duplicated chars " + at + ".." + end);
            }
            case 3 -> {
                String ins = pick(INSERTS, rnd);
                return new Mutant(s.substring(0, at) + ins + s.substring(at), "inserted " + shorten(ins) + " at " + at);
            }
            case 4 -> {
                char c = (char) rnd.nextInt(0x20, 0x7F);
                return new Mutant(s.substring(0, at) + c + s.substring(at + 1), "replaced char " + at + " by " + c);
            }
            case 5 -> {
                Matcher a = LITERAL.matcher(s);
                Matcher b = LITERAL.matcher(s);
                if (a.find(at) && b.find(rnd.nextInt(s.length())) && a.start() != b.start()) {
                    int lo = Math.min(a.start(), b.start());
                    Matcher first = lo == a.start() ? a : b;
                    Matcher second = lo == a.start() ? b : a;
                    if (first.end() <= second.start()) {
                        String t = s.substring(0, first.start()) + second.group() + s.substring(first.end(),
                                second.start()) + first.group() + s.substring(second.end());
                        return new Mutant(t, "swapped " + shorten(first.group()) + " and " + shorten(second.group()));
                    }
                }
                return new Mutant(s.substring(0, at) + s.substring(at + 1), "deleted char " + at);
            }
            default -> {
                Matcher m = LITERAL.matcher(s);
                String raw = pick(RAW, rnd);
                if (m.find(at)) {
                    return new Mutant(s.substring(0, m.start()) + raw + s.substring(m.end()),
                            "replaced " + shorten(m.group()) + " at " + m.start() + " by " + shorten(raw));
                }
                return new Mutant(s + raw, "appended " + shorten(raw));
            }
        }
    }

    // --- byte level

    /** Flipped bits, an ill-formed UTF-8 sequence inserted, a BOM prepended, or a multi-byte char cut in two. */
    public static byte[] mutateBytes(byte[] b, SplittableRandom rnd) {
        byte[] out = b.clone();
        int at = rnd.nextInt(Math.max(1, b.length));
        switch (rnd.nextInt(4)) {
            case 0 -> {
                for (int i = 1 + rnd.nextInt(3); i > 0 && out.length > 0; i--) {
                    out[rnd.nextInt(out.length)] ^= (byte) (1 << rnd.nextInt(8));
                }
            }
            case 1 -> {
                byte[][] bad = {{(byte) 0xFF}, {(byte) 0xC3}, {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
                    {(byte) 0xC0, (byte) 0x80}, {(byte) 0x80}, {(byte) 0xF4, (byte) 0x90, (byte) 0x80, (byte) 0x80}};
                out = splice(b, at, bad[rnd.nextInt(bad.length)]);
            }
            case 2 -> out = splice(b, 0, new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF});
            default -> out = splice(b, at, "é".getBytes(StandardCharsets.UTF_8), 1);
        }
        return out;
    }

    private static byte[] splice(byte[] b, int at, byte[] ins) {
        return splice(b, at, ins, ins.length);
    }

    private static byte[] splice(byte[] b, int at, byte[] ins, int n) {
        int pos = Math.min(at, b.length);
        byte[] out = new byte[b.length + n];
        System.arraycopy(b, 0, out, 0, pos);
        System.arraycopy(ins, 0, out, pos, n);
        System.arraycopy(b, pos, out, pos + n, b.length - pos);
        return out;
    }

    // --- helpers

    /** {@code root} as compact JSON text. */
    public static String write(JsonNode root) {
        try {
            return JSON.writeValueAsString(root);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Parses JSON text, or null if it is not valid JSON (e.g. after an earlier text-level edit). */
    public static JsonNode readOrNull(String text) {
        try {
            return JSON.readTree(text);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return null;
        }
    }

    /** Parses test-built JSON text. */
    public static JsonNode read(String text) {
        try {
            return JSON.readTree(text);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    public static <T> T pick(List<T> options, SplittableRandom rnd) {
        return options.get(rnd.nextInt(options.size()));
    }

    /**
     * A cheap excerpt of {@code s} for a case description: quoted, cut after 200 chars with its length noted. The
     * harness makes the description {@link #printable} only when a case fails.
     */
    public static String shorten(String s) {
        return s.length() <= 200 ? "'" + s + "'" : "'" + s.substring(0, 200) + "…' (" + s.length() + " chars)";
    }

    /** {@code s} with control characters and unpaired surrogates escaped, which a report file cannot hold. */
    public static String printable(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean paired = Character.isHighSurrogate(c)
                    ? i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))
                    : Character.isLowSurrogate(c) && i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
            if (Character.isISOControl(c) || (Character.isSurrogate(c) && !paired)) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }
}
