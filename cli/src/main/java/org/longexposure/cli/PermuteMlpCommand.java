package org.longexposure.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.Batch;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.MlpPermutation;
import org.longexposure.sparsity.permute.CoactivationOrder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code longexposure permute-mlp}: profiles the FFN neuron activity of a ReLU model on the first micro-batches of a
 * JSONL file, fits neuron orders that pack co-activated neurons into the same blocks ({@link CoactivationOrder}),
 * and reports the lossless union density per layer on the held-out micro-batches for token blocks of 16, 64, 128 and
 * 256 rows and neuron blocks of 32 and 128, for the stored order, the frequency order and the greedy clustering.
 * Writes {@code <out>/mlp-permutation.safetensors} ({@link MlpPermutation}) holding, per layer, whichever of the
 * three orders gives the lowest union density on the profiling micro-batches at {@code --token-block} and
 * {@code --neuron-block}, and {@code <out>/permutation-report.json}.
 */
@Command(name = "permute-mlp", mixinStandardHelpOptions = true, resourceBundle = "org.longexposure.cli.PermuteMlp",
        description = "Fit an FFN neuron permutation packing co-activated neurons; report union density.")
final class PermuteMlpCommand implements Callable<Integer> {
    private static final int[] TOKEN_BLOCKS = {16, 64, 128, 256};
    private static final int[] NEURON_BLOCKS = {32, 128};
    private static final String[] METHODS = {"identity", "frequency", "greedy"};

    @Spec
    CommandSpec spec;

    @Mixin
    SampleOptions samples;

    @Option(names = "--pack", description = "pack short samples into full rows (as finetune --pack)")
    boolean pack;

    @Option(names = "--batches", defaultValue = "16", description = "micro-batches in all (profiling + held-out)")
    int batches;

    @Option(names = "--held-out", defaultValue = "4", description = "micro-batches held out for the report")
    int heldOut;

    @Option(names = "--neuron-block", defaultValue = "128", description = "BN the written permutation is fitted for")
    int neuronBlock;

    @Option(names = "--token-block", defaultValue = "64", description = "rows per token block it is fitted for")
    int tokenBlock;

    @Mixin
    BackendOption backendOption;

