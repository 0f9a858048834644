package org.longexposure.sparsity.predict;

/**
 * The small dense linear algebra the predictors' closed-form fits need, in float64 on row-major arrays: a ridge
 * least-squares solve through the normal equations (Cholesky), a modified Gram-Schmidt thin QR and a cyclic Jacobi
 * eigendecomposition of a small symmetric matrix. Sizes here are at most (C+1) × (C+1), C the hidden size.
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
     * Eigendecomposition of the symmetric S (n, n) by cyclic Jacobi rotations: returns the eigenvalues in
     * descending order and fills {@code vectors} (n, n) with the matching unit eigenvectors as columns.
     */
    static double[] symmetricEigen(double[] s, int n, double[] vectors) {
        double[] a = s.clone();
        double[] v = new double[n * n];
        for (int i = 0; i < n; i++) {
            v[i * n + i] = 1;
        }
        for (int sweep = 0; sweep < 60; sweep++) {
            double off = 0;
            double all = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    all += a[i * n + j] * a[i * n + j];
                    if (i != j) {
                        off += a[i * n + j] * a[i * n + j];
                    }
                }
            }
            if (off <= 1e-30 * Math.max(all, 1e-300)) {
                break;
            }
            for (int p = 0; p < n - 1; p++) {
                for (int q = p + 1; q < n; q++) {
                    double apq = a[p * n + q];
                    if (Math.abs(apq) < 1e-300) {
                        continue;
                    }
                    double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                    double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    if (theta == 0) {
                        t = 1;
                    }
                    double c = 1 / Math.sqrt(t * t + 1);
                    double sn = t * c;
                    for (int k = 0; k < n; k++) {       // A ← A·J
                        double akp = a[k * n + p];
                        double akq = a[k * n + q];
                        a[k * n + p] = c * akp - sn * akq;
                        a[k * n + q] = sn * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++) {       // A ← Jᵀ·A
                        double apk = a[p * n + k];
                        double aqk = a[q * n + k];
                        a[p * n + k] = c * apk - sn * aqk;
                        a[q * n + k] = sn * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++) {       // V ← V·J
                        double vkp = v[k * n + p];
                        double vkq = v[k * n + q];
                        v[k * n + p] = c * vkp - sn * vkq;
                        v[k * n + q] = sn * vkp + c * vkq;
                    }
                }
            }
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        double[] diag = new double[n];
        for (int i = 0; i < n; i++) {
            diag[i] = a[i * n + i];
        }
        java.util.Arrays.sort(order, (x, y) -> Double.compare(diag[y], diag[x]));
        double[] values = new double[n];
        for (int c = 0; c < n; c++) {
            values[c] = diag[order[c]];
            for (int row = 0; row < n; row++) {
                vectors[row * n + c] = v[row * n + order[c]];
            }
        }
        return values;
    }
}
