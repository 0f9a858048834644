package org.longexposure.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.longexposure.cli.CliRun.DATA;
import static org.longexposure.cli.CliRun.MODEL;
import static org.longexposure.cli.CliRun.ROOT;
import static org.longexposure.cli.CliRun.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.model.MlpPermutation;

/**
 * {@code finetune --sparsity} and {@code permute-mlp} on the bundled model: flag validation (one line, status 2,
 * nothing written), an auto run with a refresh writing per-layer recall and realised density to metrics.jsonl,
 * and a permutation written by permute-mlp applied at load time (the first step's loss equals the dense run's to
 * float rounding; fc1/fc2 adapters are refused with it).
 */
class SparseFinetuneCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static String[] finetune(Path out, int steps, String... extra) {
        List<String> a = new ArrayList<>(List.of("finetune", "--model", MODEL.toString(), "--data", DATA.toString(),
                "--out", out.toString(), "--steps", Integer.toString(steps), "--batch-size", "2", "--seq-len", "70",
                "--pack", "--lr", "1e-3", "--threads", "2"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void badSparsityFlagsAreOneLineErrors(@TempDir Path dir) throws Exception {
        Path perm = dir.resolve("perm.safetensors");
        MlpPermutation.identity(4, 1024).save(perm);
        List<Object[]> cases = List.of(
                new Object[]{finetune(dir.resolve("o1"), 1, "--sparsity", "sometimes"), "'sometimes' is not one of"},
                new Object[]{finetune(dir.resolve("o2"), 1, "--predictor-refresh", "5"), "need --sparsity on or auto"},
                new Object[]{finetune(dir.resolve("o3"), 1, "--sparsity", "on", "--predictor-refresh", "-1"),
                    "--predictor-refresh must be >= 0"},
                new Object[]{finetune(dir.resolve("o4"), 1, "--sparsity", "auto", "--dense-above", "1.5"),
                    "--dense-above"},
                new Object[]{finetune(dir.resolve("o5"), 1, "--sparsity", "on", "--predictors",
                    dir.resolve("none").toString()), "no predictors.json"},
                new Object[]{finetune(dir.resolve("o6"), 1, "--permutation", perm.toString(), "--target-modules",
                    "q_proj,fc1"), "fc1"},
                new Object[]{finetune(dir.resolve("o7"), 1, "--permutation", dir.resolve("nope").toString()),
                    "nope"});
        for (Object[] c : cases) {
            CliRun.Result r = run((String[]) c[0]);
            assertThat(r.status()).as(String.join(" ", (String[]) c[0]) + "\n" + r.err())
                    .isEqualTo(Main.USER_ERROR);
            assertThat(r.err()).contains((String) c[1]).startsWith("error: ").doesNotContain("\tat ");
        }
        for (String o : List.of("o1", "o2", "o3", "o4", "o5", "o6", "o7")) {
            assertThat(dir.resolve(o).resolve("metrics.jsonl")).doesNotExist();
        }
    }

    @Test
    void autoWithRefreshLogsRecallAndDensityPerLayer(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("auto");
        CliRun.Result r = run(finetune(out, 3, "--sparsity", "auto", "--predictor-refresh", "2",
                "--predictor-fit-batches", "1", "--valid", CliRun.VALID.toString()));
        assertThat(r.status()).as(r.err()).isZero();
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertThat(lines).hasSize(3);
        for (int i = 0; i < 3; i++) {
            JsonNode s = JSON.readTree(lines.get(i)).get("sparsity");
            boolean refresh = i != 1;   // steps 1 and 3
            assertThat(s.get("dense_step").asBoolean()).isEqualTo(refresh);
            assertThat(s.get("attn_density")).hasSize(4);
            for (JsonNode d : s.get("attn_density")) {
                assertThat(d.asDouble()).isBetween(0.0, 1.0);
            }
            if (refresh) {
                assertThat(s.get("attn_recall_stale")).hasSize(4);
                assertThat(s.get("mlp_recall")).hasSize(4);
                for (int l = 0; l < 4; l++) {
                    boolean dense = s.get("attn_dense").get(l).asBoolean();
                    assertThat(dense).isEqualTo(s.get("attn_predicted_density").get(l).asDouble() > 0.85);
                }
            }
        }
        JsonNode v = JSON.readTree(out.resolve("validation.json").toFile());
        assertThat(v.get("valid_loss_sparse").asDouble()).isFinite();
        assertThat(v.get("valid_loss").asDouble()).isFinite();
        // the refreshed predictors are saved; eval runs sparse with them and reports what it computed
        Path few = dir.resolve("few.jsonl");
        Files.write(few, Files.readAllLines(CliRun.VALID).subList(0, 12));
        CliRun.Result ev = run("eval", "--model", MODEL.toString(), "--adapter", out.resolve("adapter").toString(),
                "--data", few.toString(), "--pack", "--seq-len", "70", "--batch-size", "2", "--predictors",
                out.resolve("predictors").toString(), "--threads", "2");
        assertThat(ev.status()).as(ev.err()).isZero();
        JsonNode e = JSON.readTree(ev.out().strip());
        assertThat(e.get("loss").asDouble()).isFinite();
        assertThat(e.get("attn_density")).hasSize(4);
        for (JsonNode d : e.get("attn_density")) {
            assertThat(d.asDouble()).isGreaterThan(0.0).isLessThanOrEqualTo(1.0);
        }
    }

    @Test
    void aPermutationFromPermuteMlpKeepsTheLoss(@TempDir Path dir) throws Exception {
        Path p = dir.resolve("perm");
        CliRun.Result pr = run("permute-mlp", "--model", MODEL.toString(), "--data",
                ROOT.resolve("data/gutenberg-sample/valid-text.jsonl").toString(), "--out", p.toString(),
                "--batch-size", "2", "--seq-len", "64", "--batches", "3", "--held-out", "1", "--threads", "2");
        assertThat(pr.status()).as(pr.err()).isZero();
        JsonNode rep = JSON.readTree(p.resolve("permutation-report.json").toFile());
        assertThat(rep.get("layers")).hasSize(4);
        for (JsonNode cell : rep.get("layers").get(0).get("union_density")) {
            assertThat(cell.get("identity").asDouble()).isBetween(0.0, 1.0);
        }
        assertThat(run(finetune(dir.resolve("plain"), 1)).status()).isZero();
        CliRun.Result r = run(finetune(dir.resolve("perm-run"), 1, "--permutation",
                p.resolve(MlpPermutation.FILE).toString()));
        assertThat(r.status()).as(r.err()).isZero();
        double plain = JSON.readTree(Files.readAllLines(dir.resolve("plain/metrics.jsonl")).getFirst())
                .get("loss").asDouble();
        double permuted = JSON.readTree(Files.readAllLines(dir.resolve("perm-run/metrics.jsonl")).getFirst())
                .get("loss").asDouble();
        assertThat(permuted).isCloseTo(plain, org.assertj.core.data.Offset.offset(1e-5 * plain));
    }
}
