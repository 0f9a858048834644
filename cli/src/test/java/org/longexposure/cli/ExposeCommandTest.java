package org.longexposure.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import static org.longexposure.cli.CliRun.DATA;
import static org.longexposure.cli.CliRun.MODEL;
import static org.longexposure.cli.CliRun.ROOT;
import static org.longexposure.cli.CliRun.VALID;
import static org.longexposure.cli.CliRun.run;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code longexposure expose} on the bundled model and validation sample: the report's keys and ranges, the PNGs,
 * and bad input (one line, exit status 2).
 */
class ExposeCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void writesReportAndPictures(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("exp");
        long t0 = System.nanoTime();
        CliRun.Result r = run("expose", "--model", MODEL.toString(), "--data", VALID.toString(), "--out", out.toString(),
                "--batch-size", "2", "--seq-len", "64", "--batches", "2", "--neuron-block", "100",
                "--attn-block", "16", "--threads", "2");
        assertThat((System.nanoTime() - t0) / 1e9).isLessThan(20);
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("per-token").contains("union");
        JsonNode rep = JSON.readTree(out.resolve("exposure.json").toFile());
        assertThat(rep.get("config").get("neuron_block").asInt()).isEqualTo(100);
        assertThat(rep.get("config").get("attn_block").asInt()).isEqualTo(16);
        assertThat(rep.get("micro_batches").asInt()).isEqualTo(2);
        assertThat(rep.get("real_tokens").asLong()).isPositive();
        int longest = rep.get("longest_batch_seq_len").asInt();
        assertThat(longest).isBetween(2, 64);
        JsonNode layers = rep.get("layers");
        assertThat(layers).hasSize(4);
        for (JsonNode l : layers) {
            double token = l.get("token_sparsity").asDouble();
            assertThat(token).isBetween(0.0, 1.0);
            for (JsonNode u : l.get("union_sparsity_per_batch")) {
                assertThat(u.asDouble()).isBetween(0.0, 1.0);
            }
            assertThat(l.get("union_sparsity_per_batch")).hasSize(2);
            assertThat(l.get("block_sparsity_near_zero").asDouble())
                    .isGreaterThanOrEqualTo(l.get("block_sparsity_exact").asDouble());
            assertThat(l.get("heads")).hasSize(4);
            for (JsonNode h : l.get("heads")) {
                assertThat(h.get("tile_density").asDouble()).isBetween(0.0, 1.0);
                assertThat(h.get("tile_mass")).hasSize((longest + 15) / 16);
            }
        }
        for (String png : new String[] {"sparsity.png", "attention-layer0.png", "attention-layer3.png"}) {
            assertThat(Files.readAllBytes(out.resolve(png))).as(png).startsWith(0x89, 'P', 'N', 'G');
        }
    }

    @Test
    void noPlotWritesTheReportOnly(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("exp");
        CliRun.Result r = run("expose", "--model", MODEL.toString(), "--data", VALID.toString(), "--out", out.toString(),
                "--batch-size", "3", "--seq-len", "40", "--batches", "1", "--attn-block", "16", "--no-plot",
                "--threads", "2");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("per-token").doesNotContain(".png");
        assertThat(JSON.readTree(out.resolve("exposure.json").toFile()).get("layers")).hasSize(4);
        try (var files = Files.list(out)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("exposure.json");
        }
    }

    @Test
    void badInputIsAUserError(@TempDir Path dir) throws Exception {
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(bad, "{\"text\": \"ok\"}\nnot json\n");
        CliRun.Result r = run("expose", "--model", MODEL.toString(), "--data", bad.toString(), "--out",
                dir.resolve("o").toString(), "--threads", "2");
        assertThat(r.status()).isEqualTo(Main.USER_ERROR);
        assertThat(r.err()).contains("bad.jsonl").doesNotContain("Exception");
        CliRun.Result z = run("expose", "--model", MODEL.toString(), "--data", VALID.toString(), "--out",
                dir.resolve("o").toString(), "--neuron-block", "0");
        assertThat(z.status()).isEqualTo(Main.USER_ERROR);
        assertThat(z.err()).contains("--neuron-block");
        assertThat(dir.resolve("o")).doesNotExist();
    }
}
