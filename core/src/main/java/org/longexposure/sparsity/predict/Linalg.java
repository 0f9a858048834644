package org.longexposure.sparsity.predict;

import java.util.Arrays;

/**
 * The small dense linear algebra the predictors' closed-form fits need, in float64 on row-major arrays: a ridge
 * least-squares solve through the normal equations (Cholesky), a modified Gram-Schmidt thin QR, Gram matrices,
 * upper Cholesky factors and triangular solves, and a Householder + implicit QR eigendecomposition of a small
 * symmetric matrix. Sizes here are at most (C+1) × (C+1), C the hidden size.
 */
final class Linalg {
    private Linalg() {
    }

    /**
     * X = (A + λ·mean(diag A)·I)⁻¹ B for a symmetric positive semi-definite A (d, d) and B (d, m): the ridge
     * solution of the normal equations A·X = B (A = FᵀF, B = FᵀY). The relative ridge λ keeps directions the data
     * never spans (e.g. the affine constraint of LayerNorm outputs) at zero instead of failing.
     */
    static double[] ridgeSolve(double[] a, double[] b, int d, int m, double lambda) {
        double[] l = ridgeCholesky(a, d, lambda);
        // Both triangular solves row by row over all m right-hand sides at once (contiguous rows of X); each
        // element subtracts its terms in the order of a per-column solve (k ascending), so the result is the same.
        double[] x = b.clone();
        double[] s = new double[m];
        for (int i = 0; i < d; i++) {               // L·Y = B: y_i = (b_i − Σ_{k<i} l_ik·y_k) / l_ii
            System.arraycopy(x, i * m, s, 0, m);
            subtractRows(s, x, l, i * d, 1, 0, i, m);
            divideInto(x, i * m, s, l[i * d + i]);
        }
        for (int i = d - 1; i >= 0; i--) {          // Lᵀ·X = Y: x_i = (y_i − Σ_{k>i} l_ki·x_k) / l_ii
            System.arraycopy(x, i * m, s, 0, m);
            subtractRows(s, x, l, (i + 1) * d + i, d, i + 1, d, m);
            divideInto(x, i * m, s, l[i * d + i]);
        }
        return x;
    }

    /**
     * L (d, d) lower triangular with L·Lᵀ = A + λ·mean(diag A)·I, A symmetric positive semi-definite (d, d); a pivot
     * that rounding drives to or below zero is clamped to ridge·1e-6.
     */
    static double[] ridgeCholesky(double[] a, int d, double lambda) {
        double trace = 0;
        for (int i = 0; i < d; i++) {
            trace += a[i * d + i];
        }
        double ridge = lambda * Math.max(trace / d, 1e-30);
        double[] l = new double[d * d];
        for (int i = 0; i < d; i++) {
            for (int j = 0; j <= i; j++) {
                double s = a[i * d + j] + (i == j ? ridge : 0);
                for (int k = 0; k < j; k++) {
                    s -= l[i * d + k] * l[j * d + k];
                }
                if (i == j) {
                    l[i * d + i] = Math.sqrt(Math.max(s, ridge * 1e-6));
                } else {
                    l[i * d + j] = s / l[j * d + j];
                }
            }
        }
        return l;
    }

    /**
     * s −= Σ_{k = k0}^{k1−1} coef_k · x_k, the rows x_k of x (rows of m) in ascending k, one rounding per term
     * (coef_k = l[c0 + (k − k0)·cStride]); four rows per pass over s, each element still subtracting them in order.
     */
    private static void subtractRows(double[] s, double[] x, double[] l, int c0, int cStride, int k0, int k1,
                                     int m) {
        int k = k0;
        int ci = c0;
        for (; k + 4 <= k1; k += 4, ci += 4 * cStride) {
            double l0 = l[ci];
            double l1 = l[ci + cStride];
            double l2 = l[ci + 2 * cStride];
            double l3 = l[ci + 3 * cStride];
            int o0 = k * m;
            int o1 = o0 + m;
            int o2 = o1 + m;
            int o3 = o2 + m;
            for (int col = 0; col < m; col++) {
                double v = s[col];
                v -= l0 * x[o0 + col];
                v -= l1 * x[o1 + col];
                v -= l2 * x[o2 + col];
                v -= l3 * x[o3 + col];
                s[col] = v;
            }
        }
        for (; k < k1; k++, ci += cStride) {
            double lk = l[ci];
            int o = k * m;
            for (int col = 0; col < m; col++) {
                s[col] -= lk * x[o + col];
            }
        }
    }

