package org.longexposure.testkit.reference;

import java.util.Arrays;

/**
 * Long Exposure's neuron-block-sparse ReLU MLP in float64, written as the dense OPT MLP
 * ({@code fc2(relu(fc1(x)))}, HF {@code OPTDecoderLayer}) with a mask: row i computes hidden neuron n only if the
 * token block of i lists n's neuron block; every other hidden value is zero. Twin of {@code SparseOps}'
 * {@code sparseMlpForward}/{@code sparseMlpBackward}.
 * <pre>
 *   pre[i, n]  = b1[n] + Σ_k inp[i, k]·W1[n, k]
 *   h[i, n]    = mask[i, n] · relu(pre[i, n])
 *   out[i, c]  = b2[c] + Σ_n h[i, n]·W2[c, n]
 *   dH[i, n]   = mask[i, n] · [h[i, n] &gt; 0] · Σ_c dOut[i, c]·W2[c, n]
 *   dInp[i, k] = Σ_n dH[i, n]·W1[n, k];   dB1[n] += Σ_i dH[i, n] (listed n only);   dB2[c] += Σ_i dOut[i, c]
 * </pre>
 * Shapes, row-major: inp, out, dInp, dOut (N, C); W1 (H, C); W2 (C, H); b1 (H), b2 (C), either may be null; hidden
 * (N, maxBlocks·BN), the saved state, compacted: token block r puts its q-th listed block j (neurons
 * {@code [j·BN, j·BN + w_j)}, {@code w_j = min(BN, H − j·BN)}: the last block may be partial) in columns
 * {@code [q·BN, q·BN + w_j)} and zeros elsewhere. The backward reads h back from the compacted hidden. No weight
 * gradients: W1 and W2 are frozen. The work is that of the dense MLP, whatever the density.
 */
public final class RefSparseMlp {
    private RefSparseMlp() {
    }

    /**
     * Which neuron blocks each token block computes: compressed sparse rows over the {@code ceil(rows/tokenBlock)}
     * token blocks, as the engine's {@code NeuronLayout} with plain arrays.
     *
     * @param rows        N
     * @param tokenBlock  rows per token block
     * @param neuronBlock BN
     * @param maxBlocks   the compacted width is maxBlocks·BN
     * @param rowPtr      (nTB + 1), rowPtr[0] = 0, non-decreasing
     * @param blockIdx    at least rowPtr[nTB] entries, strictly ascending within a token block
     */
    public record Layout(int rows, int tokenBlock, int neuronBlock, int maxBlocks, int[] rowPtr, int[] blockIdx) {
        public Layout {
            if (rows < 1 || tokenBlock < 1 || neuronBlock < 1 || maxBlocks < 0) {
                throw new IllegalArgumentException("layout needs rows, tokenBlock, neuronBlock >= 1 and maxBlocks"
                        + " >= 0, got " + rows + ", " + tokenBlock + ", " + neuronBlock + ", " + maxBlocks);
            }
            int nTB = (rows + tokenBlock - 1) / tokenBlock;
            Dims.require("rowPtr", rowPtr, nTB + 1);
            if (rowPtr[0] != 0 || rowPtr[nTB] > blockIdx.length) {
                throw new IllegalArgumentException("rowPtr must start at 0 and end within blockIdx's "
                        + blockIdx.length + " entries, got " + rowPtr[0] + " .. " + rowPtr[nTB]);
            }
            for (int r = 0; r < nTB; r++) {
                int count = rowPtr[r + 1] - rowPtr[r];
                if (count < 0 || count > maxBlocks) {
                    throw new IllegalArgumentException("token block " + r + " lists " + count
                            + " blocks; expected 0 .. maxBlocks = " + maxBlocks);
                }
                for (int e = rowPtr[r] + 1; e < rowPtr[r + 1]; e++) {
                    if (blockIdx[e] <= blockIdx[e - 1]) {
                        throw new IllegalArgumentException("blockIdx of token block " + r
                                + " is not strictly ascending at entry " + e);
                    }
                }
            }
        }

        public int numTokenBlocks() {
            return rowPtr.length - 1;
        }

        /** The compacted hidden width maxBlocks·BN. */
        public int width() {
            return maxBlocks * neuronBlock;
        }

        /** The token block of row i. */
        int tokenBlockOf(int i) {
            return i / tokenBlock;
        }

        /** mask[i·H + n]: whether row i computes neuron n of an FFN of width h. */
        boolean[] mask(int h) {
            int nb = (h + neuronBlock - 1) / neuronBlock;
            boolean[] mask = new boolean[rows * h];
            for (int i = 0; i < rows; i++) {
                int r = tokenBlockOf(i);
                for (int e = rowPtr[r]; e < rowPtr[r + 1]; e++) {
                    int j = blockIdx[e];
                    if (j < 0 || j >= nb) {
                        throw new IllegalArgumentException("blockIdx[" + e + "] = " + j + " out of range for H = " + h
                                + " in blocks of " + neuronBlock);
                    }
                    for (int n = j * neuronBlock; n < Math.min(h, (j + 1) * neuronBlock); n++) {
                        mask[i * h + n] = true;
                    }
                }
            }
            return mask;
        }

        /**
         * The compacted column of neuron n for rows of token block r, or -1 when r does not list n's block:
         * {@code q·BN + (n − j·BN)} for the q-th listed block j.
         */
        int column(int r, int n) {
            int j = n / neuronBlock;
            for (int e = rowPtr[r]; e < rowPtr[r + 1]; e++) {
                if (blockIdx[e] == j) {
                    return (e - rowPtr[r]) * neuronBlock + n - j * neuronBlock;
                }
            }
            return -1;
        }
    }

