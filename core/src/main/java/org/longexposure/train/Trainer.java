package org.longexposure.train;

import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.peft.TrainableParams;

/**
 * One optimizer step, in the order a reader expects: zero_grad; for each micro-batch forward, loss, backward;
 * clip; AdamW. With gradient accumulation each micro-batch's loss is weighted by its share of the step's
 * predicted tokens, so the step's gradient is that of the mean loss over all of them (as one big batch would be).
 */
public final class Trainer {
    private final Backend be;
    private final CausalLm model;
    private final TrainableParams params;
    private final TrainConfig cfg;
    private final AdamW adamw;
    private final ForwardState state;

    public Trainer(Backend be, CausalLm model, TrainableParams params, TrainConfig cfg, int batchSize, int seqLen) {
        this.be = be;
        this.model = model;
        this.params = params;
        this.cfg = cfg;
        this.adamw = new AdamW(cfg.beta1(), cfg.beta2(), cfg.eps(), cfg.weightDecay());
        this.state = model.allocate(batchSize, seqLen);
    }

    public AdamW optimizer() {
        return adamw;
    }

    /**
     * The state the steps run on: after {@link #step} it holds the forward of the step's last micro-batch, whose
     * saved activations ({@code state().layer(l)}) stay readable until the next step or evaluation.
     */
    public ForwardState state() {
        return state;
    }

    /** Runs one optimizer step over {@code microBatches} (gradAccum of them). */
    public StepResult step(List<Batch> microBatches) {
        if (microBatches.size() != cfg.gradAccum()) {
            throw new IllegalArgumentException("expected " + cfg.gradAccum() + " micro-batches, got "
                    + microBatches.size());
        }
        long start = System.nanoTime();
        long total = 0;
        for (Batch b : microBatches) {
            total += b.predictedTokens();
        }
        if (total == 0) {
            throw new IllegalArgumentException("the step's micro-batches have no predicted tokens");
        }
        params.zeroGrad(be);
        double lossSum = 0;
        for (Batch b : microBatches) {
            int tokens = b.predictedTokens();
            if (tokens == 0) {
                continue;
            }
            double loss = model.forwardLoss(state, b, cfg.labelSmoothing(), true);
            float share = (float) tokens / total;
            model.backward(state, share);
            lossSum += loss * share;
        }
        double norm = GradClip.clip(be, params, cfg.maxGradNorm());
        int stepNo = Math.toIntExact(adamw.step() + 1);
        double lr = cfg.schedule().at(stepNo);
        adamw.update(be, params, (float) lr);
        be.sync();
        double seconds = (System.nanoTime() - start) / 1e9;
        return new StepResult(stepNo, lossSum, lr, norm, total, seconds);
    }

    /** Mean loss over the predicted tokens of {@code batch}, without gradients. */
    public double evaluate(Batch batch) {
        return model.forwardLoss(state, batch, 0f, false);
    }
}
