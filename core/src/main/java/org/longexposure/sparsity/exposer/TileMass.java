package org.longexposure.sparsity.exposer;

/**
 * Attention probability mass per (query-block, key-block) tile, recomputed in float64 from a dense forward's saved
 * q, k (B, T, C) and row log-sum-exp (B, NH, T): {@code m[b][h][qb][kb] = Σ_{real i in qb} Σ_{real j in kb, j ≤ i}
 * P_ij} with {@code P_ij = exp(q_i·k_j / sqrt(HS) − lse_i)}; only real tokens (attention mask ≠ 0) count. Each real
 * query row sums to 1, so a query-block row sums to its number of real queries. The Exposer reports these masses;
 * the predictors are fitted and scored against them.
 */
public final class TileMass {
    private TileMass() {
    }

    /** Tile masses per sequence and head, {@code [B][NH][nB][nB]} with nB = ceil(T / block). */
    public static double[][][][] perSequence(float[] q, float[] k, float[] lse, int[] mask, int bsz, int t,
                                             int nh, int hs, int block) {
        int c = nh * hs;
        int nQB = (t + block - 1) / block;
        double scale = 1.0 / Math.sqrt(hs);
        double[][][][] m = new double[bsz][nh][nQB][nQB];
        for (int b = 0; b < bsz; b++) {
            for (int h = 0; h < nh; h++) {
                double[][] tiles = m[b][h];
                for (int i = 0; i < t; i++) {
                    if (mask[b * t + i] == 0) {
                        continue;
                    }
                    int qOff = (b * t + i) * c + h * hs;
                    double rowLse = lse[(b * nh + h) * t + i];
                    double[] row = tiles[i / block];
                    for (int j = 0; j <= i; j++) {
                        if (mask[b * t + j] == 0) {
                            continue;
                        }
                        int kOff = (b * t + j) * c + h * hs;
                        double dot = 0;
                        for (int d = 0; d < hs; d++) {
                            dot += (double) q[qOff + d] * k[kOff + d];
                        }
                        row[j / block] += Math.exp(scale * dot - rowLse);
                    }
                }
            }
        }
        return m;
    }
}
