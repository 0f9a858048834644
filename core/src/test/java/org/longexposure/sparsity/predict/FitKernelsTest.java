package org.longexposure.sparsity.predict;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The predictor fit's two hot loops against their plain forms, bit for bit: the tiled {@code FᵀF} / {@code FᵀY}
 * accumulation against a per-token rank-one update (each element's products added in token order), and the
 * row-wise triangular solves of the ridge solve against a column-by-column solve. Sizes straddle the tiles (D > 256,
 * more than 128 real tokens, m > 256, a partial last tile) and the mask leaves out scattered tokens.
 */
class FitKernelsTest {
    @Test
    void tiledAccumulationEqualsPerTokenRankOneUpdates() {
        SplittableRandom rng = new SplittableRandom(11);
        int c = 300;
        int m = 270;
        int tokens = 301;
        float[] x = new float[tokens * c];
        float[] y = new float[tokens * m];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rng.nextDouble(-3, 3);
        }
        for (int i = 0; i < y.length; i++) {
            y[i] = (float) rng.nextDouble(-3, 3);
        }
        int[] mask = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            mask[t] = rng.nextDouble() < 0.8 ? 1 : 0;
        }
        int d = c + 1;
        double[] xtx = new double[d * d];
        double[] xty = new double[d * m];
        double[] refXtx = new double[d * d];
        double[] refXty = new double[d * m];
        for (int i = 0; i < xtx.length; i++) {      // accumulate onto earlier sums, as over micro-batches
            xtx[i] = refXtx[i] = rng.nextDouble(-1, 1);
        }
        for (int i = 0; i < xty.length; i++) {
            xty[i] = refXty[i] = rng.nextDouble(-1, 1);
        }
        PredictorFit.accumulate(xtx, xty, x, y, mask, c, m);
        double[] f = new double[d];
        for (int t = 0; t < tokens; t++) {
            if (mask[t] == 0) {
                continue;
            }
            for (int e = 0; e < c; e++) {
                f[e] = x[t * c + e];
            }
            f[c] = 1;
            for (int i = 0; i < d; i++) {
                for (int j = i; j < d; j++) {
                    refXtx[i * d + j] += f[i] * f[j];
                }
                for (int j = 0; j < m; j++) {
                    refXty[i * m + j] += f[i] * y[t * m + j];
                }
            }
        }
        assertThat(xtx).containsExactly(refXtx);
        assertThat(xty).containsExactly(refXty);

        double[] onlyY = refXty.clone();
        double[] before = refXty.clone();
        PredictorFit.accumulate(null, onlyY, x, y, new int[tokens], c, m);   // no real token: nothing added
        assertThat(onlyY).containsExactly(before);
    }

    @Test
    void rowWiseRidgeSolveEqualsColumnWiseSolve() {
        SplittableRandom rng = new SplittableRandom(12);
        int d = 45;
        int m = 37;
        int rows = 60;
        double[] g = new double[rows * d];
        for (int i = 0; i < g.length; i++) {
            g[i] = rng.nextDouble(-1, 1);
        }
        double[] a = new double[d * d];
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                for (int r = 0; r < rows; r++) {
                    a[i * d + j] += g[r * d + i] * g[r * d + j];
                }
            }
        }
        double[] b = new double[d * m];
        for (int i = 0; i < b.length; i++) {
            b[i] = rng.nextDouble(-2, 2);
        }
        double lambda = 1e-3;
        double[] x = Linalg.ridgeSolve(a, b, d, m, lambda);

        // the same Cholesky factor, then one right-hand side at a time
        double[] l = Linalg.ridgeCholesky(a, d, lambda);
        double[] ref = b.clone();
        for (int col = 0; col < m; col++) {
            for (int i = 0; i < d; i++) {
                double s = ref[i * m + col];
                for (int k = 0; k < i; k++) {
                    s -= l[i * d + k] * ref[k * m + col];
                }
                ref[i * m + col] = s / l[i * d + i];
            }
            for (int i = d - 1; i >= 0; i--) {
                double s = ref[i * m + col];
                for (int k = i + 1; k < d; k++) {
                    s -= l[k * d + i] * ref[k * m + col];
                }
                ref[i * m + col] = s / l[i * d + i];
            }
        }
        assertThat(x).containsExactly(ref);
    }

    /**
     * The eigensolver on sizes 1 to 64: random symmetric (indefinite) matrices, a diagonal one with ties, the zero
     * matrix and one with a fourfold eigenvalue: eigenvalues descending, S·v = λ·v to 1e-11 of ‖S‖, V orthonormal.
     */
    @Test
    void symmetricEigenSolvesItsEquations() {
        SplittableRandom rng = new SplittableRandom(13);
        for (int n : new int[] {1, 2, 3, 17, 64}) {
            double[] s = new double[n * n];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j <= i; j++) {
                    s[i * n + j] = s[j * n + i] = rng.nextDouble(-1, 1);
                }
            }
            check(s, n, "random " + n);
        }
        int n = 9;
        double[] diag = new double[n * n];
        double[] ties = {3, -1, 3, 0, 2, 2, 3, -1, 5};
        for (int i = 0; i < n; i++) {
            diag[i * n + i] = ties[i];
        }
        check(diag, n, "diagonal with ties");
        check(new double[n * n], n, "zero");
        // Q·diag(2, 2, 2, 2, 1, −3, 0.5, 7, 7)·Qᵀ with Q from the QR of a random matrix
        double[] g = new double[n * n];
        for (int i = 0; i < g.length; i++) {
            g[i] = rng.nextDouble(-1, 1);
        }
        double[] q = Linalg.qr(g, n, n, new double[n * n]);
        double[] lam = {2, 2, 2, 2, 1, -3, 0.5, 7, 7};
        double[] s = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                for (int k = 0; k < n; k++) {
                    s[i * n + j] += q[i * n + k] * lam[k] * q[j * n + k];
                }
            }
        }
        double[] values = check(s, n, "repeated");
        assertThat(values).containsExactly(new double[] {7, 7, 2, 2, 2, 2, 1, 0.5, -3},
                org.assertj.core.data.Offset.offset(1e-12));
    }

    private static double[] check(double[] s, int n, String what) {
        double[] v = new double[n * n];
        double[] values = Linalg.symmetricEigen(s, n, v);
        double norm = 0;
        for (double x : s) {
            norm += x * x;
        }
        norm = Math.max(Math.sqrt(norm), 1e-300);
        for (int c = 0; c < n; c++) {
            if (c > 0) {
                assertThat(values[c]).as("%s: descending", what).isLessThanOrEqualTo(values[c - 1]);
            }
            for (int i = 0; i < n; i++) {
                double sv = 0;
                for (int k = 0; k < n; k++) {
                    sv += s[i * n + k] * v[k * n + c];
                }
                assertThat(Math.abs(sv - values[c] * v[i * n + c])).as("%s: residual %d/%d", what, c, i)
                        .isLessThanOrEqualTo(1e-11 * norm);
            }
            for (int c2 = 0; c2 < n; c2++) {
                double dot = 0;
                for (int i = 0; i < n; i++) {
                    dot += v[i * n + c] * v[i * n + c2];
                }
                assertThat(dot).as("%s: orthonormal %d, %d", what, c, c2)
                        .isCloseTo(c == c2 ? 1 : 0, org.assertj.core.data.Offset.offset(1e-12));
            }
        }
        return values;
    }
}
