package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The budgeted selection rule on small rows worked out by hand. */
class SelectionRuleTest {
    private static boolean[] run(double[] v, double coverage, int limit, int... forced) {
        boolean[] keep = new boolean[v.length];
        for (int f : forced) {
            keep[f] = true;
        }
        SelectionRule.choose(v, v.length, coverage, limit, keep);
        return keep;
    }

    @Test
    void withoutABudgetItIsTheCoverageRule() {
        double[] v = {0.1, 0.4, 0.2, 0.3};
        // visiting 1 (0.4) → 0.4 < 0.6, then 3 (0.3) → 0.7: stop before 2
        assertThat(run(v, 0.6, 4)).containsExactly(false, true, false, true);
        assertThat(run(v, 0.0, 4)).containsOnly(false);
        assertThat(run(v, 1.0, 4)).containsOnly(true);
        assertThat(run(new double[] {0, 0, 0}, 0.5, 3, 2)).containsExactly(false, false, true);
        assertThat(run(new double[] {0, 0, 0}, 1.0, 3)).containsOnly(true);
    }

    @Test
    void theBudgetCapsTheKeptCountForcedCandidatesIncluded() {
        double[] v = {0.1, 0.4, 0.2, 0.3, 0.05};
        // coverage 1 keeps the L largest
        assertThat(run(v, 1.0, 2)).containsExactly(false, true, false, true, false);
        assertThat(run(v, 1.0, 0)).containsOnly(false);
        // forced 0 and 4 use two of the three places: only the largest (1) joins them
        assertThat(run(v, 1.0, 3, 0, 4)).containsExactly(true, true, false, false, true);
        // a budget the forced ones already fill adds nothing
        assertThat(run(v, 1.0, 2, 0, 4)).containsExactly(true, false, false, false, true);
        // coverage binds first: 0.4 + 0.3 ≥ 0.6 · 1.05 stops before the budget of 4 is used
        assertThat(run(v, 0.6, 4)).containsExactly(false, true, false, true, false);
        // the budget binds first: coverage 0.95 would take 1, 3, 2, 0, the budget stops at two
        assertThat(run(v, 0.95, 2)).containsExactly(false, true, false, true, false);
        // a forced candidate visited on the way counts towards coverage but not twice towards the budget
        assertThat(run(v, 0.95, 3, 1)).containsExactly(false, true, true, true, false);
    }

    @Test
    void equalValuesAreVisitedByAscendingIndex() {
        double[] v = {0.2, 0.3, 0.3, 0.3, 0.2};
        assertThat(run(v, 1.0, 2)).containsExactly(false, true, true, false, false);
        assertThat(run(v, 1.0, 4)).containsExactly(true, true, true, true, false);
    }

    @Test
    void tileBudgetsAreAShareOfTheRowWithTheForcedTilesAsAFloor() {
        assertThat(SelectionRule.tileLimit(0, 0.15)).isEqualTo(1);
        assertThat(SelectionRule.tileLimit(1, 0.15)).isEqualTo(2);
        assertThat(SelectionRule.tileLimit(12, 0.15)).isEqualTo(2);   // ceil(1.95)
        assertThat(SelectionRule.tileLimit(13, 0.15)).isEqualTo(3);   // ceil(2.1)
        assertThat(SelectionRule.tileLimit(15, 1.0)).isEqualTo(16);
        assertThat(SelectionRule.tileLimit(9, 0.5)).isEqualTo(5);
    }
}
