package org.longexposure.io.tokenizer;

import java.nio.file.Path;
import java.util.Optional;

/**
 * A tokenizer file that is missing, unreadable or malformed, or that asks for something this reader does not
 * implement. The message names the file, the JSON field or line where the problem is, and what was expected.
 */
public class TokenizerException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;
    private final String field;

    /**
     * @param file    the file (or folder) at fault
     * @param field   the JSON path ({@code model.merges[17]}), line ({@code line 5}) or other place inside the file;
     *                null when the problem concerns the file as a whole
     * @param message what is wrong and what was expected
     */
    public TokenizerException(Path file, String field, String message) {
        super(format(file, field, message));
        this.file = file;
        this.field = field;
    }

    public TokenizerException(Path file, String field, String message, Throwable cause) {
        super(format(file, field, message), cause);
        this.file = file;
        this.field = field;
    }

    /** The file or folder at fault. */
    public Path file() {
        return file;
    }

    /** The place inside the file (JSON path or line), if the problem is local to one. */
    public Optional<String> field() {
        return Optional.ofNullable(field);
    }

    private static String format(Path file, String field, String message) {
        return file + (field == null ? "" : " [" + field + "]") + ": " + message;
    }
}
