package org.longexposure.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.longexposure.cli.CliRun.DATA;
import static org.longexposure.cli.CliRun.MODEL;
import static org.longexposure.cli.CliRun.ROOT;
import static org.longexposure.cli.CliRun.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.model.MlpPermutation;

/**
 * {@code finetune --sparsity} and {@code permute-mlp} on the bundled model: flag validation (one line, status 2,
 * nothing written), an auto run with a refresh writing per-layer recall and realised density to metrics.jsonl, a
 * killed auto run resumed from its checkpoint to the same metrics, adapter and predictors (other sparsity options
 * refused by name),
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
    void aKilledSparseRunResumesToTheSameResult(@TempDir Path dir) throws Exception {
        String[] sparse = {"--sparsity", "auto", "--predictor-refresh", "2", "--predictor-fit-batches", "1",
            "--save-every", "2"};
        Path straight = dir.resolve("straight");
        CliRun.Result s = run(finetune(straight, 4, sparse));
        assertThat(s.status()).as(s.err()).isZero();
        Path killed = dir.resolve("killed");
        assertThat(run(finetune(killed, 4, sparse)).status()).isZero();
        // a kill during step 4: the step-2 checkpoint (before the step-3 refresh), metrics of steps 1..3
        deleteTree(killed.resolve("checkpoints/step-4"));
        deleteTree(killed.resolve("adapter"));
        deleteTree(killed.resolve("predictors"));
        Files.write(killed.resolve("metrics.jsonl"), Files.readAllLines(killed.resolve("metrics.jsonl")).subList(0, 3));
        assertThat(killed.resolve("checkpoints/step-2/sparsity/online.json")).exists();

        CliRun.Result resumed = run(finetune(killed, 4, sparse));
        assertThat(resumed.status()).as(resumed.err()).isZero();
        assertThat(resumed.out()).contains("step 2 of 4").contains("calibration state from");
        assertThat(Files.readAllLines(killed.resolve("metrics.jsonl")).stream().map(
                SparseFinetuneCommandTest::withoutTiming)).containsExactlyElementsOf(Files.readAllLines(
                straight.resolve("metrics.jsonl")).stream().map(SparseFinetuneCommandTest::withoutTiming).toList());
        JsonNode step3 = JSON.readTree(Files.readAllLines(killed.resolve("metrics.jsonl")).get(2)).get("sparsity");
        assertThat(step3.get("dense_step").asBoolean()).as("step 3 refreshes").isTrue();
        assertThat(Files.readAllBytes(killed.resolve("adapter/adapter_model.safetensors")))
                .isEqualTo(Files.readAllBytes(straight.resolve("adapter/adapter_model.safetensors")));
        assertThat(Files.readString(killed.resolve("predictors/predictors.json")))
                .isEqualTo(Files.readString(straight.resolve("predictors/predictors.json")));

        // the saved state belongs to these options: other ones are refused, naming the option and both values
        CliRun.Result off = run(finetune(killed, 4, "--save-every", "2"));
        assertThat(off.status()).isEqualTo(Main.USER_ERROR);
        assertThat(off.err()).contains("cannot resume").contains("'sparsity' was \"auto\" there, absent now");
        CliRun.Result mass = run(finetune(killed, 4, "--sparsity", "auto", "--predictor-refresh", "2",
                "--predictor-fit-batches", "1", "--save-every", "2", "--attn-mass", "0.9"));
        assertThat(mass.status()).isEqualTo(Main.USER_ERROR);
        assertThat(mass.err()).contains("'attn_mass' was 0.95 there, 0.9 now");
    }

    private static String withoutTiming(String line) {
        try {
            ObjectNode n = (ObjectNode) JSON.readTree(line);
            n.remove(List.of("tokens_per_s", "step_ms"));
            if (n.get("sparsity") instanceof ObjectNode sp) {
                sp.remove("refresh_ms");
            }
            return n.toString();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static void deleteTree(Path p) throws Exception {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
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
