package org.longexposure.io.tokenizer;

import org.longexposure.io.InputFormatException;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;

/** Reading the tokenizer's JSON files, with errors that name the file, the field and what was expected. */
final class JsonFiles {
    /** Immutable and thread-safe; building a mapper per file cost more than parsing a small file. */
    private static final ObjectReader READER = new ObjectMapper().reader();

    private JsonFiles() {}

    /** Parses {@code file}, which must exist and hold a JSON object; {@code what} says what it should be. */
    static JsonNode readObject(Path file, String what) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new InputFormatException(file, null, "file not found; expected " + what, e);
        } catch (IOException e) {
            throw new InputFormatException(file, null, "cannot read " + what + ": " + e, e);
        }
        JsonNode root;
        try {
            root = READER.readTree(text);
        } catch (JacksonException e) {
            // Jackson's limits (nesting depth, number length) report no location
            String where = e.getLocation() == null || e.getLocation().getLineNr() < 0 ? ""
                    : " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
            throw new InputFormatException(file, null, "not valid JSON (" + e.getOriginalMessage() + where
                    + "); expected " + what, e);
        }
        if (root == null || !root.isObject()) {
            throw new InputFormatException(file, null, "expected a JSON object holding " + what);
        }
        return root;
    }

    /** Like {@link #readObject} but empty when the file does not exist. */
    static Optional<JsonNode> readObjectIfExists(Path file, String what) {
        return Files.exists(file) ? Optional.of(readObject(file, what)) : Optional.empty();
    }

    /** The text of {@code node.field}, empty if absent or null; an error if present with another type. */
    static Optional<String> optText(Path file, JsonNode node, String field, String path) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return Optional.empty();
        }
        if (!v.isTextual()) {
            throw new InputFormatException(file, path, "expected a string, found " + describe(v));
        }
        return Optional.of(v.asText());
    }

    /** The boolean {@code node.field}, or {@code def} if absent or null; an error if present with another type. */
    static boolean optBoolean(Path file, JsonNode node, String field, String path, boolean def) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return def;
        }
        if (!v.isBoolean()) {
            throw new InputFormatException(file, path, "expected true or false, found " + describe(v));
        }
        return v.booleanValue();
    }

    /**
     * Largest token id accepted. The tokenizer keeps tables indexed by id (and a model has one embedding row per id),
     * so an id sets the memory they take; 2^24 - 1 is 64 times the largest vocabularies in use (262,144 tokens).
     */
    static final int MAX_TOKEN_ID = (1 << 24) - 1;

    /** Whether {@code v} is a valid token id: an integer in {@code [0, MAX_TOKEN_ID]}. */
    static boolean isTokenId(JsonNode v) {
        return v != null && v.isIntegralNumber() && v.canConvertToInt() && v.intValue() >= 0
                && v.intValue() <= MAX_TOKEN_ID;
    }

    /** {@code v} as a token id (an int in {@code [0, MAX_TOKEN_ID]}); {@code path} names it in errors. */
    static int tokenId(Path file, JsonNode v, String path) {
        if (!isTokenId(v)) {
            if (v != null && v.isIntegralNumber() && v.canConvertToInt() && v.intValue() > MAX_TOKEN_ID) {
                throw new InputFormatException(file, path, "token id " + v.intValue() + " is too large; expected at "
                        + "most " + MAX_TOKEN_ID);
            }
            throw new InputFormatException(file, path, "expected a non-negative integer token id, found "
                    + (v == null ? "nothing" : describe(v)));
        }
        return v.intValue();
    }

    /** A short description of a JSON value for error messages: its type and, if short, the value itself. */
    static String describe(JsonNode v) {
        String text = v.toString();
        String shown = text.length() <= 60 ? text : text.substring(0, 57) + "...";
        return v.getNodeType().name().toLowerCase(java.util.Locale.ROOT) + " " + shown;
    }
}
