package org.longexposure.io;

import java.nio.file.Path;
import java.util.Optional;

/**
 * The one exception for bad user input: a file that is missing, malformed, or holds something other than what
 * was expected. Its message is a single line of the form
 * {@code <file>: <subject>: <problem>}, for example
 * {@code model.safetensors: tensor 'model.decoder.layers.0.fc1.weight': data offsets [100, 900) run past the
 * end of the data section (512 bytes)}; the file and the subject are each left out when absent. The command line
 * prints that line and exits with status 2.
 *
 * <p>The subject says which part of the file is meant, already worded ({@code "tensor 'x'"},
 * {@code "field 'hidden_size'"}); the factories {@link #tensor} and {@link #field} word it the usual way. Text
 * taken from the input (names, values) should go through {@link #quote} so that control characters and huge
 * values cannot break the single line.
 */
public final class InputFormatException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Longest piece of input text quoted in a message; the rest is cut and marked with an ellipsis. */
    private static final int MAX_QUOTED = 120;

    private final transient Path file;
    private final String subject;
    private final String problem;

    /**
     * @param file    the file the input came from, or null when there is none (e.g. a string parsed in a test)
     * @param subject the part of the file meant, worded for the message ({@code "tensor 'x'"}), or null
     * @param problem what was found and what was expected
     */
    public InputFormatException(Path file, String subject, String problem) {
        this(file, subject, problem, null);
    }

    public InputFormatException(Path file, String subject, String problem, Throwable cause) {
        super(render(file, subject, problem), cause);
        this.file = file;
        this.subject = subject;
        this.problem = problem;
    }

    /** A problem with the file as a whole (its size, its header, its presence). */
    public static InputFormatException file(Path file, String problem) {
        return new InputFormatException(file, null, problem);
    }

    /** A problem with one named tensor of a weights file. */
    public static InputFormatException tensor(Path file, String tensorName, String problem) {
        return new InputFormatException(file, "tensor " + quote(tensorName), problem);
    }

    /** A problem with one field of a configuration file; nested fields are named with dots. */
    public static InputFormatException field(Path file, String fieldName, String problem) {
        return new InputFormatException(file, "field " + quote(fieldName), problem);
    }

    /** The file the bad input came from, if known. */
    public Optional<Path> path() {
        return Optional.ofNullable(file);
    }

    /** The part of the file meant ({@code "tensor 'x'"}), if any. */
    public Optional<String> subject() {
        return Optional.ofNullable(subject);
    }

    /** What was found and what was expected, without the file and subject. */
    public String problem() {
        return problem;
    }

    /**
     * {@code text} in single quotes, with control characters escaped as {@code \\uXXXX} and anything past
     * {@value #MAX_QUOTED} characters replaced by an ellipsis, so that it stays on one line.
     */
    public static String quote(String text) {
        return "'" + oneLine(text, MAX_QUOTED) + "'";
    }

    private static String render(Path file, String subject, String problem) {
        StringBuilder sb = new StringBuilder();
        if (file != null) {
            sb.append(oneLine(file.toString(), Integer.MAX_VALUE)).append(": ");
        }
        if (subject != null) {
            sb.append(oneLine(subject, Integer.MAX_VALUE)).append(": ");
        }
        sb.append(oneLine(String.valueOf(problem), Integer.MAX_VALUE));
        return sb.toString();
    }

    private static String oneLine(String text, int maxChars) {
        if (text == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder(Math.min(text.length(), maxChars) + 8);
        int n = Math.min(text.length(), maxChars);
        for (int i = 0; i < n; i++) {
            char c = text.charAt(i);
            if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        if (text.length() > maxChars) {
            sb.append("…");
        }
        return sb.toString();
    }
}
