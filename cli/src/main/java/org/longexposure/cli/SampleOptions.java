package org.longexposure.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.longexposure.io.data.Batch;
import org.longexposure.io.data.Batcher;
import org.longexposure.io.data.Example;
import org.longexposure.io.data.JsonlDataset;
import org.longexposure.io.data.TokenEncoder;
import org.longexposure.model.CausalLm;
import picocli.CommandLine.Option;

/**
 * {@code --model}, {@code --data}, {@code --out}, {@code --batch-size} and {@code --seq-len}, shared by the
 * commands that run a model over the first samples of a JSONL file (expose, fit-predictors, permute-mlp), and the
 * micro-batches they read: rows in file order, each truncated to seq-len (or samples packed into rows of seq-len),
 * each micro-batch padded to its longest row. A command may word {@code --model} and {@code --seq-len} for itself
 * through its resource bundle (keys {@code model} and {@code seq-len}).
 */
final class SampleOptions {
    @Option(names = "--model", required = true, description = "HF model folder")
    Path model;

    @Option(names = "--data", required = true, description = "JSONL samples (the same formats as finetune)")
    Path data;

    @Option(names = "--out", required = true, description = "output folder")
    Path out;

    @Option(names = "--batch-size", defaultValue = "4", description = "sequences per micro-batch")
    int batchSize;

    @Option(names = "--seq-len", defaultValue = "256", description = "longest sequence (rows are truncated)")
    int seqLen;

    /**
     * For the commands that hold micro-batches out for a report (fit-predictors, permute-mlp): fails unless
     * {@code --batch-size}, {@code --seq-len} and {@code heldOut} are at least 1 and {@code batches} leaves at least
     * one micro-batch besides the held-out ones.
     */
    void requireHeldOut(int batches, int heldOut) {
        if (batchSize < 1 || seqLen < 1 || heldOut < 1 || batches <= heldOut) {
            throw new Main.UserException("--batch-size, --seq-len and --held-out must be >= 1 and --batches larger"
                    + " than --held-out");
        }
    }

    /**
     * The micro-batches read, and how many rows the whole file makes: one a sample when truncated, fewer when
     * packed.
     */
    record MicroBatches(List<Batch> batches, int rows) {
    }

    /** {@link #microBatches(CausalLm, int, boolean)} with each sample a row of its own, truncated to seq-len. */
    MicroBatches microBatches(CausalLm lm, int batches) throws IOException {
        return microBatches(lm, batches, false);
    }

    /**
     * Up to {@code batches} micro-batches of {@code --batch-size} rows from the start of {@code --data}, tokenized
     * with the model folder's tokenizer (none when the file has no samples); {@code pack} packs the samples into
     * full rows of seq-len as finetune --pack does. {@code --seq-len} must not exceed the model's positions.
     */
    MicroBatches microBatches(CausalLm lm, int batches, boolean pack) throws IOException {
        if (seqLen > lm.config().maxPositions()) {
            throw new Main.UserException("--seq-len " + seqLen + " exceeds the model's max_position_embeddings "
                    + lm.config().maxPositions());
        }
        TokenEncoder enc = ModelFiles.encoder(ModelFiles.tokenizer(model, lm.config().vocabSize()));
        List<Example> examples = JsonlDataset.read(data, enc);
        List<Example> rows = (pack ? Batcher.pack(examples, seqLen) : Batcher.truncate(examples, seqLen)).rows();
        List<Batch> micro = new ArrayList<>();
        for (int m = 0; m < batches && m * batchSize < rows.size(); m++) {
            List<Example> part = rows.subList(m * batchSize, Math.min(rows.size(), (m + 1) * batchSize));
            micro.add(Batcher.batch(part, seqLen, enc.padId()));
        }
        return new MicroBatches(micro, rows.size());
    }
}
