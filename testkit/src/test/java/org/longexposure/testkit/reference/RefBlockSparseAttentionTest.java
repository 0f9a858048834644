package org.longexposure.testkit.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.ToDoubleFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.testkit.GradCheck;
import org.longexposure.testkit.Rng;

/**
 * Proves {@link RefBlockSparseAttention}: the backward against central differences of {@code L = Σ out·W} on random
 * layouts with unlisted tiles, empty query blocks, partial last blocks and padding; the full layout against
 * {@link RefAttention}; a diagonal-only layout of block size 1 against its closed form; and bad layouts rejected.
 */
class RefBlockSparseAttentionTest {
    private static final int B = 2;
    private static final int NH = 2;
    private static final int HS = 3;
    private static final int C = NH * HS;

    @ParameterizedTest(name = "T={0} block={1} seed={2}")
    @CsvSource({"7, 2, 1", "9, 3, 2", "8, 1, 3", "10, 4, 4"})
    void backwardMatchesCentralDifferences(int T, int blockSize, long seed) {
        Rng rng = new Rng(seed);
        int n = B * T * C;
        double[] q = rng.normal(n, 0, 1.5);
        double[] k = rng.normal(n, 0, 1.5);
        double[] v = rng.normal(n);
        double[] w = rng.normal(n);
        double scale = 1 / Math.sqrt(HS);
        // Sequence 0: right padding plus a hole; sequence 1: first key padding plus a hole.
        int[] keyMask = new int[B * T];
        for (int t = 0; t < T; t++) {
            keyMask[t] = t < T - 2 && t != 2 ? 1 : 0;
            keyMask[T + t] = t >= 1 && t != T - 2 ? 1 : 0;
        }
        int nQB = (T + blockSize - 1) / blockSize;
        int[][] layout = randomLayout(rng, nQB);
        int[] rowPtr = layout[0];
        int[] colIdx = layout[1];

        double[] dQ = new double[n];
        double[] dK = new double[n];
        double[] dV = new double[n];
        RefBlockSparseAttention.backward(dQ, dK, dV, w, q, k, v, keyMask, rowPtr, colIdx, blockSize, B, T, NH, HS,
                scale);
        ToDoubleFunction<double[]> loss = x -> {
            double[] out = new double[n];
            RefBlockSparseAttention.forward(out, new double[B * NH * T], q, k, v, keyMask, rowPtr, colIdx, blockSize,
                    B, T, NH, HS, scale);
            return GradCheck.dot(out, w);
        };
        // The loss closes over q, k, v, which numericGradient perturbs in place.
        GradCheck.assertGradient("dQ", dQ, loss, q);
        GradCheck.assertGradient("dK", dK, loss, k);
        GradCheck.assertGradient("dV", dV, loss, v);

        // Rows that see no key: zero output and dQ, lse = -inf; keys no row sees: zero dK, dV.
        double[] out = new double[n];
        double[] lse = new double[B * NH * T];
        RefBlockSparseAttention.forward(out, lse, q, k, v, keyMask, rowPtr, colIdx, blockSize, B, T, NH, HS, scale);
        boolean[][][] listed = RefBlockSparseAttention.tiles(rowPtr, colIdx, blockSize, T, NH);
        int emptyRows = 0;
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int i = 0; i < T; i++) {
                    boolean sees = false;
                    for (int j = 0; j <= i; j++) {
                        sees |= keyMask[b * T + j] != 0 && listed[h][i / blockSize][j / blockSize];
                    }
                    if (!sees) {
                        emptyRows++;
                        assertEquals(Double.NEGATIVE_INFINITY, lse[(b * NH + h) * T + i]);
                        for (int d = 0; d < HS; d++) {
                            assertEquals(0.0, out[(b * T + i) * C + h * HS + d]);
                            assertEquals(0.0, dQ[(b * T + i) * C + h * HS + d]);
                        }
                    }
                }
            }
        }
        assertTrue(emptyRows > 0, "the case should contain rows that see no key");
    }

    @Test
    void fullLayoutEqualsDenseReference() {
        int T = 11;
        int bs = 3;
        int nQB = 4;
        Rng rng = new Rng(99);
        int n = B * T * C;
        double[] q = rng.normal(n);
        double[] k = rng.normal(n);
        double[] v = rng.normal(n);
        double[] dOut = rng.normal(n);
        int[] keyMask = new int[B * T];
        for (int t = 0; t < B * T; t++) {
            keyMask[t] = t % 5 == 3 ? 0 : 1;
        }
        int[] rowPtr = new int[NH * nQB + 1];
        int[] colIdx = new int[NH * nQB * (nQB + 1) / 2];
        int p = 0;
        for (int row = 0; row < NH * nQB; row++) {
            for (int kb = 0; kb <= row % nQB; kb++) {
                colIdx[p++] = kb;
            }
            rowPtr[row + 1] = p;
        }
        double scale = 0.6;
        double[][] sparse = {new double[n], new double[B * NH * T], new double[n], new double[n], new double[n]};
        double[][] dense = {new double[n], new double[B * NH * T], new double[n], new double[n], new double[n]};
        RefBlockSparseAttention.forward(sparse[0], sparse[1], q, k, v, keyMask, rowPtr, colIdx, bs, B, T, NH, HS,
                scale);
        RefBlockSparseAttention.backward(sparse[2], sparse[3], sparse[4], dOut, q, k, v, keyMask, rowPtr, colIdx, bs,
                B, T, NH, HS, scale);
        RefAttention.forward(dense[0], dense[1], q, k, v, keyMask, B, T, NH, HS, scale);
        RefAttention.backward(dense[2], dense[3], dense[4], dOut, q, k, v, keyMask, B, T, NH, HS, scale);
        for (int i = 0; i < 5; i++) {
            assertArrayEquals(dense[i], sparse[i], 1e-12, "output " + i);
        }
    }

    /** Block size 1, diagonal only: every query sees itself alone, so out_i = v_i and lse_i = scale·q_i·k_i. */
    @Test
    void diagonalLayoutOfSingleTokensIsTheIdentityOnV() {
        int T = 5;
        Rng rng = new Rng(3);
        int n = B * T * C;
        double[] q = rng.normal(n);
        double[] k = rng.normal(n);
        double[] v = rng.normal(n);
        int[] keyMask = {1, 1, 0, 1, 1, 0, 1, 1, 1, 1};
        int[] rowPtr = new int[NH * T + 1];
        int[] colIdx = new int[NH * T];
        for (int row = 0; row < NH * T; row++) {
            colIdx[row] = row % T;
            rowPtr[row + 1] = row + 1;
        }
        double[] out = new double[n];
        double[] lse = new double[B * NH * T];
        RefBlockSparseAttention.forward(out, lse, q, k, v, keyMask, rowPtr, colIdx, 1, B, T, NH, HS, 0.8);
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int i = 0; i < T; i++) {
                    double dot = 0;
                    for (int d = 0; d < HS; d++) {
                        dot += q[(b * T + i) * C + h * HS + d] * k[(b * T + i) * C + h * HS + d];
                    }
                    boolean real = keyMask[b * T + i] != 0;
                    assertEquals(real ? 0.8 * dot : Double.NEGATIVE_INFINITY, lse[(b * NH + h) * T + i], 1e-14);
                    for (int d = 0; d < HS; d++) {
                        int at = (b * T + i) * C + h * HS + d;
                        assertEquals(real ? v[at] : 0.0, out[at], 1e-15);
                    }
                }
            }
        }
    }

    @Test
    void rejectsBadLayouts() {
        int T = 4;
        double[] x = new double[B * T * C];
        double[] lse = new double[B * NH * T];
        int[] mask = new int[B * T];
        // T = 4, block 2: nQB = 2, rows (h0 qb0, h0 qb1, h1 qb0, h1 qb1).
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> RefBlockSparseAttention
                .forward(x, lse, x, x, x, mask, new int[] {0, 1, 3, 4, 6}, new int[] {0, 0, 1, 1, 0, 1}, 2, B, T,
                        NH, HS, 1));
        assertTrue(e.getMessage().contains("head 1, query block 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> RefBlockSparseAttention.forward(x, lse, x, x, x,
                mask, new int[] {0, 1, 3, 4}, new int[] {0, 0, 1, 0}, 2, B, T, NH, HS, 1));
        assertTrue(e.getMessage().startsWith("rowPtr"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> RefBlockSparseAttention.forward(x, lse, x, x, x,
                mask, new int[] {0, 1, 3, 2, 4}, new int[] {0, 0, 1, 0}, 2, B, T, NH, HS, 1));
        assertTrue(e.getMessage().startsWith("rowPtr[3]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> RefBlockSparseAttention.forward(x, lse, x, x, x,
                mask, new int[] {0, 1, 3, 4, 6}, new int[] {0, 1, 0, 0, 0, 1}, 2, B, T, NH, HS, 1));
        assertTrue(e.getMessage().contains("head 0, query block 1"), e.getMessage());
    }

    /**
     * A random causal layout for NH heads of nQB query blocks: each tile listed with probability 1/2, except that
     * query block 1 of head 0 lists nothing (a row of empty query rows) when nQB ≥ 2.
     */
    private static int[][] randomLayout(Rng rng, int nQB) {
        int[] rowPtr = new int[NH * nQB + 1];
        int[] colIdx = new int[Math.max(1, NH * nQB * (nQB + 1) / 2)];
        int p = 0;
        for (int row = 0; row < NH * nQB; row++) {
            int qb = row % nQB;
            for (int kb = 0; kb <= qb; kb++) {
                if (row != 1 && rng.nextDouble() < 0.5) {
                    colIdx[p++] = kb;
                }
            }
            rowPtr[row + 1] = p;
        }
        return new int[][] {rowPtr, colIdx};
    }
}
