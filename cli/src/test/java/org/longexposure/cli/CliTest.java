package org.longexposure.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import static org.longexposure.cli.CliRun.DATA;
import static org.longexposure.cli.CliRun.MODEL;
import static org.longexposure.cli.CliRun.ROOT;
import static org.longexposure.cli.CliRun.VALID;
import static org.longexposure.cli.CliRun.run;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line end to end on the bundled model and data: outputs of {@code finetune}, resume after a killed
 * run, {@code eval}, and bad input (one line, exit status 2, no stack trace, no partial output).
 */
class CliTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static String[] finetune(Path out, int steps, String... extra) {
        return finetune(MODEL, DATA, out, steps, extra);
    }

    private static String[] finetune(Path model, Path data, Path out, int steps, String... extra) {
        List<String> a = new ArrayList<>(List.of("finetune", "--model", model.toString(), "--data", data.toString(),
                "--out", out.toString(), "--steps", Integer.toString(steps), "--batch-size", "2", "--seq-len", "40",
                "--lr", "1e-3", "--lora-dropout", "0.1", "--threads", "2"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void finetuneWritesMetricsAdapterCheckpointsAndPlot(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        CliRun.Result r = run(finetune(out, 3, "--valid", VALID.toString(), "--save-every", "2"));
        assertThat(r.status()).as(r.err()).isZero();
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertThat(lines).hasSize(3);
        for (int i = 0; i < 3; i++) {
            JsonNode n = JSON.readTree(lines.get(i));
            assertThat(n.get("step").asInt()).isEqualTo(i + 1);
            assertThat(n.get("loss").asDouble()).isFinite().isPositive();
            assertThat(n.get("lr").asDouble()).isEqualTo(1e-3);
            assertThat(n.get("grad_norm").asDouble()).isPositive();
            assertThat(n.get("tokens_per_s").asDouble()).isPositive();
        }
        assertThat(out.resolve("adapter/adapter_model.safetensors")).isRegularFile();
        assertThat(JSON.readTree(out.resolve("adapter/adapter_config.json").toFile()).get("r").asInt()).isEqualTo(8);
        assertThat(out.resolve("checkpoints/step-2/optimizer.safetensors")).isRegularFile();
        assertThat(out.resolve("checkpoints/step-3/trainer_state.json")).isRegularFile();
        byte[] png = Files.readAllBytes(out.resolve("loss.png"));
        assertThat(png).startsWith(0x89, 'P', 'N', 'G');
        assertThat(JSON.readTree(out.resolve("validation.json").toFile()).get("valid_loss").asDouble()).isFinite();

        CliRun.Result ev = run("eval", "--model", MODEL.toString(), "--adapter", out.resolve("adapter").toString(),
                "--data", VALID.toString(), "--seq-len", "40", "--batch-size", "4");
        assertThat(ev.status()).as(ev.err()).isZero();
        JsonNode e = JSON.readTree(ev.out().strip());
        assertThat(e.get("tokens").asLong()).isPositive();
        assertThat(e.get("perplexity").asDouble()).isCloseTo(Math.exp(e.get("loss").asDouble()),
                org.assertj.core.data.Offset.offset(1e-6 * e.get("perplexity").asDouble()));
    }

    @Test
    void exportAndMergeGiveTheSameModel(@TempDir Path dir) throws Exception {
        Path run = dir.resolve("run");
        assertThat(run(finetune(run, 2, "--target-modules", "q_proj,v_proj,fc1")).status()).isZero();
        CliRun.Result ex = run("export", "--checkpoint", run.toString(), "--out", dir.resolve("exported").toString());
        assertThat(ex.status()).as(ex.err()).isZero();
        assertThat(Files.readAllBytes(dir.resolve("exported/adapter_model.safetensors")))
                .isEqualTo(Files.readAllBytes(run.resolve("checkpoints/step-2/adapter_model.safetensors")));

        Path merged = dir.resolve("merged");
        CliRun.Result mg = run("merge", "--model", MODEL.toString(), "--adapter", run.resolve("adapter").toString(),
                "--out", merged.toString());
        assertThat(mg.status()).as(mg.err()).isZero();
        assertThat(mg.out()).contains("merged 12 LoRA modules");
        assertThat(merged.resolve("vocab.json")).isRegularFile();
        double withAdapter = evalLoss("--model", MODEL.toString(), "--adapter", run.resolve("adapter").toString());
        double mergedLoss = evalLoss("--model", merged.toString());
        double base = evalLoss("--model", MODEL.toString());
        // F16 weights: the merged model differs from base + adapter only by rounding W' once to F16
        assertThat(Math.abs(mergedLoss - withAdapter)).isLessThan(2e-3 * withAdapter);
        assertThat(Math.abs(base - withAdapter)).isGreaterThan(10 * Math.abs(mergedLoss - withAdapter));
        assertThat(run("merge", "--model", MODEL.toString(), "--adapter", run.resolve("adapter").toString(),
                "--out", merged.toString()).status()).isEqualTo(Main.USER_ERROR);
    }

    /**
     * The reverse direction of the PEFT interop check (tools/interop): an adapter trained and saved by peft 0.21 on
     * the bundled model, and Hugging Face's own eval loss for it on the bundled validation data, computed on the
     * GPU machine in float32. Our {@code eval} must give the same loss.
     */
    @Test
    void anAdapterTrainedByPeftGivesHuggingFacesEvalLoss() throws Exception {
        Path dir = Path.of(getClass().getResource("/interop/peft_eval.json").toURI()).getParent();
        JsonNode hf = JSON.readTree(dir.resolve("peft_eval.json").toFile());
        CliRun.Result r = run("eval", "--model", MODEL.toString(), "--adapter", dir.resolve("peft-trained-adapter").toString(),
                "--data", VALID.toString(), "--seq-len", Integer.toString(hf.get("seq_len").asInt()), "--batch-size",
                "8");
        assertThat(r.status()).as(r.err()).isZero();
        JsonNode ours = JSON.readTree(r.out().strip());
        assertThat(ours.get("tokens").asLong()).isEqualTo(hf.get("tokens").asLong());
        assertThat(ours.get("loss").asDouble()).isCloseTo(hf.get("loss").asDouble(),
                org.assertj.core.data.Percentage.withPercentage(1e-3));
    }

    private static double evalLoss(String... modelArgs) throws Exception {
        List<String> a = new ArrayList<>(List.of("eval"));
        a.addAll(List.of(modelArgs));
        a.addAll(List.of("--data", VALID.toString(), "--seq-len", "40", "--batch-size", "8"));
        CliRun.Result r = run(a.toArray(String[]::new));
        assertThat(r.status()).as(r.err()).isZero();
        return JSON.readTree(r.out().strip()).get("loss").asDouble();
    }

    @Test
    void aKilledRunResumesToTheSameResult(@TempDir Path dir) throws Exception {
        Path straight = dir.resolve("straight");
        assertThat(run(finetune(straight, 4, "--save-every", "2")).status()).isZero();

        Path killed = dir.resolve("killed");
        assertThat(run(finetune(killed, 4, "--save-every", "2")).status()).isZero();
        // what a kill during step 4 leaves behind: the step-2 checkpoint, metrics of steps 1..3, no adapter,
        // and a half-written temporary checkpoint folder
        deleteTree(killed.resolve("checkpoints/step-4"));
        deleteTree(killed.resolve("adapter"));
        List<String> partial = Files.readAllLines(killed.resolve("metrics.jsonl")).subList(0, 3);
        Files.write(killed.resolve("metrics.jsonl"), partial);
        Files.createDirectories(killed.resolve("checkpoints/.tmp-step-4"));

        CliRun.Result resumed = run(finetune(killed, 4, "--save-every", "2"));
        assertThat(resumed.status()).as(resumed.err()).isZero();
        assertThat(resumed.out()).contains("resuming from").contains("step 2 of 4");
        assertThat(Files.readAllLines(killed.resolve("metrics.jsonl")).stream().map(CliTest::withoutTiming))
                .containsExactlyElementsOf(Files.readAllLines(straight.resolve("metrics.jsonl")).stream()
                        .map(CliTest::withoutTiming).toList());
        assertThat(Files.readAllBytes(killed.resolve("adapter/adapter_model.safetensors")))
                .isEqualTo(Files.readAllBytes(straight.resolve("adapter/adapter_model.safetensors")));

        CliRun.Result other = run(finetune(killed, 4, "--save-every", "2", "--lora-r", "4"));
        assertThat(other.status()).isEqualTo(Main.USER_ERROR);
        assertThat(other.err()).contains("cannot resume").contains("lora_r");
    }

    @Test
    void badInputIsOneLineWithStatusTwo(@TempDir Path dir) throws Exception {
        Path bad = dir.resolve("bad.jsonl");
        Files.writeString(bad, "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"\n");
        Path bert = dir.resolve("bert");
        Files.createDirectories(bert);
        Files.writeString(bert.resolve("config.json"), "{\"model_type\": \"bert\"}");
        List<Object[]> cases = List.of(
                new Object[]{finetune(dir.resolve("nope"), DATA, dir.resolve("o1"), 1), "nope"},
                new Object[]{finetune(MODEL, bad, dir.resolve("o2"), 1), "line 2"},
                new Object[]{finetune(dir.resolve("o3"), 1, "--target-modules", "c_attn"), "c_attn"},
                new Object[]{finetune(dir.resolve("o4"), 1, "--backend", "cuda"), "cuda"},
                new Object[]{finetune(bert, DATA, dir.resolve("o5"), 1), "supported: [opt]"},
                new Object[]{new String[]{"finetune", "--steps", "many"}, "many"});
        for (Object[] c : cases) {
            CliRun.Result r = run((String[]) c[0]);
            assertThat(r.status()).as(String.join(" ", (String[]) c[0])).isEqualTo(Main.USER_ERROR);
            assertThat(r.err()).contains((String) c[1]).startsWith("error: ").doesNotContain("\tat ")
                    .doesNotContain("Exception");
        }
        for (String o : List.of("o1", "o2", "o3", "o4", "o5")) {
            assertThat(dir.resolve(o)).doesNotExist();
        }
    }

    @Test
    void generateContinuesThePromptDeterministically() {
        String[] greedy = {"generate", "--model", MODEL.toString(), "--prompt", "It was a dark", "--max-new-tokens",
            "6", "--threads", "2"};
        CliRun.Result a = run(greedy);
        CliRun.Result b = run(greedy);
        assertThat(a.status()).as(a.err()).isZero();
        assertThat(a.out()).startsWith("It was a dark").isEqualTo(b.out());
        assertThat(a.out().strip().length()).isGreaterThan("It was a dark".length());
        String[] sampled = {"generate", "--model", MODEL.toString(), "--prompt", "The", "--max-new-tokens", "8",
            "--temperature", "1.0", "--top-p", "0.9", "--seed", "3", "--threads", "2"};
        assertThat(run(sampled).out()).isEqualTo(run(sampled).out());
        assertThat(run("generate", "--model", MODEL.toString(), "--prompt", "x", "--top-p", "0").status())
                .isEqualTo(Main.USER_ERROR);
    }

    @Test
    void aValidationSplitIsHeldOutOfTraining(@TempDir Path dir) throws Exception {
        CliRun.Result r = run(finetune(dir.resolve("o"), 1, "--valid-split", "0.01"));
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("2376 rows").contains("over").contains("24 held-out samples");
        assertThat(dir.resolve("o/validation.json")).isRegularFile();
        CliRun.Result bad = run(finetune(dir.resolve("p"), 1, "--valid-split", "1.5"));
        assertThat(bad.status()).isEqualTo(Main.USER_ERROR);
        assertThat(bad.err()).contains("--valid-split");
    }

    @Test
    void aTokenizerThatDoesNotFitTheModelIsRejected(@TempDir Path dir) throws Exception {
        Path small = dir.resolve("small");
        Files.createDirectories(small);
        // a 211-token model (the HF parity fixture of core) with the 50k-token OPT tokenizer next to it
        Path coreFixture = ROOT.resolve("core/src/test/resources/fixtures/opt-preln/model");
        for (String f : List.of("config.json", "model.safetensors")) {
            Files.copy(coreFixture.resolve(f), small.resolve(f));
        }
        for (String f : List.of("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")) {
            Files.copy(MODEL.resolve(f), small.resolve(f));
        }
        CliRun.Result r = run(finetune(small, DATA, dir.resolve("o"), 1));
        assertThat(r.status()).isEqualTo(Main.USER_ERROR);
        assertThat(r.err()).contains("50265 tokens").contains("211 rows").doesNotContain("\tat ");
        assertThat(dir.resolve("o")).doesNotExist();
    }

    @Test
    void aDivergingLossStopsWithoutWritingAnAdapter(@TempDir Path dir) throws Exception {
        Path broken = dir.resolve("broken");
        Files.createDirectories(broken);
        for (String f : List.of("config.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                "special_tokens_map.json")) {
            Files.copy(MODEL.resolve(f), broken.resolve(f));
        }
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared();
             org.longexposure.io.safetensors.SafetensorsFile f = org.longexposure.io.safetensors.SafetensorsFile
                     .open(MODEL.resolve("model.safetensors"))) {
            java.util.Map<String, org.longexposure.tensor.Tensor> t = new java.util.LinkedHashMap<>();
            for (String n : f.names()) {
                t.put(n, f.tensor(n));
            }
            org.longexposure.tensor.Tensor nanBias = org.longexposure.tensor.Tensor.allocateHost(arena,
                    org.longexposure.tensor.DType.F32, 256);
            nanBias.setFloat(7, Float.NaN);
            t.put("model.decoder.final_layer_norm.bias", nanBias);
            org.longexposure.io.safetensors.SafetensorsWriter.write(broken.resolve("model.safetensors"), t);
        }
        Path out = dir.resolve("o");
        CliRun.Result r = run(finetune(broken, DATA, out, 3, "--save-every", "1"));
        assertThat(r.status()).isEqualTo(Main.USER_ERROR);
        assertThat(r.err()).contains("training diverged").contains("step 1").contains("last good checkpoint: none")
                .doesNotContain("\tat ");
        assertThat(out.resolve("adapter")).doesNotExist();
        assertThat(out.resolve("checkpoints")).doesNotExist();
    }

    private static String withoutTiming(String line) {
        try {
            var n = (com.fasterxml.jackson.databind.node.ObjectNode) JSON.readTree(line);
            n.remove(List.of("tokens_per_s", "step_ms"));
            return n.toString();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static void deleteTree(Path p) throws Exception {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }
}
