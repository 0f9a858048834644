package org.longexposure.testkit.reference;

/**
 * Embedding lookup as {@code torch.nn.Embedding}: {@code out[i] = table[ids[i]]}; table (V, C), ids (N),
 * out (N, C). Backward scatters: {@code dTable[ids[i]] += dOut[i]} (rows with repeated ids add up). Saves the
 * ids. Twin of {@code EmbeddingOps}.
 */
public final class RefEmbedding {
    private RefEmbedding() {
    }

    /** out = (or += when accumulate) table[ids]. V is table.length / c. */
    public static void forward(double[] out, int[] ids, double[] table, boolean accumulate, int n, int c) {
        Dims.require("out", out, Dims.product(n, c));
        int v = rows(table, c);
        checkIds(ids, n, v);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c; j++) {
                double t = table[ids[i] * c + j];
                out[i * c + j] = accumulate ? out[i * c + j] + t : t;
            }
        }
    }

    /** dTable += the scatter of dOut rows to ids. */
    public static void backward(double[] dTable, double[] dOut, int[] ids, int n, int c) {
        Dims.require("dOut", dOut, Dims.product(n, c));
        int v = rows(dTable, c);
        checkIds(ids, n, v);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c; j++) {
                dTable[ids[i] * c + j] += dOut[i * c + j];
            }
        }
    }

    private static int rows(double[] table, int c) {
        if (c <= 0 || table.length % c != 0) {
            throw new IllegalArgumentException("table of " + table.length + " elements is not (V, " + c + ")");
        }
        return table.length / c;
    }

    private static void checkIds(int[] ids, int n, int v) {
        Dims.require("ids", ids, n);
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= v) {
                throw new IllegalArgumentException("ids[" + i + "] = " + ids[i] + " is outside [0, " + v + ")");
            }
        }
    }
}
