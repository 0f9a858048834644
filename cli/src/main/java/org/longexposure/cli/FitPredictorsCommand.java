package org.longexposure.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.Callable;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.Batch;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.MlpPermutation;
import org.longexposure.sparsity.predict.PredictorFit;
import org.longexposure.sparsity.predict.Predictors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code longexposure fit-predictors}: fits the attention and MLP predictors ({@link PredictorFit}) on the first
 * micro-batches of a JSONL file and scores them on the held-out rest. Writes {@code predictors.safetensors} and
 * {@code predictors.json} ({@link Predictors}) and {@code predictor-report.json}: the run's settings and, per layer,
 * held-out recall, realised and oracle density, and the calibrated coverage. With {@code --permutation} the model's
 * FFN neurons are reordered first (the MLP predictors then score blocks of the permuted order) and the permutation
 * is saved next to the predictors ({@link MlpPermutation#FILE}), so that loading the folder applies both.
 */
@Command(name = "fit-predictors", mixinStandardHelpOptions = true,
        description = "Fit per-layer attention-tile and MLP neuron-block predictors; report held-out recall.")
final class FitPredictorsCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    SampleOptions samples;

    @Option(names = "--batches", defaultValue = "8", description = "micro-batches in all (training + held-out)")
    int batches;

    @Option(names = "--held-out", defaultValue = "2", description = "micro-batches held out for the report")
    int heldOut;

    @Option(names = "--block-size", defaultValue = "64", description = "tokens per attention tile side")
    int blockSize;

    @Option(names = "--rank", defaultValue = "8", description = "rank of the per-head attention projections")
    int rank;

    @Option(names = "--attn-mass", defaultValue = "0.95", description = "attention mass to keep, in (0, 1]")
    double attnMass;

    @Option(names = "--neuron-block", defaultValue = "128", description = "neurons per MLP block (BN)")
    int neuronBlock;

    @Option(names = "--token-block", defaultValue = "64", description = "rows sharing one MLP neuron-block set")
    int tokenBlock;

    @Option(names = "--mlp-recall", defaultValue = "0.99", description = "active neurons to keep, in (0, 1]")
    double mlpRecall;

    @Option(names = "--permutation", description = "an MLP neuron permutation (permute-mlp) applied at load time; "
            + "copied into --out, where finetune --predictors finds it")
    Path permutation;

    @Mixin
    BackendOption backendOption;

    @Override
    public Integer call() throws IOException {
        PrintWriter pw = spec.commandLine().getOut();
        samples.requireHeldOut(batches, heldOut);
        PredictorFit.Config cfg;
        try {
            cfg = new PredictorFit.Config(blockSize, rank, attnMass, neuronBlock, tokenBlock, mlpRecall);
        } catch (IllegalArgumentException e) {
            throw new Main.UserException(e.getMessage());
        }
        ModelFiles.requireModelDir(samples.model);
        MlpPermutation perm = permutation == null ? null : MlpPermutation.load(permutation);
        PredictorFit.Report report;
        long fitNanos;
        int trainBatches;
        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(samples.model, be, perm)) {
            SampleOptions.MicroBatches read = samples.microBatches(lm, batches);
            List<Batch> micro = read.batches();
            if (micro.size() <= heldOut) {
                throw new Main.UserException(samples.data + ": " + read.rows() + " samples make " + micro.size()
                        + " micro-batches of " + samples.batchSize + ", not more than --held-out " + heldOut);
            }
            List<Batch> train = micro.subList(0, micro.size() - heldOut);
            List<Batch> valid = micro.subList(micro.size() - heldOut, micro.size());
            trainBatches = train.size();
            long t0 = System.nanoTime();
            Predictors p = PredictorFit.fit(be, lm, train, cfg);
            fitNanos = System.nanoTime() - t0;
            p.save(samples.out);
            if (perm != null) {
                perm.save(samples.out.resolve(MlpPermutation.FILE));
            }
            report = PredictorFit.evaluate(be, lm, p, valid, cfg);
        }
        ObjectNode run = new ObjectMapper().createObjectNode();
        run.put("model", samples.model.toString());
        run.put("data", samples.data.toString());
        run.put("batch_size", samples.batchSize);
        run.put("seq_len", samples.seqLen);
        run.put("train_micro_batches", trainBatches);
        run.put("held_out_micro_batches", heldOut);
        run.put("fit_seconds", fitNanos / 1e9);
        run.put("permutation", permutation == null ? null : permutation.toString());
        run.setAll(report.toJson());
        Path json = samples.out.resolve("predictor-report.json");
        Path tmp = samples.out.resolve("predictor-report.json.tmp");
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), run);
        Files.move(tmp, json, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        pw.printf("%d training and %d held-out micro-batches (%d real held-out tokens); tiles of %d, rank %d, "
                        + "neuron blocks of %d per %d-row token block%n", trainBatches, heldOut, report.realTokens(),
                blockSize, rank, neuronBlock, tokenBlock);
        pw.printf("held out: attention mass kept (target %.3f) and MLP active neurons kept (target %.3f)%n", attnMass,
                mlpRecall);
        pw.println("layer  attn-recall  attn-density  oracle  coverage  mlp-recall  mlp-density  oracle  coverage");
        for (PredictorFit.LayerReport l : report.layers()) {
            pw.printf("%5d  %11.4f  %12.3f  %6.3f  %8.2f  %10.4f  %11.3f  %6.3f  %8.2f%n", l.layer(), l.attnRecall(),
                    l.attnDensity(), l.attnOracleDensity(), l.attnCoverage(), l.mlpRecall(), l.mlpDensity(),
                    l.mlpOracleDensity(), l.mlpCoverage());
        }
        pw.printf("wrote %s, %s and %s%n", samples.out.resolve(Predictors.TENSORS),
                samples.out.resolve(Predictors.JSON), json);
        return 0;
    }
}
