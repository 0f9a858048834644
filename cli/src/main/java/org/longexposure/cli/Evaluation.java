package org.longexposure.cli;

import java.util.List;
import java.util.function.ToDoubleFunction;
import org.longexposure.io.data.Batch;
import org.longexposure.io.data.Batcher;
import org.longexposure.io.data.Example;

/**
 * Mean loss over all predicted tokens of a dataset (each batch's mean weighted by its token count), the way
 * Hugging Face reports one loss for one batch holding everything.
 */
record Evaluation(double loss, long tokens) {
    static Evaluation run(ToDoubleFunction<Batch> meanLoss, List<Example> examples, int batchSize, int seqLen, int padId) {
        return runRows(meanLoss, Batcher.truncate(examples, seqLen).rows(), batchSize, seqLen, padId);
    }

    /** The same over rows already cut (or packed) to at most {@code seqLen} tokens. */
    static Evaluation runRows(ToDoubleFunction<Batch> meanLoss, List<Example> rows, int batchSize, int seqLen,
                              int padId) {
        double sum = 0;
        long tokens = 0;
        for (int i = 0; i < rows.size(); i += batchSize) {
            Batch b = Batcher.batch(rows.subList(i, Math.min(rows.size(), i + batchSize)), batchSize, seqLen, padId);
            int n = b.predictedTokens();
            if (n == 0) {
                continue;
            }
            sum += meanLoss.applyAsDouble(b) * n;
            tokens += n;
        }
        return new Evaluation(tokens == 0 ? Double.NaN : sum / tokens, tokens);
    }
}
