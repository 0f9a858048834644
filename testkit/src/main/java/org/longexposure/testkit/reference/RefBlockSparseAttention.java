package org.longexposure.testkit.reference;

import java.util.Arrays;

/**
 * Float64 reference for block-sparse causal multi-head attention with a key padding mask: the twin of the
 * block-sparse attention of {@code org.longexposure.backend.SparseOps}, written for obviousness. It is masked dense
 * attention: the full (T, T) scores of one (b, h) are formed and every key outside the listed tiles gets score −∞,
 * exactly like the causal and padding masks.
 *
 * <p>Layout: q, k, v, out are (B, T, C) row-major with C = NH·HS, head h being columns {@code [h·HS, (h+1)·HS)};
 * keyMask is (B, T), nonzero for real tokens; lse is (B, NH, T). The tiles are {@code blockSize × blockSize}
 * tokens, nQB = ceil(T / blockSize); layout row {@code h·nQB + I} lists the key blocks
 * {@code colIdx[rowPtr[row] .. rowPtr[row+1])} that query block I of head h may see. Query i of sequence b sees key
 * j iff {@code j ≤ i}, {@code keyMask[b, j] != 0} and key block {@code j / blockSize} is listed in row
 * {@code h·nQB + i / blockSize}. A query with no visible key gets a zero output, {@code lse = -inf} and contributes
 * nothing to any gradient.
 *
 * <p>The backward recomputes P and uses the softmax Jacobian directly: {@code dP_ij = dOut_i·v_j},
 * {@code dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik)}, {@code dQ_i = scale Σ_j dS_ij k_j},
 * {@code dK_j = scale Σ_i dS_ij q_i}, {@code dV_j = Σ_i P_ij dOut_i}. Nothing is saved between the two calls.
 */
public final class RefBlockSparseAttention {
    private RefBlockSparseAttention() {
    }

    /**
     * {@code out = softmax(scale·q·kᵀ + masks)·v} and {@code lse_i = log Σ_j exp(scale·q_i·k_j)} over visible keys
     * (both overwritten).
     *
     * @param out       (B, T, C) with C = NH·HS
     * @param lse       (B, NH, T)
     * @param q         (B, T, C)
     * @param k         (B, T, C)
     * @param v         (B, T, C)
     * @param keyMask   (B, T), nonzero for real tokens, 0 for padding
     * @param rowPtr    (NH·nQB + 1)
     * @param colIdx    (≥ rowPtr[NH·nQB]) key block indices
     * @param blockSize tile edge in tokens
     */
    public static void forward(double[] out, double[] lse, double[] q, double[] k, double[] v, int[] keyMask,
                               int[] rowPtr, int[] colIdx, int blockSize, int B, int T, int NH, int HS,
                               double scale) {
        int C = NH * HS;
        long n = (long) B * T * C;
        Dims.require("out", out, n);
        Dims.require("lse", lse, (long) B * NH * T);
        Dims.require("q", q, n);
        Dims.require("k", k, n);
        Dims.require("v", v, n);
        Dims.require("keyMask", keyMask, (long) B * T);
        boolean[][][] tiles = tiles(rowPtr, colIdx, blockSize, T, NH);
        double[][] p = new double[T][T];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                double[] rowLse = probabilities(p, q, k, keyMask, tiles[h], blockSize, b, h, T, C, HS, scale);
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
     * @param dQ   (B, T, C)
     * @param dK   (B, T, C)
     * @param dV   (B, T, C)
     * @param dOut (B, T, C)
     */
    public static void backward(double[] dQ, double[] dK, double[] dV, double[] dOut, double[] q, double[] k,
                                double[] v, int[] keyMask, int[] rowPtr, int[] colIdx, int blockSize, int B, int T,
                                int NH, int HS, double scale) {
        int C = NH * HS;
        long n = (long) B * T * C;
        Dims.require("dQ", dQ, n);
        Dims.require("dK", dK, n);
        Dims.require("dV", dV, n);
        Dims.require("dOut", dOut, n);
        Dims.require("q", q, n);
        Dims.require("k", k, n);
        Dims.require("v", v, n);
        Dims.require("keyMask", keyMask, (long) B * T);
        boolean[][][] tiles = tiles(rowPtr, colIdx, blockSize, T, NH);
        Arrays.fill(dQ, 0);
        Arrays.fill(dK, 0);
        Arrays.fill(dV, 0);
        double[][] p = new double[T][T];
        double[][] dP = new double[T][T];
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                probabilities(p, q, k, keyMask, tiles[h], blockSize, b, h, T, C, HS, scale);
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
     * The layout as {@code listed[h][I][J]}, after checking it: rowPtr has NH·nQB + 1 entries, starts at 0 and
     * never decreases; each listed key block is in [0, nQB), ≤ its query block and strictly ascending in its row.
     */
    static boolean[][][] tiles(int[] rowPtr, int[] colIdx, int blockSize, int T, int NH) {
        if (blockSize < 1) {
            throw new IllegalArgumentException("blockSize: expected >= 1, got " + blockSize);
        }
        int nQB = (T + blockSize - 1) / blockSize;
        Dims.require("rowPtr", rowPtr, (long) NH * nQB + 1);
        if (rowPtr[0] != 0) {
            throw new IllegalArgumentException("rowPtr[0]: expected 0, got " + rowPtr[0]);
        }
        boolean[][][] listed = new boolean[NH][nQB][nQB];
        for (int row = 0; row < NH * nQB; row++) {
            int h = row / nQB;
            int qb = row % nQB;
            if (rowPtr[row + 1] < rowPtr[row] || rowPtr[row + 1] > colIdx.length) {
                throw new IllegalArgumentException("rowPtr[" + (row + 1) + "] = " + rowPtr[row + 1]
                        + ": expected in [" + rowPtr[row] + ", " + colIdx.length + "]");
            }
            for (int p = rowPtr[row]; p < rowPtr[row + 1]; p++) {
                int kb = colIdx[p];
                if (kb < 0 || kb > qb || (p > rowPtr[row] && kb <= colIdx[p - 1])) {
                    throw new IllegalArgumentException("colIdx[" + p + "] = " + kb + " (head " + h
                            + ", query block " + qb + "): expected ascending key blocks in [0, " + qb + "]");
                }
                listed[h][qb][kb] = true;
            }
        }
        return listed;
    }

    /**
     * Fills {@code p[i][j]} with the probabilities of head h of sequence b (0 for invisible keys, a zero row for a
     * query with no visible key) and returns the per-row log-sum-exp (−∞ for such a row).
     */
    private static double[] probabilities(double[][] p, double[] q, double[] k, int[] keyMask, boolean[][] listed,
                                          int blockSize, int b, int h, int T, int C, int HS, double scale) {
        double[] lse = new double[T];
        for (int i = 0; i < T; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < T; j++) {
                if (visible(keyMask, listed, blockSize, b, i, j, T)) {
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
                p[i][j] = visible(keyMask, listed, blockSize, b, i, j, T) ? Math.exp(p[i][j] - max) : 0;
                sum += p[i][j];
            }
            for (int j = 0; j < T; j++) {
                p[i][j] /= sum;
            }
            lse[i] = max + Math.log(sum);
        }
        return lse;
    }

    /** Causal, not padding, and in a listed tile. */
    private static boolean visible(int[] keyMask, boolean[][] listed, int blockSize, int b, int i, int j, int T) {
        return j <= i && keyMask[b * T + j] != 0 && listed[i / blockSize][j / blockSize];
    }

    private static int idx(int b, int t, int h, int d, int T, int C, int HS) {
        return (b * T + t) * C + h * HS + d;
    }
}
