package org.longexposure.train;

import java.util.List;
import org.longexposure.io.data.Batch;
import org.longexposure.model.CausalLm;
import org.longexposure.model.SparsityPlan;
import org.longexposure.sparsity.predict.OnlineSparsity;

/**
 * Optimizer steps with online sparsity (docs/SPARSITY.md section 2): a refresh step runs dense and then refreshes
 * the predictors from the saved activations of its last micro-batch; every other step runs with the sparse plan.
 * Which steps refresh depends on the step number alone ({@link #refreshDue}), so a run resumed with its
 * {@link OnlineSparsity} state restored from the checkpoint refreshes exactly where the uninterrupted run did.
 * Nothing is saved for backward beyond what {@link Trainer#step} saves.
 */
public final class SparseSteps {
    /**
     * One step's outcome.
     *
     * @param result    the optimizer step
     * @param refresh   the refresh's numbers on a refresh step, else null
     * @param density   the realised densities of a sparse step, else null
     * @param refreshMs the refresh's wall time on a refresh step, else 0
     */
    public record Outcome(StepResult result, OnlineSparsity.Refresh refresh, OnlineSparsity.StepDensity density,
                          double refreshMs) {
    }

    private final CausalLm lm;
    private final Trainer trainer;
    private final OnlineSparsity online;
    private final int refreshEvery;

    /**
     * @param refreshEvery N ≥ 0: steps 1, N + 1, 2N + 1, … refresh (0: never, except step 1 in auto mode)
     */
    public SparseSteps(CausalLm lm, Trainer trainer, OnlineSparsity online, int refreshEvery) {
        if (refreshEvery < 0) {
            throw new IllegalArgumentException("refresh interval must be >= 0, got " + refreshEvery);
        }
        this.lm = lm;
        this.trainer = trainer;
        this.online = online;
        this.refreshEvery = refreshEvery;
        lm.sparsity(online);
    }

    /** Whether optimizer step {@code step} (1-based) is a refresh step: step 1 in auto mode, and 1 + k·N. */
    public static boolean refreshDue(int step, int refreshEvery, OnlineSparsity.Mode mode) {
        return (refreshEvery > 0 && (step - 1) % refreshEvery == 0) || (step == 1 && mode == OnlineSparsity.Mode.AUTO);
    }

    /** Runs the next optimizer step (number: the optimizer's step + 1) over {@code microBatches}. */
    public Outcome step(List<Batch> microBatches) {
        int stepNo = Math.toIntExact(trainer.optimizer().step() + 1);
        if (!refreshDue(stepNo, refreshEvery, online.settings().mode())) {
            StepResult r = trainer.step(microBatches);
            return new Outcome(r, null, online.takeStep(), 0);
        }
        lm.sparsity(SparsityPlan.DENSE);
        StepResult r;
        try {
            r = trainer.step(microBatches);
        } finally {
            lm.sparsity(online);
        }
        long t0 = System.nanoTime();
        OnlineSparsity.Refresh rf = online.refresh(trainer.state(), microBatches.getLast());
        double ms = (System.nanoTime() - t0) / 1e6;
        online.takeStep();
        return new Outcome(r, rf, null, ms);
    }
}
