package org.longexposure.io;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;

/** Wording of JSON values and JSON syntax errors for {@link InputFormatException} messages. */
public final class JsonText {
    /** Longest JSON text of a value shown in a message. */
    private static final int MAX_SHOWN = 60;

    private JsonText() {
    }

    /**
     * A value as a message shows it: its JSON type and, unless null or missing, its JSON text (cut short),
     * e.g. {@code a string "big"}, {@code a number 768.5}, {@code an array [1,2]}, {@code null}, {@code missing}.
     */
    public static String describe(JsonNode node) {
        if (node == null || node.isMissingNode()) {
            return "missing";
        }
        if (node.isNull()) {
            return "null";
        }
        String kind = node.isObject() ? "an object" : node.isArray() ? "an array" : node.isTextual() ? "a string"
                : node.isNumber() ? "a number" : node.isBoolean() ? "a boolean" : "a value";
        String text = node.toString();
        if (text.length() > MAX_SHOWN) {
            text = text.substring(0, MAX_SHOWN) + "…";
        }
        return kind + " " + text;
    }

    /** The error for JSON that does not parse: {@code what} (e.g. "header") plus Jackson's line and column. */
    public static InputFormatException syntaxError(Path file, String what, JacksonException e) {
        JsonLocation loc = e.getLocation();
        String where = loc == null || loc.getLineNr() < 0 ? ""
                : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr();
        return new InputFormatException(file, null, what + " is not valid JSON" + where + ": "
                + e.getOriginalMessage(), e);
    }
}
