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
import org.longexposure.sparsity.exposer.Exposer;
import org.longexposure.sparsity.exposer.Exposure;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure expose}: the Exposer's profiling pass (design note sections 2 and 4) on real samples. Reads the
 * first {@code batches × batch-size} rows of a JSONL file in file order (each truncated to {@code seq-len}, each
 * micro-batch padded to its longest row), runs the dense model without adapters and writes
 * {@code <out>/exposure.json} (config, per-layer MLP sparsities, per-head attention tile densities and maps),
 * {@code <out>/sparsity.png} and {@code <out>/attention-layer<l>.png} (not with {@code --no-plot}); prints a per-layer
 * table.
 */
@Command(name = "expose", mixinStandardHelpOptions = true,
        description = "Measure per-token vs. union (shadowy) sparsity of the MLP and per-head attention tile mass.")
final class ExposeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    SampleOptions samples;

    @Option(names = "--batches", defaultValue = "8", description = "micro-batches to profile")
    int batches;

    @Option(names = "--neuron-block", defaultValue = "128", description = "neurons per MLP block (BN)")
    int neuronBlock;

    @Option(names = "--attn-block", defaultValue = "64", description = "tokens per attention tile side")
    int attnBlock;

    @Option(names = "--near-zero", defaultValue = "0.05",
            description = "a block is near zero if all its neurons are below this fraction of the layer max")
    double nearZero;

    @Option(names = "--coverage", defaultValue = "0.95",
            description = "tile density: fraction of each query-block row's mass the kept tiles cover")
    double coverage;

    @Option(names = "--no-plot", description = "skip the PNGs (for runtimes without the plotting library, e.g. a "
            + "trimmed runtime on a GPU machine); exposure.json holds the same numbers")
    boolean noPlot;

    @Mixin
    BackendOption backendOption;

    @Override
    public Integer call() throws IOException {
        PrintWriter pw = spec.commandLine().getOut();
        if (samples.batchSize < 1 || batches < 1 || samples.seqLen < 1) {
            throw new Main.UserException("--batch-size, --batches and --seq-len must be >= 1");
        }
        if (neuronBlock < 1 || attnBlock < 1) {
            throw new Main.UserException("--neuron-block and --attn-block must be >= 1");
        }
        if (!(nearZero >= 0 && nearZero < 1) || !(coverage > 0 && coverage <= 1)) {
            throw new Main.UserException("--near-zero must be in [0, 1) and --coverage in (0, 1]");
        }
        ModelFiles.requireModelDir(samples.model);
        Exposer.Config cfg = new Exposer.Config(neuronBlock, attnBlock, nearZero, coverage);
        Exposure ex;
        int effectiveSeq;
        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(samples.model, be)) {
            List<Batch> micro = samples.microBatches(lm, batches).batches();
            if (micro.isEmpty()) {
                throw new Main.UserException(samples.data + ": no samples to profile");
            }
            effectiveSeq = micro.stream().mapToInt(Batch::seqLen).max().orElseThrow();
            ex = Exposer.expose(be, lm, micro, cfg);
        }
        Files.createDirectories(samples.out);
        ObjectNode report = new ObjectMapper().createObjectNode();
        ObjectNode run = report.putObject("run");
        run.put("model", samples.model.toString());
        run.put("data", samples.data.toString());
        run.put("batch_size", samples.batchSize);
        run.put("seq_len", samples.seqLen);
        run.put("longest_batch_seq_len", effectiveSeq);
        run.setAll(ex.toJson());
        Path json = samples.out.resolve("exposure.json");
        Path tmp = samples.out.resolve("exposure.json.tmp");
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), run);
        Files.move(tmp, json, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        if (!noPlot) {
            ExposurePlots.sparsity(samples.out.resolve("sparsity.png"), ex);
            for (Exposure.Layer l : ex.layers()) {
                ExposurePlots.attention(samples.out.resolve("attention-layer" + l.layer() + ".png"), l, attnBlock);
            }
        }
        printTable(pw, ex);
        if (noPlot) {
            pw.printf("wrote %s%n", json);
        } else {
            pw.printf("wrote %s, sparsity.png and %d attention-layer<l>.png%n", json, ex.layers().size());
        }
        return 0;
    }

    private static void printTable(PrintWriter pw, Exposure ex) {
        pw.printf("%d micro-batches, %d real tokens; neuron block %d, attention tile %d, near zero < %.0f%% of the "
                        + "layer max, tiles covering %.0f%% of each row%n", ex.microBatches(), ex.realTokens(),
                ex.config().neuronBlock(), ex.config().attnBlock(), 100 * ex.config().nearZero(),
                100 * ex.config().coverage());
        pw.println("layer  per-token  union  blocks=0  blocks<near  tile-density");
        for (Exposure.Layer l : ex.layers()) {
            pw.printf("%5d  %9.3f  %5.3f  %8.3f  %11.3f  %12.3f%n", l.layer(), l.tokenSparsity(),
                    l.meanUnionSparsity(), l.meanBlockSparsityExact(), l.meanBlockSparsityNear(),
                    l.meanTileDensity());
        }
    }
}