    /**
     * out = b2 + mask⊙relu(inp·W1ᵀ + b1)·W2ᵀ (overwrite); hidden = the masked hidden state compacted (overwrite).
     *
     * @param out    (N, C)
     * @param hidden (N, maxBlocks·BN)
     * @param inp    (N, C)
     * @param w1     (H, C)
     * @param b1     (H) or null
     * @param w2     (C, H)
     * @param b2     (C) or null
     */
    public static void forward(double[] out, double[] hidden, double[] inp, double[] w1, double[] b1, double[] w2,
                               double[] b2, Layout layout, int c, int h) {
        int n = layout.rows();
        check(out, inp, w1, w2, layout, c, h);
        Dims.require("hidden", hidden, Dims.product(n, layout.width()));
        Dims.requireOptional("b1", b1, h);
        Dims.requireOptional("b2", b2, c);
        boolean[] mask = layout.mask(h);
        double[] hFull = new double[n * h];
        for (int i = 0; i < n; i++) {
            for (int u = 0; u < h; u++) {
                if (mask[i * h + u]) {
                    double s = b1 == null ? 0 : b1[u];
                    for (int k = 0; k < c; k++) {
                        s += inp[i * c + k] * w1[u * c + k];
                    }
                    hFull[i * h + u] = RefActivation.relu(s);
                }
            }
        }
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < c; o++) {
                double s = b2 == null ? 0 : b2[o];
                for (int u = 0; u < h; u++) {
                    s += hFull[i * h + u] * w2[o * h + u];
                }
                out[i * c + o] = s;
            }
        }
        int width = layout.width();
        Arrays.fill(hidden, 0);
        for (int i = 0; i < n; i++) {
            int r = layout.tokenBlockOf(i);
            for (int u = 0; u < h; u++) {
                int col = layout.column(r, u);
                if (col >= 0) {
                    hidden[i * width + col] = hFull[i * h + u];
                }
            }
        }
    }

    /**
     * out = residual + b2 + mask⊙relu(inp·W1ᵀ + b1)·W2ᵀ (overwrite): {@link #forward(double[], double[], double[],
     * double[], double[], double[], double[], Layout, int, int)} whose output joins a residual stream.
     *
     * @param residual (N, C)
     */
    public static void forwardResidual(double[] out, double[] hidden, double[] inp, double[] w1, double[] b1,
                                       double[] w2, double[] b2, double[] residual, Layout layout, int c, int h) {
        Dims.require("residual", residual, Dims.product(layout.rows(), c));
        forward(out, hidden, inp, w1, b1, w2, b2, layout, c, h);
        for (int i = 0; i < residual.length; i++) {
            out[i] += residual[i];
        }
    }

    /**
     * dInp = (overwrite) the input gradient; dB1 += the bias gradient at neurons some token block lists (others
     * untouched); dB2 += Σ_rows dOut. The ReLU mask is read from the compacted {@code hidden}.
     *
     * @param dInp   (N, C)
     * @param dB1    (H) or null
     * @param dB2    (C) or null
     * @param dOut   (N, C)
     * @param hidden (N, maxBlocks·BN), the forward's
     * @param w1     (H, C)
     * @param w2     (C, H)
     */
    public static void backward(double[] dInp, double[] dB1, double[] dB2, double[] dOut, double[] hidden,
                                double[] w1, double[] w2, Layout layout, int c, int h) {
        int n = layout.rows();
        check(dOut, dInp, w1, w2, layout, c, h);
        Dims.require("hidden", hidden, Dims.product(n, layout.width()));
        Dims.requireOptional("dB1", dB1, h);
        Dims.requireOptional("dB2", dB2, c);
        int width = layout.width();
        boolean[] mask = layout.mask(h);
        double[] dH = new double[n * h];
        for (int i = 0; i < n; i++) {
            int r = layout.tokenBlockOf(i);
            for (int u = 0; u < h; u++) {
                if (!mask[i * h + u]) {
                    continue;
                }
                double act = hidden[i * width + layout.column(r, u)];
                double s = 0;
                for (int o = 0; o < c; o++) {
                    s += dOut[i * c + o] * w2[o * h + u];
                }
                dH[i * h + u] = s * RefActivation.reluGrad(act);
            }
        }
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < c; k++) {
                double s = 0;
                for (int u = 0; u < h; u++) {
                    s += dH[i * h + u] * w1[u * c + k];
                }
                dInp[i * c + k] = s;
            }
        }
        if (dB1 != null) {
            for (int u = 0; u < h; u++) {
                boolean listed = false;
                double s = 0;
                for (int i = 0; i < n; i++) {
                    listed |= mask[i * h + u];
                    s += dH[i * h + u];
                }
                if (listed) {
                    dB1[u] += s;
                }
            }
        }
        if (dB2 != null) {
            for (int o = 0; o < c; o++) {
                double s = 0;
                for (int i = 0; i < n; i++) {
                    s += dOut[i * c + o];
                }
                dB2[o] += s;
            }
        }
    }

    private static void check(double[] outOrDOut, double[] inpOrDInp, double[] w1, double[] w2, Layout layout, int c,
                              int h) {
        int n = layout.rows();
        Dims.require("out/dOut (N, C)", outOrDOut, Dims.product(n, c));
        Dims.require("inp/dInp (N, C)", inpOrDInp, Dims.product(n, c));
        Dims.require("w1 (H, C)", w1, Dims.product(h, c));
        Dims.require("w2 (C, H)", w2, Dims.product(c, h));
    }
}
