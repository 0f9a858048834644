package org.longexposure.cuda.blas;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ColumnMajorGemmTest {
    /**
     * What cuBLASLt computes for the mapped problem, written from its column-major definition: element (i, j) of a
     * layout lives at {@code i + j·ld}; op N reads X(i, l), op T reads X(l, i); layouts must agree with the op.
     */
    private static double[] columnMajorProduct(ColumnMajorGemm g, double[] first, double[] second) {
        boolean firstT = g.opFirst() == CublasLt.CUBLAS_OP_T;
        boolean secondT = g.opSecond() == CublasLt.CUBLAS_OP_T;
        assertThat(firstT ? new long[] {g.firstCols(), g.firstRows()} : new long[] {g.firstRows(), g.firstCols()})
                .as("op(first) is m x k").containsExactly(g.m(), g.k());
        assertThat(secondT ? new long[] {g.secondCols(), g.secondRows()}
                : new long[] {g.secondRows(), g.secondCols()}).as("op(second) is k x n").containsExactly(g.k(), g.n());
        assertThat(new long[] {g.outRows(), g.outCols()}).containsExactly(g.m(), g.n());
        assertThat(g.firstLd()).isGreaterThanOrEqualTo(g.firstRows());
        assertThat(g.secondLd()).isGreaterThanOrEqualTo(g.secondRows());
        assertThat(g.outLd()).isGreaterThanOrEqualTo(g.outRows());
        double[] out = new double[(int) (g.outLd() * g.n())];
        for (int i = 0; i < g.m(); i++) {
            for (int j = 0; j < g.n(); j++) {
                double s = 0;
                for (int l = 0; l < g.k(); l++) {
                    double x = firstT ? first[(int) (l + i * g.firstLd())] : first[(int) (i + l * g.firstLd())];
                    double y = secondT ? second[(int) (j + l * g.secondLd())] : second[(int) (l + j * g.secondLd())];
                    s += x * y;
                }
                out[(int) (i + j * g.outLd())] = s;
            }
        }
        return out;
    }

    @Test
    void rowMajorProductEqualsTheMappedColumnMajorOne() {
        SplittableRandom rnd = new SplittableRandom(5);
        int[][] shapes = {{7, 5, 3}, {1, 9, 13}, {11, 1, 6}, {13, 17, 1}, {6, 6, 6}};
        for (int[] s : shapes) {
            for (int t = 0; t < 4; t++) {
                boolean transA = (t & 1) != 0;
                boolean transB = (t & 2) != 0;
                int m = s[0];
                int n = s[1];
                int k = s[2];
                int extra = rnd.nextInt(3);
                int lda = (transA ? m : k) + extra;
                int ldb = (transB ? k : n) + rnd.nextInt(3);
                int ldd = n + rnd.nextInt(3);
                // row-major storage: A is (m, k) or (k, m), B is (k, n) or (n, k)
                double[] a = random(rnd, (transA ? k : m) * lda);
                double[] b = random(rnd, (transB ? n : k) * ldb);
                ColumnMajorGemm g = ColumnMajorGemm.of(transA, transB, m, n, k, lda, ldb, ldd);
                double[] d = columnMajorProduct(g, b, a);
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double ref = 0;
                        for (int l = 0; l < k; l++) {
                            double opA = transA ? a[l * lda + i] : a[i * lda + l];
                            double opB = transB ? b[j * ldb + l] : b[l * ldb + j];
                            ref += opA * opB;
                        }
                        assertThat(d[i * ldd + j]).as("D[%d,%d] transA=%s transB=%s", i, j, transA, transB)
                                .isCloseTo(ref, org.assertj.core.data.Offset.offset(1e-12));
                    }
                }
            }
        }
    }

    @Test
    void rejectsLeadingDimensionsShorterThanARow() {
        assertThatThrownBy(() -> ColumnMajorGemm.of(false, false, 4, 5, 6, 5, 5, 5))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lda=5 (need >= 6)");
        assertThatThrownBy(() -> ColumnMajorGemm.of(true, true, 4, 5, 6, 4, 5, 5))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ldb=5 (need >= 6)");
        assertThatThrownBy(() -> ColumnMajorGemm.of(false, false, 4, 5, 6, 6, 5, 4))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ldd=4 (need >= 5)");
    }

    @Test
    void alignmentIsTheLargestPowerOfTwoUpTo256() {
        assertThat(CublasGemm.alignment(0x7000_0000_0000L)).isEqualTo(256);
        assertThat(CublasGemm.alignment(0x7000_0000_0100L + 2)).isEqualTo(2);
        assertThat(CublasGemm.alignment(0x7000_0000_0100L + 48)).isEqualTo(16);
    }

    private static double[] random(SplittableRandom rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = rnd.nextDouble(-1, 1);
        }
        return v;
    }
}