    private static void divideInto(double[] x, int off, double[] s, double div) {
        for (int col = 0; col < s.length; col++) {
            x[off + col] = s[col] / div;
        }
    }

    /**
     * G = XᵀX (k, k) of X (n, k) row-major. X is first transposed so that each entry is a dot product of two
     * contiguous columns; the upper triangle is computed in 4 × 4 tiles held in registers (8 loads per 16
     * multiply-adds, rows of X in order, one rounding per product and sum) and mirrored.
     */
    static double[] gram(double[] x, int n, int k) {
        double[] xt = new double[k * n];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < k; i++) {
                xt[i * n + t] = x[t * k + i];
            }
        }
        double[] g = new double[k * k];
        int k4 = k - k % 4;
        for (int i0 = 0; i0 < k; i0 += 4) {
            for (int j0 = i0; j0 < k; j0 += 4) {
                if (i0 < k4 && j0 < k4) {
                    gramTile(g, xt, n, k, i0, j0);
                } else {
                    for (int i = i0; i < Math.min(i0 + 4, k); i++) {
                        for (int j = Math.max(j0, i); j < Math.min(j0 + 4, k); j++) {
                            double sum = 0;
                            for (int t = 0; t < n; t++) {
                                sum += xt[i * n + t] * xt[j * n + t];
                            }
                            g[i * k + j] = sum;
                        }
                    }
                }
            }
        }
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < i; j++) {
                g[i * k + j] = g[j * k + i];
            }
        }
        return g;
    }

    /** The 4 × 4 tile of XᵀX at rows i0.., columns j0.. (j0 ≥ i0) from the transposed X (k, n). */
    private static void gramTile(double[] g, double[] xt, int n, int k, int i0, int j0) {
        double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
        double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
        int a0 = i0 * n;
        int a1 = a0 + n;
        int a2 = a1 + n;
        int a3 = a2 + n;
        int b0 = j0 * n;
        int b1 = b0 + n;
        int b2 = b1 + n;
        int b3 = b2 + n;
        for (int t = 0; t < n; t++) {
            double x0 = xt[a0 + t];
            double x1 = xt[a1 + t];
            double x2 = xt[a2 + t];
            double x3 = xt[a3 + t];
            double y0 = xt[b0 + t];
            double y1 = xt[b1 + t];
            double y2 = xt[b2 + t];
            double y3 = xt[b3 + t];
            s00 += x0 * y0;
            s01 += x0 * y1;
            s02 += x0 * y2;
            s03 += x0 * y3;
            s10 += x1 * y0;
            s11 += x1 * y1;
            s12 += x1 * y2;
            s13 += x1 * y3;
            s20 += x2 * y0;
            s21 += x2 * y1;
            s22 += x2 * y2;
            s23 += x2 * y3;
            s30 += x3 * y0;
            s31 += x3 * y1;
            s32 += x3 * y2;
            s33 += x3 * y3;
        }
        double[] tile = {s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33};
        for (int r = 0; r < 4; r++) {
            for (int c = 0; c < 4; c++) {
                if (j0 + c >= i0 + r) {   // the upper triangle (the diagonal tile's lower part is mirrored later)
                    g[(i0 + r) * k + j0 + c] = tile[r * 4 + c];
                }
            }
        }
    }

    /**
     * R (k, k) upper triangular with RᵀR = S for a symmetric positive definite S (k, k), or {@code null} when a pivot
     * is at or below 1e-12 of S's largest diagonal entry (S numerically singular).
     */
    static double[] choleskyUpper(double[] s, int k) {
        double maxDiag = 0;
        for (int i = 0; i < k; i++) {
            maxDiag = Math.max(maxDiag, s[i * k + i]);
        }
        double[] r = new double[k * k];
        for (int i = 0; i < k; i++) {
            double pivot = s[i * k + i];
            for (int t = 0; t < i; t++) {
                pivot -= r[t * k + i] * r[t * k + i];
            }
            if (!(pivot > 1e-12 * maxDiag)) {
                return null;
            }
            double rii = Math.sqrt(pivot);
            r[i * k + i] = rii;
            for (int j = i + 1; j < k; j++) {
                double sum = s[i * k + j];
                for (int t = 0; t < i; t++) {
                    sum -= r[t * k + i] * r[t * k + j];
                }
                r[i * k + j] = sum / rii;
            }
        }
        return r;
    }

    /** y (k) with R·y = b for an upper triangular R (k, k) with a non-zero diagonal. */
    static double[] solveUpper(double[] r, double[] b, int k) {
        double[] y = b.clone();
        for (int i = k - 1; i >= 0; i--) {
            double sum = y[i];
            for (int j = i + 1; j < k; j++) {
                sum -= r[i * k + j] * y[j];
            }
            y[i] = sum / r[i * k + i];
        }
        return y;
    }

    /**
     * Thin QR of A (n, k) by modified Gram-Schmidt: returns Q (n, k) with orthonormal columns and fills R (k, k),
     * upper triangular, with A = Q·R. A column dependent on the previous ones gets a zero Q column and R row.
     */
    static double[] qr(double[] a, int n, int k, double[] r) {
        double[] q = a.clone();
        java.util.Arrays.fill(r, 0);
        for (int j = 0; j < k; j++) {
            for (int i = 0; i < j; i++) {
                double dot = 0;
                for (int row = 0; row < n; row++) {
                    dot += q[row * k + i] * q[row * k + j];
                }
                r[i * k + j] = dot;
                for (int row = 0; row < n; row++) {
                    q[row * k + j] -= dot * q[row * k + i];
                }
            }
            double norm = 0;
            for (int row = 0; row < n; row++) {
                norm += q[row * k + j] * q[row * k + j];
            }
            norm = Math.sqrt(norm);
            r[j * k + j] = norm;
            for (int row = 0; row < n; row++) {
                q[row * k + j] = norm > 1e-12 ? q[row * k + j] / norm : 0;
            }
        }
        return q;
    }

    /**
     * Eigendecomposition of the symmetric S (n, n): returns the eigenvalues in descending order (equal ones by
     * ascending position on the reduced diagonal) and fills {@code vectors} (n, n) with the matching orthonormal
     * eigenvectors as columns. Two phases, each an orthogonal similarity accumulated into Q (S = Q·T·Qᵀ throughout):
     * Householder reflections reduce S to a tridiagonal T (reflection k zeroes column k below the subdiagonal), then
     * implicit QR steps with the Wilkinson shift of the trailing 2 × 2 block, each a chase of Givens rotations down
     * the unreduced block, until every subdiagonal entry is negligible (≤ 1e-15 of its two diagonal neighbours).
     * About 10·n³ flops, against ~60·n³ for the cyclic Jacobi sweeps this replaced.
     */
    static double[] symmetricEigen(double[] s, int n, double[] vectors) {
        double[] t = s.clone();
        double[] q = new double[n * n];
        for (int i = 0; i < n; i++) {
            q[i * n + i] = 1;
        }
        double[] v = new double[n];
        double[] w = new double[n];
        for (int k = 0; k + 2 < n; k++) {
            // reflection H = I − β·v·vᵀ (v zero above k + 1) mapping x = T[k+1.., k] onto α·e_{k+1}
            double norm = 0;
            for (int i = k + 1; i < n; i++) {
                norm += t[i * n + k] * t[i * n + k];
            }
            norm = Math.sqrt(norm);
            if (norm == 0) {
                continue;
            }
            double x0 = t[(k + 1) * n + k];
            double alpha = x0 > 0 ? -norm : norm;
            Arrays.fill(v, 0);
            for (int i = k + 1; i < n; i++) {
                v[i] = t[i * n + k];
            }
            v[k + 1] -= alpha;
            double vv = 0;
            for (int i = k + 1; i < n; i++) {
                vv += v[i] * v[i];
            }
            if (vv == 0) {
                continue;
            }
            double beta = 2 / vv;
            // H·T·H = T − v·wᵀ − w·vᵀ with p = β·T·v, w = p − (β/2)(vᵀp)·v, on rows and columns ≥ k
            double vp = 0;
            for (int i = k; i < n; i++) {
                double sum = 0;
                for (int j = k + 1; j < n; j++) {
                    sum += t[i * n + j] * v[j];
                }
                w[i] = beta * sum;
                vp += v[i] * w[i];
            }
            double half = beta / 2 * vp;
            for (int i = k; i < n; i++) {
                w[i] -= half * v[i];
            }
            for (int i = k; i < n; i++) {
                for (int j = k; j < n; j++) {
                    t[i * n + j] -= v[i] * w[j] + w[i] * v[j];
                }
            }
            for (int i = k + 2; i < n; i++) {   // exactly zero, not rounding noise
                t[i * n + k] = 0;
                t[k * n + i] = 0;
            }
            for (int r = 0; r < n; r++) {        // Q ← Q·H
                double sum = 0;
                for (int j = k + 1; j < n; j++) {
                    sum += q[r * n + j] * v[j];
                }
                sum *= beta;
                for (int j = k + 1; j < n; j++) {
                    q[r * n + j] -= sum * v[j];
                }
            }
        }
        int hi = n - 1;
        int steps = 0;
        while (hi > 0) {
            if (negligible(t, n, hi - 1)) {
                t[hi * n + hi - 1] = 0;
                t[(hi - 1) * n + hi] = 0;
                hi--;
                continue;
            }
            if (++steps > 30 * n) {
                throw new IllegalStateException("symmetric eigensolver: no convergence after " + (steps - 1)
                        + " QR steps (n = " + n + ")");
            }
            int lo = hi - 1;
            while (lo > 0 && !negligible(t, n, lo - 1)) {
                lo--;
            }
            // Wilkinson shift: the eigenvalue of the trailing 2 × 2 block nearer its last diagonal entry
            double dd = (t[(hi - 1) * n + hi - 1] - t[hi * n + hi]) / 2;
            double e = t[hi * n + hi - 1];
            double mu = t[hi * n + hi] - e * e / (dd + (dd >= 0 ? 1 : -1) * Math.hypot(dd, e));
            double x = t[lo * n + lo] - mu;
            double z = t[(lo + 1) * n + lo];
            for (int k = lo; k < hi; k++) {
                double r = Math.hypot(x, z);
                double c = r == 0 ? 1 : x / r;
                double sn = r == 0 ? 0 : z / r;
                int from = Math.max(lo, k - 1);
                int to = Math.min(hi, k + 2);
                for (int j = from; j <= to; j++) {   // rows k, k+1 ← G·rows
                    double a0 = t[k * n + j];
                    double a1 = t[(k + 1) * n + j];
                    t[k * n + j] = c * a0 + sn * a1;
                    t[(k + 1) * n + j] = -sn * a0 + c * a1;
                }
                for (int i = from; i <= to; i++) {   // columns k, k+1 ← columns·Gᵀ
                    double a0 = t[i * n + k];
                    double a1 = t[i * n + k + 1];
                    t[i * n + k] = c * a0 + sn * a1;
                    t[i * n + k + 1] = -sn * a0 + c * a1;
                }
                if (k > lo) {                         // the bulge this rotation chased
                    t[(k + 1) * n + k - 1] = 0;
                    t[(k - 1) * n + k + 1] = 0;
                }
                for (int row = 0; row < n; row++) {   // Q ← Q·Gᵀ
                    double q0 = q[row * n + k];
                    double q1 = q[row * n + k + 1];
                    q[row * n + k] = c * q0 + sn * q1;
                    q[row * n + k + 1] = -sn * q0 + c * q1;
                }
                if (k + 2 <= hi) {
                    x = t[(k + 1) * n + k];
                    z = t[(k + 2) * n + k];
                }
            }
        }
        Integer[] order = new Integer[n];
        double[] diag = new double[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
            diag[i] = t[i * n + i];
        }
        Arrays.sort(order, (a, b) -> Double.compare(diag[b], diag[a]));
        double[] values = new double[n];
        for (int c = 0; c < n; c++) {
            values[c] = diag[order[c]];
            for (int row = 0; row < n; row++) {
                vectors[row * n + c] = q[row * n + order[c]];
            }
        }
        return values;
    }

    /** Whether the subdiagonal entry T[i+1][i] is negligible next to T[i][i] and T[i+1][i+1]. */
    private static boolean negligible(double[] t, int n, int i) {
        double off = Math.abs(t[(i + 1) * n + i]);
        return off <= 1e-15 * (Math.abs(t[i * n + i]) + Math.abs(t[(i + 1) * n + i + 1])) || off < 1e-300;
    }
}
