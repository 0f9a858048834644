package org.longexposure.train;

/**
 * What one optimizer step reports.
 *
 * @param step     1-based optimizer step
 * @param loss     mean loss over all predicted tokens of the step's micro-batches
 * @param lr       learning rate used
 * @param gradNorm global gradient norm before clipping
 * @param tokens   predicted tokens in the step
 * @param seconds  wall time of the step
 */
public record StepResult(int step, double loss, double lr, double gradNorm, long tokens, double seconds) {
    public double tokensPerSecond() {
        return seconds > 0 ? tokens / seconds : 0;
    }
}
