package org.longexposure.sparsity.predict;

/**
 * The true sparsity a dense forward shows, as the predictors are fitted and scored against it (the Exposer's
 * measures at predictor granularity; only real tokens, attention mask ≠ 0, count). Attention tile masses come from
 * the Exposer's {@link org.longexposure.sparsity.exposer.TileMass}.
 *
 * <ul>
 *   <li>MLP activity per token and neuron block: {@code a[t][j] = #{n in block j : h[t, n] > 0}} from the FFN hidden
 *       state h (N, H), and its sums over the real rows of each token block.</li>
 * </ul>
 */
final class GroundTruth {
    private GroundTruth() {
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
