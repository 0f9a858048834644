package org.longexposure.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.longexposure.io.data.Example;

/**
 * A seeded hold-out split: a permutation that is a pure function of the seed picks {@code ceil(fraction·n)}
 * samples for validation; the rest, in file order, are the training samples.
 */
record ValidationSplit(List<Example> train, List<Example> valid) {
    static ValidationSplit of(List<Example> all, double fraction, long seed) {
        int n = all.size();
        int held = (int) Math.ceil(fraction * n);
        if (held < 1 || held >= n) {
            throw new Main.UserException("--valid-split " + fraction + " of " + n + " samples leaves "
                    + (n - held) + " for training and " + held + " for validation; both need at least one");
        }
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        SplittableRandom rng = new SplittableRandom(seed ^ 0x5EEDL);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        boolean[] isValid = new boolean[n];
        for (int i = 0; i < held; i++) {
            isValid[order[i]] = true;
        }
        List<Example> train = new ArrayList<>(n - held);
        List<Example> valid = new ArrayList<>(held);
        for (int i = 0; i < n; i++) {
            (isValid[i] ? valid : train).add(all.get(i));
        }
        return new ValidationSplit(List.copyOf(train), List.copyOf(valid));
    }
}
