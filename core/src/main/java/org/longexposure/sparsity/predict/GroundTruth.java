package org.longexposure.sparsity.predict;

/**
 * The true sparsity a dense forward shows, as the predictors are fitted and scored against it (the Exposer's
 * measures at predictor granularity; only real tokens, attention mask ≠ 0, count).
 *
 * <ul>
 *   <li>Attention tile masses {@code m[b][h][qb][kb] = Σ_{real i in qb} Σ_{real j in kb, j ≤ i} P_ij} with
 *       {@code P_ij = exp(scale·q_i·k_j − lse_i)} recomputed in float64 from the saved q, k (B, T, C) and row
 *       log-sum-exp (B, NH, T). Each real query row sums to 1, so a query-block row sums to its real queries.</li>
 *   <li>MLP activity per token and neuron block: {@code a[t][j] = #{n in block j : h[t, n] > 0}} from the FFN hidden
 *       state h (N, H), and its sums over the real rows of each token block.</li>
 * </ul>
 */
final class GroundTruth {
    private GroundTruth() {
    }

    static double[][][][] tileMass(float[] q, float[] k, float[] lse, int[] mask, int bsz, int t, int nh, int hs,
                                   int block) {
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

    /** a[t][j] (N, nb): active neurons of block j for row t (0 for padded rows). */
    static double[][] tokenActivity(float[] h, int[] mask, int rows, int ffn, int neuronBlock) {
        int nb = (ffn + neuronBlock - 1) / neuronBlock;
        double[][] a = new double[rows][nb];
        for (int t = 0; t < rows; t++) {
            if (mask[t] == 0) {
                continue;
            }
            int base = t * ffn;
            for (int n = 0; n < ffn; n++) {
                if (h[base + n] > 0) {
                    a[t][n / neuronBlock]++;
                }
            }
        }
        return a;
    }

    /** Per token block R of {@code tokenBlock} rows: Σ_{t in R} a[t][j]. */
    static double[][] blockActivity(double[][] tokenActivity, int tokenBlock) {
        int rows = tokenActivity.length;
        int nb = rows == 0 ? 0 : tokenActivity[0].length;
        int nTB = (rows + tokenBlock - 1) / tokenBlock;
        double[][] s = new double[nTB][nb];
        for (int t = 0; t < rows; t++) {
            for (int j = 0; j < nb; j++) {
                s[t / tokenBlock][j] += tokenActivity[t][j];
            }
        }
        return s;
    }

    /** Real rows per token block. */
    static int[] realRows(int[] mask, int rows, int tokenBlock) {
        int[] r = new int[(rows + tokenBlock - 1) / tokenBlock];
        for (int t = 0; t < rows; t++) {
            r[t / tokenBlock] += mask[t] != 0 ? 1 : 0;
        }
        return r;
    }
}
