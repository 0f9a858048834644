package org.longexposure.sparsity.permute;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The neuron orders on planted activity: 3 groups of co-firing neurons scattered over H = 45 (blocks of BN = 7,
 * the last one partial), each group firing on its own third of the token blocks, plus 5 neurons that never fire.
 * The union density is checked against a direct count, the greedy clustering must recover the grouping (a
 * density close to the planted optimum, far below the stored order's), and the frequency order puts the silent
 * neurons first.
 */
class CoactivationOrderTest {
    private static final int H = 45;
    private static final int R = 70;   // token blocks, more than one 64-bit word

    /** Planted activity: active[r][n]; group g = n % 3 for n < 40 fires on token blocks with r % 3 == g. */
    private static boolean[][] planted(SplittableRandom rng) {
        boolean[][] act = new boolean[R][H];
        for (int r = 0; r < R; r++) {
            for (int n = 0; n < 40; n++) {
                act[r][n] = r % 3 == n % 3 && rng.nextDouble() < 0.8;
            }
        }
        return act;
    }

    private static CoactivationOrder.Activity activity(boolean[][] act, int[] realRows) {
        long[][][] bits = new long[1][H][(R + 63) / 64];
        for (int r = 0; r < R; r++) {
            for (int n = 0; n < H; n++) {
                if (act[r][n]) {
                    bits[0][n][r >>> 6] |= 1L << r;
                }
            }
        }
        return new CoactivationOrder.Activity(H, 16, realRows, bits);
    }

    /** The union density by definition: per token block, the width of every block holding an active neuron. */
    private static double direct(boolean[][] act, int[] realRows, int[] order, int bn) {
        double num = 0;
        double den = 0;
        for (int r = 0; r < R; r++) {
            for (int i = 0; i < H; i++) {
                int start = i / bn * bn;
                boolean any = false;
                for (int j = start; j < Math.min(H, start + bn); j++) {
                    any |= act[r][order[j]];
                }
                num += any ? realRows[r] : 0;
                den += realRows[r];
            }
        }
        return num / den;
    }

    @Test
    void greedyRecoversPlantedGroupsAndDensitiesMatchADirectCount() {
        SplittableRandom rng = new SplittableRandom(3);
        boolean[][] act = planted(rng);
        int[] real = new int[R];
        for (int r = 0; r < R; r++) {
            real[r] = 1 + rng.nextInt(16);
        }
        CoactivationOrder.Activity a = activity(act, real);
        int bn = 7;
        int[] id = CoactivationOrder.identity(H);
        int[] greedy = CoactivationOrder.greedy(a, 0, bn);
        int[] freq = CoactivationOrder.byFrequency(a, 0);
        for (int[] o : new int[][] {id, greedy, freq}) {
            assertThat(o).as("a permutation").containsExactlyInAnyOrder(id);
            assertThat(CoactivationOrder.unionDensity(a, 0, o, bn)).isCloseTo(direct(act, real, o, bn),
                    org.assertj.core.data.Offset.offset(1e-12));
        }
        double identity = CoactivationOrder.unionDensity(a, 0, id, bn);
        double clustered = CoactivationOrder.unionDensity(a, 0, greedy, bn);
        assertThat(identity).as("stored order: every block mixes groups").isGreaterThan(0.85);
        // planted optimum: each group's ~13 neurons fill 2 blocks active on a third of the token blocks; the silent
        // 5 neurons and the mixed leftovers cost at most 2 more blocks active everywhere
        assertThat(clustered).isLessThan(0.55);
        for (int i = 0; i < 5; i++) {
            assertThat(freq[i]).as("silent neurons first").isGreaterThanOrEqualTo(40);
        }
    }
}
