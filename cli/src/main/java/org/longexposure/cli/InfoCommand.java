package org.longexposure.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.longexposure.io.config.HfConfig;
import org.longexposure.io.safetensors.ShardedCheckpoint;
import org.longexposure.model.Architecture;
import org.longexposure.model.ModelConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure info}: architecture, parameter counts and a memory estimate for LoRA fine-tuning on the CPU
 * (weights are read in place from the mapped checkpoint; activations are F32 and saved per layer).
 */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Architecture, parameters, memory estimate.")
final class InfoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true)
    Path model;

    @Option(names = "--batch-size", defaultValue = "4")
    int batchSize;

    @Option(names = "--seq-len", defaultValue = "512")
    int seqLen;

    @Override
    public Integer call() {
        ModelFiles.requireModelDir(model);
        ModelConfig c = Architecture.config(HfConfig.read(model.resolve("config.json")));
        PrintWriter out = spec.commandLine().getOut();
        long params = 0;
        long bytes = 0;
        String dtypes;
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(model)) {
            java.util.Set<String> seen = new java.util.TreeSet<>();
            for (String n : ck.names()) {
                params += ck.info(n).numel();
                bytes += ck.info(n).byteSize();
                seen.add(ck.info(n).dtype().toString());
            }
            dtypes = String.join(",", seen);
        }
        long n = (long) batchSize * seqLen;
        long perLayer = n * c.hiddenSize() * 8L + n * c.ffnDim() * (c.activation().hfName().equals("relu") ? 1 : 2);
        long act = 4L * (perLayer * c.numLayers() + n * c.vocabSize() + n * c.hiddenSize() * 8L);
        out.printf("model        %s%n", model);
        out.printf("architecture %s: %d layers, hidden %d, heads %d (head size %d), ffn %d (%s), vocab %d%n",
                c.modelType(), c.numLayers(), c.hiddenSize(), c.numHeads(), c.headSize(), c.ffnDim(),
                c.activation().hfName(), c.vocabSize());
        out.printf("             %s, positions %d, word_embed_proj_dim %d, tied head %b, bias %b%n",
                c.preLayerNorm() ? "pre-LN" : "post-LN", c.maxPositions(), c.wordEmbedProjDim(),
                c.tieWordEmbeddings(), c.enableBias());
        out.printf("parameters   %,d stored (%s), %.1f MiB on disk%n", params, dtypes, bytes / 1048576.0);
        out.printf("memory       CPU LoRA step at batch %d x %d: weights %.1f MiB mapped in place, activations"
                + " ~%.1f MiB (F32)%n", batchSize, seqLen, bytes / 1048576.0, act / 1048576.0);
        return 0;
    }
}
