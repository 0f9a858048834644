package org.longexposure.cli;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.data.Batch;
import org.longexposure.io.tokenizer.Tokenizer;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure generate}: continues a prompt, greedily ({@code --temperature 0}) or by nucleus sampling.
 * Each new token re-runs the forward pass over the whole sequence (no key/value cache: this command is for
 * checking a fine-tuned adapter, not for serving).
 */
@Command(name = "generate", mixinStandardHelpOptions = true, description = "Continue a prompt.")
final class GenerateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true)
    Path model;

    @Option(names = "--adapter")
    Path adapter;

    @Option(names = "--prompt", required = true)
    String prompt;

    @Option(names = "--max-new-tokens", defaultValue = "64")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1")
    double topP;

    @Option(names = "--seed", defaultValue = "0")
    long seed;

    @Mixin
    BackendOption backendOption;

    @Override
    public Integer call() {
        ModelFiles.requireModelDir(model);
        if (temperature < 0 || topP <= 0 || topP > 1 || maxNewTokens < 0) {
            throw new Main.UserException("--temperature must be >= 0, --top-p in (0, 1], --max-new-tokens >= 0");
        }
        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(model, be)) {
            Tokenizer tok = ModelFiles.tokenizer(model, lm.config().vocabSize());
            if (adapter != null) {
                ModelFiles.plugAdapter(lm, be, adapter);
            }
            int[] promptIds = tok.encodeWithSpecials(prompt);
            int max = Math.min(lm.config().maxPositions(), promptIds.length + maxNewTokens);
            if (promptIds.length >= lm.config().maxPositions()) {
                throw new Main.UserException("--prompt is " + promptIds.length + " tokens; the model takes at most "
                        + lm.config().maxPositions());
            }
            ForwardState state = lm.allocate(1, max);
            int[] ids = Arrays.copyOf(promptIds, max);
            int len = promptIds.length;
            SplittableRandom rng = new SplittableRandom(seed);
            int eos = tok.eosId().orElse(-1);
            int v = lm.config().vocabSize();
            while (len < max) {
                int[] cur = Arrays.copyOf(ids, len);
                int[] mask = new int[len];
                Arrays.fill(mask, 1);
                int[] labels = new int[len];
                Arrays.fill(labels, Batch.IGNORE);
                lm.forward(state, new Batch(1, len, cur, mask, labels), false);
                Tensor logits = state.logits();
                float[] row = Tensors.toFloats(be, logits.slice(len - 1, 1)); // the last position's (V) logits
                int next = temperature == 0 ? argmax(row) : sample(row, temperature, topP, rng);
                ids[len++] = next;
                if (next == eos) {
                    break;
                }
            }
            int[] generated = Arrays.copyOfRange(ids, promptIds.length, len);
            spec.commandLine().getOut().println(prompt + tok.decode(generated, true));
        }
        return 0;
    }

    static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Nucleus sampling: the smallest set of most likely tokens whose probability reaches {@code topP}. */
    static int sample(float[] logits, double temperature, double topP, SplittableRandom rng) {
        int n = logits.length;
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            p[i] = Math.exp((logits[i] - max) / temperature);
            sum += p[i];
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
            p[i] /= sum;
        }
        Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
        double cum = 0;
        int keep = 0;
        while (keep < n && cum < topP) {
            cum += p[order[keep++]];
        }
        double u = rng.nextDouble() * cum;
        double acc = 0;
        for (int i = 0; i < keep; i++) {
            acc += p[order[i]];
            if (u < acc) {
                return order[i];
            }
        }
        return order[keep - 1];
    }
}
