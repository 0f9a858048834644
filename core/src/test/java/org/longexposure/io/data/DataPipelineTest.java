package org.longexposure.io.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.InputFormatException;

/**
 * JSONL shapes and their label masks, truncation, packing, padding, deterministic shuffling and resumable cursors,
 * with a stand-in tokenizer (one id per character, BOS = EOS = 2) so the expectations can be written by hand.
 */
class DataPipelineTest {
    /** Characters become ids 10 + code point; the default encoding prepends BOS like OPT. */
    static final TokenEncoder CHARS = new TokenEncoder() {
        @Override
        public int[] encode(String text) {
            return text.codePoints().map(c -> 10 + c).toArray();
        }

        @Override
        public int[] encodeDefault(String text) {
            int[] e = encode(text);
            int[] out = new int[e.length + 1];
            out[0] = 2;
            System.arraycopy(e, 0, out, 1, e.length);
            return out;
        }

        @Override
        public int bosId() {
            return 2;
        }

        @Override
        public int eosId() {
            return 2;
        }

        @Override
        public int padId() {
            return 1;
        }
    };

    private static final int I = Batch.IGNORE;

    private static Path write(Path dir, String... lines) throws Exception {
        Path f = dir.resolve("d.jsonl");
        Files.write(f, List.of(lines));
        return f;
    }

    @Test
    void threeShapesAndTheirLabels(@TempDir Path dir) throws Exception {
        List<Example> ex = JsonlDataset.read(write(dir, "{\"text\": \"ab\"}", "",
                "{\"prompt\": \"p\", \"completion\": \"cd\"}",
                "{\"instruction\": \"i\", \"input\": \"\", \"output\": \"o\"}"), CHARS);
        assertThat(ex).hasSize(3);
        assertThat(ex.get(0).ids()).containsExactly(2, 10 + 'a', 10 + 'b');
        assertThat(ex.get(0).labels()).containsExactly(2, 10 + 'a', 10 + 'b');
        assertThat(ex.get(1).line()).isEqualTo(3);
        assertThat(ex.get(1).ids()).containsExactly(2, 10 + 'p', 10 + 'c', 10 + 'd', 2);
        assertThat(ex.get(1).labels()).containsExactly(I, I, 10 + 'c', 10 + 'd', 2);
        String prompt = JsonlDataset.alpacaPrompt("i", "");
        assertThat(prompt).startsWith("Below is an instruction").endsWith("### Response:\n")
                .doesNotContain("### Input:");
        assertThat(ex.get(2).ids()).hasSize(1 + prompt.length() + 1 + 1);
        assertThat(ex.get(2).labels()[prompt.length()]).isEqualTo(I);
        assertThat(ex.get(2).labels()[prompt.length() + 1]).isEqualTo(10 + 'o');
        assertThat(JsonlDataset.alpacaPrompt("i", "x")).contains("### Input:\nx\n\n### Response:\n");
    }

