package org.longexposure.io.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.core.JsonPointer;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.FuzzHarness;
import org.longexposure.io.JsonMutator;

/**
 * Seeded mutation fuzzing of {@link JsonlDataset#read}: files of a few samples in the three shapes (text,
 * prompt/completion, Alpaca with and without input) and blank lines are damaged per line at the tree level (fields
 * replaced by other types, deleted, renamed, added), at the text level over the whole file (so that newlines are
 * deleted, duplicated or inserted too), by line edits (lines joined, duplicated, dropped, CRLF) and at the byte level.
 * Reading must either throw {@code InputFormatException} naming the file or return one well-formed example per
 * non-blank line, each line being exactly one JSON object (checked with a strict parser of our own).
 */
class JsonlDatasetFuzzTest {
    private static final int CASES = 5000;
    private static final List<String> LINES = List.of("{\"text\": \"Hello world. The quick brown fox.\"}",
            "{\"prompt\": \"Q: 2+2?\\nA:\", \"completion\": \" 4\"}",
            "{\"instruction\": \"Add the numbers.\", \"input\": \"2 2\", \"output\": \"4\"}",
            "{\"instruction\": \"Say hi.\", \"output\": \"hi\"}", "{\"text\": \"é 😀 \\u0000 tab\\there\"}",
            "{\"prompt\": \"\", \"completion\": \"x\", \"meta\": {\"id\": 7}}", "");
    /** Jackson's defaults plus a failure on anything after the object: one sample per line. */
    private static final ObjectReader STRICT = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).build().reader();

    @TempDir
    Path dir;

    @Test
    void damagedDatasetsFailOnlyWithInputFormatException() {
        JsonNodeFactory f = JsonNodeFactory.instance;
        List<JsonNode> domain = List.of(f.textNode("Hello"), f.textNode(""), f.textNode("\n"),
                f.textNode("x".repeat(2000)));
        JsonMutator mutator = new JsonMutator(domain, List.of("text", "prompt", "completion", "instruction",
                "input", "output"));
        Path file = dir.resolve("data.jsonl");
        SplittableRandom rnd = new SplittableRandom(0xDA7AL);
        TokenEncoder[] encoders = {CharEncoder.WITH_BOS_EOS, CharEncoder.WITHOUT};
        int[] examples = new int[1];

        FuzzHarness.Tally tally = FuzzHarness.run(CASES, 500, Duration.ofSeconds(60), file.toString(), (i, what) -> {
            List<String> lines = new ArrayList<>();
            for (int n = 1 + rnd.nextInt(5); n > 0; n--) {
                lines.add(LINES.get(rnd.nextInt(LINES.size())));
            }
            int mode = rnd.nextInt(10);
            if (mode < 4) { // tree edit of one or two lines
                for (int k = rnd.nextInt(2); k >= 0; k--) {
                    int at = rnd.nextInt(lines.size());
                    JsonNode root = JsonMutator.readOrNull(lines.get(at));
                    if (root != null && root.isContainerNode()) {
                        what.append("line ").append(at + 1).append(": ")
                                .append(mutator.mutateTree(root, JsonPointer.empty(), rnd)).append("; ");
                        lines.set(at, JsonMutator.write(root));
                    }
                }
            } else if (mode < 6) { // line edits
                int at = rnd.nextInt(lines.size());
                switch (rnd.nextInt(4)) {
                    case 0 -> {
                        if (at + 1 < lines.size()) {
                            lines.set(at, lines.get(at) + lines.remove(at + 1));
                            what.append("joined lines ").append(at + 1).append(" and ").append(at + 2).append("; ");
                        }
                    }
                    case 1 -> lines.add(at, lines.get(at));
                    case 2 -> lines.remove(at);
                    default -> lines.replaceAll(l -> l + "\r");
                }
            }
            String text = String.join("\n", lines) + (rnd.nextBoolean() ? "\n" : "");
            if (mode >= 6 && mode < 9) {
                JsonMutator.Mutant m = JsonMutator.mutateText(text, rnd);
                text = m.text();
                what.append(m.what()).append("; ");
            }
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            if (mode == 9) {
                bytes = JsonMutator.mutateBytes(bytes, rnd);
                what.append("bytes mutated; ");
            }
            Files.write(file, bytes);
            what.append(JsonMutator.shorten(text));
            TokenEncoder tok = encoders[rnd.nextInt(encoders.length)];
            List<Example> out = JsonlDataset.read(file, tok);
            check(out, new String(bytes, StandardCharsets.UTF_8), tok);
            examples[0] += out.size();
        });
        assertThat(tally.total()).isEqualTo(CASES);
        assertThat(tally.accepted()).isGreaterThan(CASES / 5);
        assertThat(tally.rejected()).isGreaterThan(CASES / 5);
        assertThat(examples[0]).isGreaterThan(CASES / 2);
    }

    /** One example per non-blank line, each line one JSON object, labels either ignored or equal to the ids. */
    private static void check(List<Example> out, String text, TokenEncoder tok) {
        List<String> lines = text.lines().toList();
        List<Integer> sampleLines = new ArrayList<>();
        for (int n = 0; n < lines.size(); n++) {
            String line = lines.get(n);
            if (line.isBlank()) {
                continue;
            }
            sampleLines.add(n + 1);
            try {
                if (!STRICT.readTree(line).isObject()) {
                    fail("accepted line " + (n + 1) + ", which is not an object: " + JsonMutator.shorten(line));
                }
            } catch (com.fasterxml.jackson.core.JacksonException e) {
                fail("accepted line " + (n + 1) + ", which is not one JSON value: " + JsonMutator.shorten(line));
            }
        }
        assertThat(out).extracting(Example::line).containsExactlyElementsOf(sampleLines);
        for (Example e : out) {
            for (int t = 0; t < e.ids().length; t++) {
                if (e.labels()[t] != Batch.IGNORE && e.labels()[t] != e.ids()[t]) {
                    fail("line " + e.line() + ": label " + e.labels()[t] + " at " + t + " is neither ignored nor "
                            + "the id " + e.ids()[t]);
                }
            }
            if (tok.eosId() >= 0 && e.labels()[e.labels().length - 1] == Batch.IGNORE
                    && e.labels()[0] == Batch.IGNORE) {
                fail("line " + e.line() + ": a prompt/completion sample must train on its EOS");
            }
        }
    }

    /** One id per code point (10 + code point); optionally BOS and EOS 2, as OPT. */
    private record CharEncoder(int bos, int eos) implements TokenEncoder {
        static final CharEncoder WITH_BOS_EOS = new CharEncoder(2, 2);
        static final CharEncoder WITHOUT = new CharEncoder(-1, -1);

        @Override
        public int[] encode(String text) {
            return text.codePoints().map(c -> 10 + c).toArray();
        }

        @Override
        public int[] encodeDefault(String text) {
            int[] e = encode(text);
            if (bos < 0) {
                return e.length == 0 ? new int[] {0} : e;
            }
            int[] out = new int[e.length + 1];
            out[0] = bos;
            System.arraycopy(e, 0, out, 1, e.length);
            return out;
        }

        @Override
        public int bosId() {
            return bos;
        }

        @Override
        public int eosId() {
            return eos;
        }

        @Override
        public int padId() {
            return eos >= 0 ? eos : 0;
        }
    }
}
