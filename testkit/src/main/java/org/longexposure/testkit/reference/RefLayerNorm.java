package org.longexposure.testkit.reference;

/**
 * LayerNorm over the last dimension as {@code torch.nn.LayerNorm}: per row, {@code mean = Σx/C},
 * {@code var = Σ(x − mean)²/C} (biased), {@code rstd = 1/sqrt(var + eps)}, {@code xhat = (x − mean)·rstd},
 * {@code out = xhat·weight + bias}. inp and out (M, C); weight, bias (C) or null; mean, rstd (M) saved for the
 * backward. Twin of {@code NormOps}.
 *
 * <p>Backward, with {@code g = dOut·weight} (or dOut without a weight):
 * {@code dInp = rstd·(g − mean(g) − xhat·mean(g·xhat))} over the row; {@code dWeight += Σ_rows dOut·xhat};
 * {@code dBias += Σ_rows dOut}.
 */
public final class RefLayerNorm {
    private RefLayerNorm() {
    }

    /** out = (inp − mean)·rstd·weight + bias (overwrite); mean, rstd = the row statistics (overwrite). */
    public static void forward(double[] out, double[] mean, double[] rstd, double[] inp, double[] weight,
                               double[] bias, double eps, int m, int c) {
        Dims.require("out", out, Dims.product(m, c));
        Dims.require("mean", mean, m);
        Dims.require("rstd", rstd, m);
        Dims.require("inp", inp, Dims.product(m, c));
        Dims.requireOptional("weight", weight, c);
        Dims.requireOptional("bias", bias, c);
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int j = 0; j < c; j++) {
                s += inp[i * c + j];
            }
            double mu = s / c;
            double v = 0;
            for (int j = 0; j < c; j++) {
                double d = inp[i * c + j] - mu;
                v += d * d;
            }
            double r = 1 / Math.sqrt(v / c + eps);
            mean[i] = mu;
            rstd[i] = r;
            for (int j = 0; j < c; j++) {
                double xhat = (inp[i * c + j] - mu) * r;
                out[i * c + j] = xhat * (weight == null ? 1 : weight[j]) + (bias == null ? 0 : bias[j]);
            }
        }
    }

    /**
     * dInp = (or += when accumulate) the input gradient; dWeight, dBias += their gradients (either may be null).
     * mean and rstd are the forward's saved statistics.
     */
    public static void backward(double[] dInp, double[] dWeight, double[] dBias, double[] dOut, double[] inp,
                                double[] mean, double[] rstd, double[] weight, boolean accumulate, int m, int c) {
        Dims.require("dInp", dInp, Dims.product(m, c));
        Dims.requireOptional("dWeight", dWeight, c);
        Dims.requireOptional("dBias", dBias, c);
        Dims.require("dOut", dOut, Dims.product(m, c));
        Dims.require("inp", inp, Dims.product(m, c));
        Dims.require("mean", mean, m);
        Dims.require("rstd", rstd, m);
        Dims.requireOptional("weight", weight, c);
        for (int i = 0; i < m; i++) {
            double r = rstd[i];
            double meanG = 0;
            double meanGXhat = 0;
            for (int j = 0; j < c; j++) {
                double xhat = (inp[i * c + j] - mean[i]) * r;
                double g = dOut[i * c + j] * (weight == null ? 1 : weight[j]);
                meanG += g;
                meanGXhat += g * xhat;
            }
            meanG /= c;
            meanGXhat /= c;
            for (int j = 0; j < c; j++) {
                double xhat = (inp[i * c + j] - mean[i]) * r;
                double g = dOut[i * c + j] * (weight == null ? 1 : weight[j]);
                double d = r * (g - meanG - xhat * meanGXhat);
                dInp[i * c + j] = (accumulate ? dInp[i * c + j] : 0) + d;
                if (dWeight != null) {
                    dWeight[j] += dOut[i * c + j] * xhat;
                }
                if (dBias != null) {
                    dBias[j] += dOut[i * c + j];
                }
            }
        }
    }
}
