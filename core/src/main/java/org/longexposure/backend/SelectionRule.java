package org.longexposure.backend;

import java.util.Arrays;

/**
 * The predictors' selection rule of {@link PredictOps} on the host, shared by the CPU backend's selections and the
 * predictors' own host form, so that both keep exactly the same candidates: a coverage target under a budget.
 *
 * <pre>
 * v[0..n) ≥ 0, keep[] pre-marked with the forced candidates, L ≥ #forced the budget
 * total = Σ v[i] (ascending i); visit i by descending v[i], equal values by ascending i
 * before each visit: stop when kept ≥ L, or when coverage &lt; 1 and not covered &lt; coverage·total
 * visit: keep[i] = true (kept += 1 unless it was forced); covered += v[i]
 * </pre>
 * Nothing is allocated per call beyond the visiting order; all sums are in double.
 */
public final class SelectionRule {
    private SelectionRule() {
    }

    /**
     * Applies the rule to v[0..n), marking the kept candidates in {@code keep} (marks already set are the forced
     * candidates and stay).
     *
     * @param limit the budget L on the kept count, forced candidates included (n or more: no budget)
     */
    public static void choose(double[] v, int n, double coverage, int limit, boolean[] keep) {
        int kept = 0;
        double total = 0;
        for (int i = 0; i < n; i++) {
            total += v[i];
            kept += keep[i] ? 1 : 0;
        }
        if (kept >= limit || (coverage < 1 && !(total > 0))) {
            return;
        }
        if (coverage >= 1 && limit >= n) {
            Arrays.fill(keep, 0, n, true);
            return;
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(v[b], v[a]));
        double target = coverage * total;
        double covered = 0;
        for (int r = 0; r < n && kept < limit && (coverage >= 1 || covered < target); r++) {
            int i = order[r];
            if (!keep[i]) {
                keep[i] = true;
                kept++;
            }
            covered += v[i];
        }
    }

    /**
     * The tile budget of query-block row {@code qb}: {@code max(#forced, ceil(maxRowFraction·(qb + 1)))}, the
     * forced tiles being the diagonal and the sink (one tile when qb = 0).
     */
    public static int tileLimit(int qb, double maxRowFraction) {
        int forced = qb == 0 ? 1 : 2;
        return Math.max(forced, (int) Math.ceil(maxRowFraction * (qb + 1)));
    }
}
