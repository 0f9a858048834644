package org.longexposure.io.config;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.MalformedInputException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.Set;
import java.util.stream.Collectors;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.JsonText;
import org.longexposure.io.NameSuggestions;

/**
 * A lenient, typed view of a Hugging Face {@code config.json} (what transformers' {@code PretrainedConfig}
 * writes): the whole JSON object is kept, unknown keys included, and read through typed accessors. Nothing is
 * interpreted here; mapping fields to a model happens in the model layer.
 *
 * <p>Lenient where Python's {@code json} is: {@code NaN} and {@code Infinity} parse, and a key given twice keeps
 * its last value. A JSON {@code null} counts as absent for the accessors that take a default or return an
 * optional (transformers writes {@code "rope_scaling": null} for "not set"); the required accessors reject it.
 * Integers may be written as floats when exactly integral ({@code 768.0}).
 *
 * <p>Every error is an {@link InputFormatException} naming the file and the field (nested fields with dots,
 * {@code rope_scaling.factor}), the value found and the type expected. Instances are immutable.
 */
public final class HfConfig {
    /** Python's json module reads and writes NaN/Infinity; nothing may follow the top-level object. */
    private static final ObjectReader READER = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build()
            .reader();

    private final Path file; // may be null
    private final String prefix; // "" at the top level, "rope_scaling." inside that object
    private final JsonNode root; // an object node, never modified

    private HfConfig(Path file, String prefix, JsonNode root) {
        this.file = file;
        this.prefix = prefix;
        this.root = root;
    }

