package org.longexposure.train;

/**
 * Optimisation settings of a run (immutable).
 *
 * @param schedule       learning-rate schedule (peak rate, warm-up, decay)
 * @param weightDecay    AdamW decoupled weight decay
 * @param beta1          AdamW β1
 * @param beta2          AdamW β2
 * @param eps            AdamW ε
 * @param maxGradNorm    global-norm clipping threshold; ≤ 0 disables clipping
 * @param labelSmoothing cross-entropy label smoothing ε
 * @param gradAccum      micro-batches per optimizer step
 */
public record TrainConfig(LrSchedule schedule, float weightDecay, float beta1, float beta2, float eps,
                          float maxGradNorm, float labelSmoothing, int gradAccum) {
    public TrainConfig {
        if (gradAccum < 1) {
            throw new IllegalArgumentException("grad-accum must be >= 1, got " + gradAccum);
        }
    }

    /** torch AdamW defaults, clipping at 1.0, no smoothing, one micro-batch per step. */
    public static TrainConfig of(LrSchedule schedule, float weightDecay) {
        return new TrainConfig(schedule, weightDecay, 0.9f, 0.999f, 1e-8f, 1.0f, 0f, 1);
    }
}
