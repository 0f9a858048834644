package org.longexposure.testkit.reference;

/**
 * Linear layer {@code y = x·Wᵀ + b} as {@code torch.nn.Linear}: x (M, K), W (N, K), b (N), y (M, N), all
 * row-major. Twin of {@code LinearOps}. Backward needs the forward's input x and the weight W.
 */
public final class RefLinear {
    private RefLinear() {
    }

    /** out = inp·weightᵀ + bias (overwrite). out (M, N), inp (M, K), weight (N, K), bias (N) or null. */
    public static void forward(double[] out, double[] inp, double[] weight, double[] bias, int m, int n, int k) {
        check("out", out, "inp", inp, weight, m, n, k);
        Dims.requireOptional("bias", bias, n);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = bias == null ? 0 : bias[j];
                for (int p = 0; p < k; p++) {
                    s += inp[i * k + p] * weight[j * k + p];
                }
                out[i * n + j] = s;
            }
        }
    }

    /**
     * out = inp·weightᵀ + bias + residual (overwrite): a linear layer whose output joins a residual stream.
     * out (M, N), inp (M, K), weight (N, K), bias (N) or null, residual (M, N).
     */
    public static void forwardResidual(double[] out, double[] inp, double[] weight, double[] bias, double[] residual,
                                       int m, int n, int k) {
        Dims.require("residual", residual, Dims.product(m, n));
        forward(out, inp, weight, bias, m, n, k);
        for (int i = 0; i < m * n; i++) {
            out[i] += residual[i];
        }
    }

    /** out += alpha·inp·weightᵀ (accumulate). out (M, N), inp (M, K), weight (N, K). */
    public static void forwardAccumulate(double[] out, double[] inp, double[] weight, double alpha, int m, int n,
                                         int k) {
        check("out", out, "inp", inp, weight, m, n, k);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    s += inp[i * k + p] * weight[j * k + p];
                }
                out[i * n + j] += alpha * s;
            }
        }
    }

    /**
     * dInp = (or += when accumulate) alpha·dOut·weight. dInp (M, K), dOut (M, N), weight (N, K).
     */
    public static void backwardInput(double[] dInp, double[] dOut, double[] weight, double alpha,
                                     boolean accumulate, int m, int n, int k) {
        check("dOut", dOut, "dInp", dInp, weight, m, n, k);
        for (int i = 0; i < m; i++) {
            for (int p = 0; p < k; p++) {
                double s = 0;
                for (int j = 0; j < n; j++) {
                    s += dOut[i * n + j] * weight[j * k + p];
                }
                dInp[i * k + p] = (accumulate ? dInp[i * k + p] : 0) + alpha * s;
            }
        }
    }

    /**
     * dWeight += alpha·dOutᵀ·inp; dBias += alpha·Σ_rows dOut. dWeight (N, K) or null, dBias (N) or null,
     * dOut (M, N), inp (M, K).
     */
    public static void backwardWeight(double[] dWeight, double[] dBias, double[] dOut, double[] inp, double alpha,
                                      int m, int n, int k) {
        Dims.require("dOut", dOut, Dims.product(m, n));
        Dims.require("inp", inp, Dims.product(m, k));
        Dims.requireOptional("dWeight", dWeight, Dims.product(n, k));
        Dims.requireOptional("dBias", dBias, n);
        for (int j = 0; j < n; j++) {
            if (dWeight != null) {
                for (int p = 0; p < k; p++) {
                    double s = 0;
                    for (int i = 0; i < m; i++) {
                        s += dOut[i * n + j] * inp[i * k + p];
                    }
                    dWeight[j * k + p] += alpha * s;
                }
            }
            if (dBias != null) {
                double s = 0;
                for (int i = 0; i < m; i++) {
                    s += dOut[i * n + j];
                }
                dBias[j] += alpha * s;
            }
        }
    }

    private static void check(String mnName, double[] mn, String mkName, double[] mk, double[] weight, int m,
                              int n, int k) {
        Dims.require(mnName + " (M, N)", mn, Dims.product(m, n));
        Dims.require(mkName + " (M, K)", mk, Dims.product(m, k));
        Dims.require("weight", weight, Dims.product(n, k));
    }
}