    @Test
    void badLinesNameFileLineAndExpectation(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "{\"text\": \"a\"}", "{oops"), CHARS))
                .isInstanceOf(InputFormatException.class).hasMessageContaining("d.jsonl")
                .hasMessageContaining("line 2").hasMessageContaining("malformed JSON");
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "{\"prompt\": \"a\"}"), CHARS))
                .hasMessageContaining("line 1").hasMessageContaining("missing field \"completion\"");
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "{\"text\": 5}"), CHARS))
                .hasMessageContaining("\"text\" must be a string");
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "{\"question\": \"a\"}"), CHARS))
                .hasMessageContaining("expected a \"text\" field").hasMessageContaining("question");
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "[1, 2]"), CHARS))
                .hasMessageContaining("expected a JSON object");
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "", "  "), CHARS))
                .hasMessageContaining("the dataset is empty");
        assertThatThrownBy(() -> JsonlDataset.read(dir.resolve("missing.jsonl"), CHARS))
                .isInstanceOf(InputFormatException.class).hasMessageContaining("not found");
    }

    /** Found by JsonlDatasetFuzzTest: two samples joined on one line lost the second one silently. */
    @Test
    void twoValuesOnOneLine(@TempDir Path dir) throws Exception {
        Path file = write(dir, "{\"text\": \"a\"}", "{\"text\": \"b\"}{\"text\": \"c\"}");
        assertThatThrownBy(() -> JsonlDataset.read(file, CHARS)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("d.jsonl: line 2: a second JSON value starts at column 14; expected one JSON "
                        + "object per line");
        assertThatThrownBy(() -> JsonlDataset.read(write(dir, "{\"text\": \"a\"} x"), CHARS))
                .isInstanceOf(InputFormatException.class).hasMessageContaining("line 1: malformed JSON");
        assertThat(JsonlDataset.read(write(dir, "{\"text\": \"a\"}  \t"), CHARS)).hasSize(1);
    }

    @Test
    void truncationPackingAndPadding() {
        List<Example> ex = List.of(new Example(1, new int[]{5, 6, 7, 8, 9}, new int[]{I, 6, 7, 8, 9}),
                new Example(2, new int[]{11, 12}, new int[]{11, 12}));
        Batcher.Rows t = Batcher.truncate(ex, 4);
        assertThat(t.truncated()).isEqualTo(1);
        assertThat(t.rows().get(0).ids()).containsExactly(5, 6, 7, 8);
        Batch b = Batcher.batch(t.rows(), 4, 1);
        assertThat(b.inputIds()).containsExactly(5, 6, 7, 8, 11, 12, 1, 1);
        assertThat(b.attentionMask()).containsExactly(1, 1, 1, 1, 1, 1, 0, 0);
        assertThat(b.labels()).containsExactly(I, 6, 7, 8, 11, 12, I, I);
        assertThat(b.predictedTokens()).isEqualTo(3 + 1);

        Batcher.Rows p = Batcher.pack(ex, 3);
        assertThat(p.rows()).hasSize(3);
        assertThat(p.rows().get(0).ids()).containsExactly(5, 6, 7);
        assertThat(p.rows().get(1).ids()).containsExactly(8, 9, 11);
        assertThat(p.rows().get(1).labels()).containsExactly(8, 9, 11);
        assertThat(p.rows().get(2).ids()).containsExactly(12);

        // batches are padded to their longest row, rounded up to a multiple of 8, never beyond the maximum
        List<Example> shortRows = List.of(new Example(1, new int[]{5, 6, 7}, new int[]{5, 6, 7}));
        assertThat(Batcher.batch(shortRows, 64, 1).seqLen()).isEqualTo(8);
        assertThat(Batcher.batch(shortRows, 5, 1).seqLen()).isEqualTo(5);
        List<Example> nine = List.of(new Example(1, new int[9], new int[9]));
        assertThat(Batcher.batch(nine, 64, 1).seqLen()).isEqualTo(16);
    }

    @Test
    void shufflingIsDeterministicPerEpochAndResumable() {
        List<Example> rows = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            rows.add(new Example(i + 1, new int[]{100 + i}, new int[]{100 + i}));
        }
        DataLoader a = new DataLoader(rows, 3, 2, 1, true, 42);
        DataLoader b = new DataLoader(rows, 3, 2, 1, true, 42);
        List<int[]> seqA = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            seqA.add(a.next().inputIds());
        }
        for (int i = 0; i < 9; i++) {
            assertThat(b.next().inputIds()).isEqualTo(seqA.get(i));
        }
        // an epoch visits every row once; the last batch of 10 rows by 3 is padded with an empty row
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < 4; i++) {
            int[] ids = seqA.get(i);
            for (int j = 0; j < ids.length; j += 2) {
                if (ids[j] != 1) {
                    assertThat(seen.add(ids[j])).isTrue();
                }
            }
        }
        assertThat(seen).hasSize(10);
        assertThat(seqA.get(4)).isNotEqualTo(seqA.get(0)); // epoch 2 has another order
        DataLoader c = new DataLoader(rows, 3, 2, 1, true, 42);
        for (int i = 0; i < 5; i++) {
            c.next();
        }
        DataLoader d = new DataLoader(rows, 3, 2, 1, true, 42);
        d.seek(c.cursor());
        for (int i = 0; i < 4; i++) {
            assertThat(d.next().inputIds()).isEqualTo(c.next().inputIds());
        }
        DataLoader plain = new DataLoader(rows, 3, 2, 1, false, 42);
        assertThat(plain.next().inputIds()).containsExactly(100, 1, 101, 1, 102, 1);
    }
}
