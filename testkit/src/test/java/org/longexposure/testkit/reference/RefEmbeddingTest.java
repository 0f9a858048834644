package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.testkit.GradCheck.assertGradient;
import static org.longexposure.testkit.GradCheck.dot;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.testkit.Rng;

/** RefEmbedding: the scatter-add proven by central differences, repeated ids included. */
class RefEmbeddingTest {
    @ParameterizedTest
    @CsvSource({"1, 1, 1", "7, 5, 3", "9, 4, 13"})
    void backwardMatchesCentralDifferences(int n, int v, int c) {
        Rng rng = new Rng(n * 100L + v * 10L + c);
        int[] ids = rng.ints(n, v);
        if (n > 2) {
            ids[n - 1] = ids[0]; // a repeated id must collect both rows' gradients
        }
        double[] table = rng.normal(v * c);
        double[] dOut = rng.normal(n * c);
        double[] dTable = new double[v * c];
        RefEmbedding.backward(dTable, dOut, ids, n, c);
        assertGradient("embedding dTable", dTable, t -> {
            double[] out = new double[n * c];
            RefEmbedding.forward(out, ids, t, false, n, c);
            return dot(dOut, out);
        }, table);
    }

    @Test
    void accumulateAddsTheGatheredRows() {
        Rng rng = new Rng(8);
        int n = 5;
        int c = 3;
        double[] table = rng.normal(4 * c);
        int[] ids = {3, 0, 3, 1, 2};
        double[] base = rng.normal(n * c);
        double[] out = base.clone();
        RefEmbedding.forward(out, ids, table, true, n, c);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c; j++) {
                assertThat(out[i * c + j]).isEqualTo(base[i * c + j] + table[ids[i] * c + j]);
            }
        }
    }

    @Test
    void outOfRangeIdIsRejected() {
        assertThatThrownBy(() -> RefEmbedding.forward(new double[2], new int[] {0, 2}, new double[2], false, 2, 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ids[1] = 2");
    }
}
