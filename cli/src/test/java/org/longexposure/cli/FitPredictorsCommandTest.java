package org.longexposure.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.longexposure.cli.CliRun.MODEL;
import static org.longexposure.cli.CliRun.VALID;
import static org.longexposure.cli.CliRun.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.sparsity.predict.Predictors;

/**
 * {@code longexposure fit-predictors} on the bundled model and E2E validation sample: the predictor files load, the
 * report has one entry per layer with recall and densities in range, and a bad option is a one-line user error.
 */
class FitPredictorsCommandTest {
    @Test
    void writesLoadablePredictorsAndAReport(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("pred");
        CliRun.Result r = run("fit-predictors", "--model", MODEL.toString(), "--data", VALID.toString(), "--out",
                out.toString(), "--batch-size", "3", "--seq-len", "40", "--batches", "3", "--held-out", "1",
                "--block-size", "8", "--rank", "4", "--neuron-block", "100", "--token-block", "21", "--threads", "2");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).contains("attn-recall").contains("mlp-recall");
        Predictors p = Predictors.load(out);
        assertThat(p.numLayers()).isEqualTo(4);
        assertThat(p.mlp(0).neuronBlock()).isEqualTo(100);
        JsonNode rep = new ObjectMapper().readTree(out.resolve("predictor-report.json").toFile());
        assertThat(rep.get("train_micro_batches").asInt()).isEqualTo(2);
        assertThat(rep.get("layers")).hasSize(4);
        for (JsonNode l : rep.get("layers")) {
            for (String k : new String[] {"attn_recall", "attn_density", "mlp_recall", "mlp_density"}) {
                assertThat(l.get(k).asDouble()).as(k).isBetween(0.0, 1.0);
            }
        }
    }

    @Test
    void badTargetsAreUserErrors(@TempDir Path dir) throws Exception {
        CliRun.Result r = run("fit-predictors", "--model", MODEL.toString(), "--data", VALID.toString(), "--out",
                dir.resolve("o").toString(), "--attn-mass", "1.5");
        assertThat(r.status()).isEqualTo(Main.USER_ERROR);
        assertThat(r.err()).contains("attention mass").doesNotContain("Exception");
        assertThat(dir.resolve("o")).doesNotExist();
    }
}
