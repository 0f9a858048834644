package org.longexposure.io.data;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.longexposure.io.InputFormatException;

/**
 * Reads a JSONL dataset, one sample per line, in one of three shapes (detected per line by its keys):
 * <ul>
 *   <li>{@code {"text": …}}: encoded as the model's HF tokenizer does by default (OPT: {@code </s>} prepended,
 *       nothing appended); loss on every predicted token;</li>
 *   <li>{@code {"prompt": …, "completion": …}}: BOS + prompt + completion + EOS, prompt and completion tokenized
 *       separately; loss on the completion and the EOS only;</li>
 *   <li>Alpaca {@code {"instruction": …, "input": …, "output": …}}: the Stanford Alpaca prompt template (see
 *       {@link #alpacaPrompt}) as the prompt and {@code output} as the completion.</li>
 * </ul>
 * Blank lines are skipped. Anything else is an error naming the file, the line and what was expected.
 */
public final class JsonlDataset {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Alpaca's template for samples with an input. */
    public static final String ALPACA_WITH_INPUT = "Below is an instruction that describes a task, paired with an "
            + "input that provides further context. Write a response that appropriately completes the request.\n\n"
            + "### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";
    /** Alpaca's template for samples without an input. */
    public static final String ALPACA_NO_INPUT = "Below is an instruction that describes a task. Write a response "
            + "that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Response:\n";

    private JsonlDataset() {
    }

    /** Encodes every sample of {@code file}; fails on a malformed line or an empty dataset. */
    public static List<Example> read(Path file, TokenEncoder tok) {
        List<Example> out = new ArrayList<>();
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            int no = 0;
            while ((line = r.readLine()) != null) {
                no++;
                if (line.isBlank()) {
                    continue;
                }
                out.add(encode(file, no, line, tok));
            }
        } catch (NoSuchFileException e) {
            throw InputFormatException.file(file, "dataset file not found");
        } catch (java.nio.charset.MalformedInputException e) {
            throw InputFormatException.file(file, "is not valid UTF-8");
        } catch (IOException e) {
            throw InputFormatException.file(file, "cannot be read: " + e.getMessage());
        }
        if (out.isEmpty()) {
            throw InputFormatException.file(file, "the dataset is empty (expected one JSON object per line)");
        }
        return out;
    }

    static Example encode(Path file, int no, String line, TokenEncoder tok) {
        JsonNode n;
        try (JsonParser p = JSON.createParser(line)) {
            n = JSON.readTree(p);
            if (p.nextToken() != null) { // readTree alone would drop a second sample on the line silently
                throw new InputFormatException(file, "line " + no, "a second JSON value starts at column "
                        + p.currentTokenLocation().getColumnNr() + "; expected one JSON object per line");
            }
        } catch (JsonProcessingException e) {
            throw new InputFormatException(file, "line " + no, "malformed JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UncheckedIOException(e); // parsing a String does no I/O
        }
        if (n == null || !n.isObject()) {
            throw new InputFormatException(file, "line " + no, "expected a JSON object, got " + abbreviate(line));
        }
        if (n.has("text")) {
            int[] ids = tok.encodeDefault(text(file, no, n, "text"));
            return new Example(no, ids, ids.clone());
        }
        if (n.has("prompt") || n.has("completion")) {
            return promptCompletion(no, text(file, no, n, "prompt"), text(file, no, n, "completion"), tok);
        }
        if (n.has("instruction") || n.has("output")) {
            String instruction = text(file, no, n, "instruction");
            String input = n.has("input") ? text(file, no, n, "input") : "";
            return promptCompletion(no, alpacaPrompt(instruction, input), text(file, no, n, "output"), tok);
        }
        throw new InputFormatException(file, "line " + no, "expected a \"text\" field, \"prompt\" and "
                + "\"completion\", or Alpaca's \"instruction\"/\"input\"/\"output\"; found keys "
                + iterableToList(n.fieldNames()));
    }

    /** The Alpaca prompt for an instruction and an optional input. */
    public static String alpacaPrompt(String instruction, String input) {
        return input.isEmpty() ? ALPACA_NO_INPUT.formatted(instruction)
                : ALPACA_WITH_INPUT.formatted(instruction, input);
    }

    private static Example promptCompletion(int no, String prompt, String completion, TokenEncoder tok) {
        int[] p = tok.encode(prompt);
        int[] c = tok.encode(completion);
        int bos = tok.bosId() >= 0 ? 1 : 0;
        int eos = tok.eosId() >= 0 ? 1 : 0;
        int[] ids = new int[bos + p.length + c.length + eos];
        int[] labels = new int[ids.length];
        Arrays.fill(labels, Batch.IGNORE);
        int at = 0;
        if (bos == 1) {
            ids[at++] = tok.bosId();
        }
        System.arraycopy(p, 0, ids, at, p.length);
        at += p.length;
        System.arraycopy(c, 0, ids, at, c.length);
        System.arraycopy(c, 0, labels, at, c.length);
        at += c.length;
        if (eos == 1) {
            ids[at] = tok.eosId();
            labels[at] = tok.eosId();
        }
        return new Example(no, ids, labels);
    }

    private static String text(Path file, int no, JsonNode n, String field) {
        JsonNode v = n.get(field);
        if (v == null) {
            throw new InputFormatException(file, "line " + no, "missing field \"" + field + "\"");
        }
        if (!v.isTextual()) {
            throw new InputFormatException(file, "line " + no, "field \"" + field + "\" must be a string, got "
                    + abbreviate(v.toString()));
        }
        return v.asText();
    }

    private static List<String> iterableToList(java.util.Iterator<String> it) {
        List<String> l = new ArrayList<>();
        it.forEachRemaining(l::add);
        return l;
    }

    private static String abbreviate(String s) {
        return s.length() <= 60 ? s : s.substring(0, 57) + "...";
    }
}
