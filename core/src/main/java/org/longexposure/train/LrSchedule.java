package org.longexposure.train;

import java.util.Locale;

/**
 * Learning rate at a 1-based optimizer step, as {@code transformers}' schedulers: linear warm-up from 0 over
 * {@code warmupSteps}, then constant, linear decay to 0, or cosine decay to 0 at {@code totalSteps}.
 * ({@code get_constant_schedule_with_warmup}, {@code get_linear_schedule_with_warmup},
 * {@code get_cosine_schedule_with_warmup}; HF evaluates the factor at the number of steps already taken.)
 */
public record LrSchedule(Kind kind, double peakLr, int warmupSteps, int totalSteps) {
    /** Shape of the decay after warm-up. */
    public enum Kind {
        CONSTANT, LINEAR, COSINE;

        public static Kind parse(String s) {
            try {
                return valueOf(s.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown schedule '" + s + "'; expected constant, linear or cosine");
            }
        }
    }

    public LrSchedule {
        if (warmupSteps < 0 || totalSteps < 0) {
            throw new IllegalArgumentException("warm-up and total steps must be >= 0");
        }
    }

    public static LrSchedule constant(double lr) {
        return new LrSchedule(Kind.CONSTANT, lr, 0, 0);
    }

    /** The rate used by optimizer step {@code step} (1-based). */
    public double at(int step) {
        int done = step - 1; // HF's LambdaLR factor is evaluated at the count of completed steps
        if (done < warmupSteps) {
            return peakLr * done / Math.max(1, warmupSteps);
        }
        return switch (kind) {
            case CONSTANT -> peakLr;
            case LINEAR -> peakLr * Math.max(0.0,
                    (double) (totalSteps - done) / Math.max(1, totalSteps - warmupSteps));
            case COSINE -> {
                double progress = (double) (done - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
                yield peakLr * Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * progress)));
            }
        };
    }
}