    @Override
    public Integer call() throws IOException {
        PrintWriter pw = spec.commandLine().getOut();
        samples.requireHeldOut(batches, heldOut);
        if (neuronBlock < 1 || tokenBlock < 1) {
            throw new Main.UserException("--neuron-block and --token-block must be >= 1, got " + neuronBlock + " and "
                    + tokenBlock);
        }
        ModelFiles.requireModelDir(samples.model);
        ObjectNode run = new ObjectMapper().createObjectNode();
        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(samples.model, be)) {
            if (lm.config().activation() != Activation.RELU) {
                throw new Main.UserException(samples.model + ": the MLP uses " + lm.config().activation()
                        + "; a neuron permutation for union sparsity needs a ReLU MLP");
            }
            SampleOptions.MicroBatches read = samples.microBatches(lm, batches, pack);
            List<Batch> micro = read.batches();
            if (micro.size() <= heldOut) {
                throw new Main.UserException(samples.data + ": " + read.rows() + " rows make " + micro.size()
                        + " micro-batches of " + samples.batchSize + ", not more than --held-out " + heldOut);
            }
            List<Batch> fit = micro.subList(0, micro.size() - heldOut);
            List<Batch> valid = micro.subList(micro.size() - heldOut, micro.size());
            int layers = lm.config().numLayers();
            int ffn = lm.config().ffnDim();
            int[] tbs = tokenBlocksWith(tokenBlock);
            ForwardState st = lm.allocate(samples.batchSize, samples.seqLen);
            long t0 = System.nanoTime();
            Map<Integer, CoactivationOrder.Activity> fitAct = CoactivationOrder.profile(be, lm, st, fit, tbs, null);
            long[] tokenActive = new long[layers + 1];
            Map<Integer, CoactivationOrder.Activity> validAct = CoactivationOrder.profile(be, lm, st, valid, tbs,
                    tokenActive);
            double profileSeconds = (System.nanoTime() - t0) / 1e9;
            run.put("model", samples.model.toString());
            run.put("data", samples.data.toString());
            run.put("batch_size", samples.batchSize);
            run.put("seq_len", samples.seqLen);
            run.put("pack", pack);
            run.put("profiling_micro_batches", fit.size());
            run.put("held_out_micro_batches", valid.size());
            run.put("held_out_real_tokens", tokenActive[layers]);
            run.put("profile_seconds", profileSeconds);
            run.put("chosen_for_token_block", tokenBlock);
            run.put("chosen_for_neuron_block", neuronBlock);
            ArrayNode ls = run.putArray("layers");
            int[][] chosen = new int[layers][];
            long t1 = System.nanoTime();
            pw.printf("held-out lossless union density (fraction of real (row, neuron) pairs computed); "
                    + "columns: token block x neuron block, identity / frequency / greedy%n");
            for (int l = 0; l < layers; l++) {
                ObjectNode lo = ls.addObject();
                lo.put("layer", l);
                lo.put("token_density", (double) tokenActive[l] / ((double) tokenActive[layers] * ffn));
                ArrayNode cells = lo.putArray("union_density");
                StringBuilder line = new StringBuilder(String.format("layer %d  token %.3f", l,
                        (double) tokenActive[l] / ((double) tokenActive[layers] * ffn)));
                for (int tb : tbs) {
                    for (int bn : NEURON_BLOCKS) {
                        CoactivationOrder.Activity fa = fitAct.get(tb);
                        CoactivationOrder.Activity va = validAct.get(tb);
                        int[][] orders = {CoactivationOrder.identity(ffn), CoactivationOrder.byFrequency(fa, l),
                                CoactivationOrder.greedy(fa, l, bn)};
                        ObjectNode cell = cells.addObject();
                        cell.put("token_block", tb);
                        cell.put("neuron_block", bn);
                        double bestFit = Double.POSITIVE_INFINITY;
                        int best = 0;
                        line.append(String.format("  %dx%d", tb, bn));
                        for (int m = 0; m < METHODS.length; m++) {
                            double fd = CoactivationOrder.unionDensity(fa, l, orders[m], bn);
                            double vd = CoactivationOrder.unionDensity(va, l, orders[m], bn);
                            cell.put(METHODS[m], vd);
                            cell.put(METHODS[m] + "_profiling", fd);
                            line.append(m == 0 ? " " : "/").append(String.format("%.3f", vd));
                            if (fd < bestFit) {
                                bestFit = fd;
                                best = m;
                            }
                        }
                        if (tb == tokenBlock && bn == neuronBlock) {
                            chosen[l] = orders[best];
                            lo.put("chosen", METHODS[best]);
                        }
                    }
                }
                if (chosen[l] == null) {
                    CoactivationOrder.Activity fa = fitAct.get(tokenBlock);
                    int[][] orders = {CoactivationOrder.identity(ffn), CoactivationOrder.byFrequency(fa, l),
                            CoactivationOrder.greedy(fa, l, neuronBlock)};
                    int best = 0;
                    double bestFit = Double.POSITIVE_INFINITY;
                    for (int m = 0; m < METHODS.length; m++) {
                        double fd = CoactivationOrder.unionDensity(fa, l, orders[m], neuronBlock);
                        if (fd < bestFit) {
                            bestFit = fd;
                            best = m;
                        }
                    }
                    chosen[l] = orders[best];
                    lo.put("chosen", METHODS[best]);
                }
                pw.println(line);
            }
            run.put("order_seconds", (System.nanoTime() - t1) / 1e9);
            Files.createDirectories(samples.out);
            new MlpPermutation(chosen).save(samples.out.resolve(MlpPermutation.FILE));
            run.put("ffn_dim", ffn);
        }
        Path json = samples.out.resolve("permutation-report.json");
        Path tmp = samples.out.resolve("permutation-report.json.tmp");
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), run);
        Files.move(tmp, json, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        pw.printf("wrote %s and %s%n", samples.out.resolve(MlpPermutation.FILE), json);
        return 0;
    }

    private static int[] tokenBlocksWith(int tb) {
        for (int t : TOKEN_BLOCKS) {
            if (t == tb) {
                return TOKEN_BLOCKS.clone();
            }
        }
        int[] all = new int[TOKEN_BLOCKS.length + 1];
        System.arraycopy(TOKEN_BLOCKS, 0, all, 0, TOKEN_BLOCKS.length);
        all[TOKEN_BLOCKS.length] = tb;
        return all;
    }
}