    /** Reads {@code file}; a missing file or malformed JSON is an error naming the file (and line/column). */
    public static HfConfig read(Path file) {
        if (Files.isDirectory(file)) {
            throw InputFormatException.file(file, "is a folder, expected a config.json file");
        }
        String json;
        try {
            json = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw InputFormatException.file(file, "file not found");
        } catch (AccessDeniedException e) {
            throw InputFormatException.file(file, "permission denied");
        } catch (MalformedInputException e) {
            throw InputFormatException.file(file, "not valid UTF-8 text");
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file, e);
        }
        return parse(json, file);
    }

    /** Parses {@code json}; {@code nameForErrors} (may be null) is the file errors name. */
    public static HfConfig parse(String json, Path nameForErrors) {
        JsonNode root;
        try {
            root = READER.readTree(json);
        } catch (JacksonException e) {
            throw JsonText.syntaxError(nameForErrors, "config", e);
        }
        if (root == null || !root.isObject()) {
            throw InputFormatException.file(nameForErrors, "config is " + JsonText.describe(root)
                    + ", expected a JSON object");
        }
        return new HfConfig(nameForErrors, "", root);
    }

    /** The file this was read from, if any. */
    public Optional<Path> path() {
        return Optional.ofNullable(file);
    }

    /** The keys present (null-valued ones included), in file order. */
    public Set<String> keys() {
        Set<String> keys = new LinkedHashSet<>();
        root.fieldNames().forEachRemaining(keys::add);
        return Collections.unmodifiableSet(keys);
    }

    /** True if {@code key} is present with a non-null value. */
    public boolean has(String key) {
        JsonNode v = root.get(key);
        return v != null && !v.isNull();
    }

    /** The required {@code model_type} (e.g. {@code "opt"}, {@code "gpt2"}, {@code "llama"}). */
    public String modelType() {
        return getString("model_type");
    }

    // --- integers

    /** Required integer {@code key}. */
    public int getInt(String key) {
        return toInt(key, required(key, "an integer"));
    }

    /** Integer {@code key}, or {@code dflt} if absent or null. */
    public int getInt(String key, int dflt) {
        OptionalInt v = optInt(key);
        return v.isPresent() ? v.getAsInt() : dflt;
    }

    /** Integer {@code key}, empty if absent or null. */
    public OptionalInt optInt(String key) {
        JsonNode v = optional(key);
        return v == null ? OptionalInt.empty() : OptionalInt.of(toInt(key, v));
    }

    // --- floating point

    /** Required number {@code key}. */
    public double getDouble(String key) {
        return toDouble(key, required(key, "a number"));
    }

    /** Number {@code key}, or {@code dflt} if absent or null. */
    public double getDouble(String key, double dflt) {
        OptionalDouble v = optDouble(key);
        return v.isPresent() ? v.getAsDouble() : dflt;
    }

    /** Number {@code key}, empty if absent or null. */
    public OptionalDouble optDouble(String key) {
        JsonNode v = optional(key);
        return v == null ? OptionalDouble.empty() : OptionalDouble.of(toDouble(key, v));
    }

    // --- booleans

    /** Boolean {@code key} ({@code true}/{@code false}, not strings or numbers), or {@code dflt}. */
    public boolean getBoolean(String key, boolean dflt) {
        JsonNode v = optional(key);
        if (v == null) {
            return dflt;
        }
        if (!v.isBoolean()) {
            throw wrongType(key, v, "a boolean (true or false)");
        }
        return v.booleanValue();
    }

    // --- strings

    /** Required string {@code key}. */
    public String getString(String key) {
        return toText(key, required(key, "a string"));
    }

    /** String {@code key}, or {@code dflt} if absent or null. */
    public String getString(String key, String dflt) {
        return optString(key).orElse(dflt);
    }

    /** String {@code key}, empty if absent or null. */
    public Optional<String> optString(String key) {
        JsonNode v = optional(key);
        return v == null ? Optional.empty() : Optional.of(toText(key, v));
    }

    /** Array of strings {@code key} (e.g. {@code architectures}); empty if absent or null. */
    public List<String> getStringList(String key) {
        JsonNode v = optional(key);
        if (v == null) {
            return List.of();
        }
        if (!v.isArray()) {
            throw wrongType(key, v, "an array of strings");
        }
        List<String> out = new ArrayList<>(v.size());
        for (int i = 0; i < v.size(); i++) {
            out.add(toText(key + "[" + i + "]", v.get(i)));
        }
        return List.copyOf(out);
    }

    // --- nested objects and the raw tree

    /**
     * Object {@code key} (e.g. {@code rope_scaling}) as a config of its own whose errors name its fields as
     * {@code key.field}; empty if absent or null.
     */
    public Optional<HfConfig> optObject(String key) {
        JsonNode v = optional(key);
        if (v == null) {
            return Optional.empty();
        }
        if (!v.isObject()) {
            throw wrongType(key, v, "an object");
        }
        return Optional.of(new HfConfig(file, prefix + key + ".", v));
    }

    /** A copy of the JSON tree, for fields no typed accessor covers. */
    public JsonNode tree() {
        return root.deepCopy();
    }

    @Override
    public String toString() {
        return "HfConfig[" + (file == null ? "" : file + ", ") + root.size() + " keys]";
    }

    // --- conversions and errors

    private JsonNode optional(String key) {
        JsonNode v = root.get(key);
        return v == null || v.isNull() ? null : v;
    }

    private JsonNode required(String key, String expected) {
        JsonNode v = root.get(key);
        if (v == null) {
            List<String> close = NameSuggestions.closest(key, keys(), 3).stream()
                    .filter(k -> isClose(key, k)).toList();
            String hint = close.isEmpty() ? "" : " (present: " + close.stream()
                    .map(InputFormatException::quote).collect(Collectors.joining(", ")) + ")";
            throw InputFormatException.field(file, prefix + key, "required field is missing, expected "
                    + expected + hint);
        }
        if (v.isNull()) {
            throw wrongType(key, v, expected);
        }
        return v;
    }

    /** A present key worth suggesting for a missing one: a few edits away relative to its length. */
    private static boolean isClose(String wanted, String present) {
        return NameSuggestions.distance(wanted, present) <= Math.max(2, wanted.length() / 3);
    }

    private int toInt(String key, JsonNode v) {
        if (v.isIntegralNumber()) {
            if (v.canConvertToInt()) {
                return v.intValue();
            }
        } else if (v.isNumber()) {
            double d = v.doubleValue();
            if (d == Math.rint(d) && d >= Integer.MIN_VALUE && d <= Integer.MAX_VALUE) {
                return (int) d;
            }
        }
        throw wrongType(key, v, v.isNumber() ? "an integer in the 32-bit range" : "an integer");
    }

    private double toDouble(String key, JsonNode v) {
        if (!v.isNumber()) {
            throw wrongType(key, v, "a number");
        }
        return v.doubleValue();
    }

    private String toText(String key, JsonNode v) {
        if (!v.isTextual()) {
            throw wrongType(key, v, "a string");
        }
        return v.textValue();
    }

    private InputFormatException wrongType(String key, JsonNode found, String expected) {
        return InputFormatException.field(file, prefix + key, "expected " + expected + ", found "
                + JsonText.describe(found));
    }
}
