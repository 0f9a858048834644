package org.longexposure.testkit.reference;

import java.util.Arrays;

/**
 * Float64 reference for causal multi-head attention with a key padding mask: the twin of
 * {@code org.longexposure.backend.AttentionOps}, written for obviousness (the full (T, T) score and probability
 * matrices of one (b, h) are materialised; plain loops, no threads).
 *
 * <p>Computes {@code out = softmax(scale·q·kᵀ + mask)·v} as in Hugging Face's OPT eager attention (scores, causal
 * and padding mask, softmax, times v), per head. Layout: q, k, v, out are (B, T, C) row-major with C = NH·HS, head h
 * being columns {@code [h·HS, (h+1)·HS)}; keyMask is (B, T), nonzero for real tokens; lse is (B, NH, T). Query i of
 * sequence b sees key j iff {@code j ≤ i} and {@code keyMask[b, j] != 0}. A query with no visible key gets a zero
 * output, {@code lse = -inf} and contributes nothing to any gradient.
 *
 * <p>The backward recomputes the probabilities P and uses the softmax Jacobian directly:
 * {@code dP_ij = dOut_i·v_j}, {@code dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik)}, {@code dQ_i = scale Σ_j dS_ij k_j},
 * {@code dK_j = scale Σ_i dS_ij q_i}, {@code dV_j = Σ_i P_ij dOut_i}. Nothing is saved between the two calls.
 */
public final class RefAttention {
    private RefAttention() {
    }

    /**
     * {@code out = softmax(scale·q·kᵀ + mask)·v} and {@code lse_i = log Σ_j exp(scale·q_i·k_j)} over visible keys
     * (both overwritten).
     *
     * @param out     (B, T, C) with C = NH·HS
     * @param lse     (B, NH, T)
     * @param q       (B, T, C)
     * @param k       (B, T, C)
     * @param v       (B, T, C)
     * @param keyMask (B, T), nonzero for real tokens, 0 for padding
     */
    public static void forward(double[] out, double[] lse, double[] q, double[] k, double[] v, int[] keyMask,
                               int B, int T, int NH, int HS, double scale) {
        int C = NH * HS;
        checkMask(keyMask, B, T);
        long n = (long) B * T * C;
        check("out", out, n);
        check("lse", lse, (long) B * NH * T);
        check("q", q, n);
        check("k", k, n);
        check("v", v, n);
        double[][] p = new double[T][T];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                double[] rowLse = probabilities(p, q, k, keyMask, b, h, T, C, HS, scale);
                for (int i = 0; i < T; i++) {
                    lse[(b * NH + h) * T + i] = rowLse[i];
                    for (int d = 0; d < HS; d++) {
                        double s = 0;
                        for (int j = 0; j < T; j++) {
                            s += p[i][j] * v[idx(b, j, h, d, T, C, HS)];
                        }
                        out[idx(b, i, h, d, T, C, HS)] = s;
                    }
                }
            }
        }
    }

    /**
     * dQ, dK, dV {@code =} (overwrite) the exact gradients of {@code Σ dOut·out} for the forward above.
     *
     * @param dQ      (B, T, C)
     * @param dK      (B, T, C)
     * @param dV      (B, T, C)
     * @param dOut    (B, T, C)
     * @param q       (B, T, C)
     * @param k       (B, T, C)
     * @param v       (B, T, C)
     * @param keyMask (B, T)
     */
    public static void backward(double[] dQ, double[] dK, double[] dV, double[] dOut, double[] q, double[] k,
                                double[] v, int[] keyMask, int B, int T, int NH, int HS, double scale) {
        int C = NH * HS;
        checkMask(keyMask, B, T);
        long n = (long) B * T * C;
        check("dQ", dQ, n);
        check("dK", dK, n);
        check("dV", dV, n);
        check("dOut", dOut, n);
        check("q", q, n);
        check("k", k, n);
        check("v", v, n);
        Arrays.fill(dQ, 0);
        Arrays.fill(dK, 0);
        Arrays.fill(dV, 0);
        double[][] p = new double[T][T];
        double[][] dP = new double[T][T];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                probabilities(p, q, k, keyMask, b, h, T, C, HS, scale);
                for (int i = 0; i < T; i++) {
                    for (int j = 0; j < T; j++) {
                        double s = 0;
                        for (int d = 0; d < HS; d++) {
                            s += dOut[idx(b, i, h, d, T, C, HS)] * v[idx(b, j, h, d, T, C, HS)];
                        }
                        dP[i][j] = s;
                    }
                }
                for (int i = 0; i < T; i++) {
                    double pdp = 0;
                    for (int j = 0; j < T; j++) {
                        pdp += p[i][j] * dP[i][j];
                    }
                    for (int j = 0; j < T; j++) {
                        double dS = p[i][j] * (dP[i][j] - pdp);
                        for (int d = 0; d < HS; d++) {
                            int ii = idx(b, i, h, d, T, C, HS);
                            int jj = idx(b, j, h, d, T, C, HS);
                            dQ[ii] += scale * dS * k[jj];
                            dK[jj] += scale * dS * q[ii];
                            dV[jj] += p[i][j] * dOut[ii];
                        }
                    }
                }
            }
        }
    }

    /**
     * Fills {@code p[i][j]} with the attention probabilities of head h of sequence b (0 for invisible keys, a zero
     * row for a query with no visible key) and returns the per-row log-sum-exp (−∞ for such a row).
     */
    private static double[] probabilities(double[][] p, double[] q, double[] k, int[] keyMask, int b, int h, int T,
                                          int C, int HS, double scale) {
        double[] lse = new double[T];
        for (int i = 0; i < T; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < T; j++) {
                if (visible(keyMask, b, i, j, T)) {
                    double s = 0;
                    for (int d = 0; d < HS; d++) {
                        s += q[idx(b, i, h, d, T, C, HS)] * k[idx(b, j, h, d, T, C, HS)];
                    }
                    p[i][j] = scale * s;
                    max = Math.max(max, p[i][j]);
                }
            }
            if (max == Double.NEGATIVE_INFINITY) {
                Arrays.fill(p[i], 0);
                lse[i] = Double.NEGATIVE_INFINITY;
                continue;
            }
            double sum = 0;
            for (int j = 0; j < T; j++) {
                p[i][j] = visible(keyMask, b, i, j, T) ? Math.exp(p[i][j] - max) : 0;
                sum += p[i][j];
            }
            for (int j = 0; j < T; j++) {
                p[i][j] /= sum;
            }
            lse[i] = max + Math.log(sum);
        }
        return lse;
    }

    private static boolean visible(int[] keyMask, int b, int i, int j, int T) {
        return j <= i && keyMask[b * T + j] != 0;
    }

    private static int idx(int b, int t, int h, int d, int T, int C, int HS) {
        return (b * T + t) * C + h * HS + d;
    }

    private static void checkMask(int[] keyMask, int B, int T) {
        if (keyMask.length != (long) B * T) {
            throw new IllegalArgumentException("keyMask: expected B·T = " + (long) B * T + " values, got "
                    + keyMask.length);
        }
    }

    private static void check(String what, double[] a, long n) {
        if (a.length != n) {
            throw new IllegalArgumentException(what + ": expected " + n + " values, got " + a.length);
        }
    }
}
