package org.longexposure.sparsity.exposer;

import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Attention probability mass per (query-block, key-block) tile, recomputed in float64 from a dense forward's saved
 * q, k (B, T, C) and row log-sum-exp (B, NH, T): {@code m[b][h][qb][kb] = Σ_{real i in qb} Σ_{real j in kb, j ≤ i}
 * P_ij} with {@code P_ij = exp(q_i·k_j / sqrt(HS) − lse_i)}; only real tokens (attention mask ≠ 0) count. Each real
 * query row sums to 1, so a query-block row sums to its number of real queries. The Exposer reports these masses;
 * the predictors are fitted and scored against them. {@link #perSequence} is the float64 definition on host
 * arrays; {@link OnBackend} has the backend compute the same masses where q and k already are
 * ({@code PredictOps.attentionTileMass}: the CPU bit for bit as here, a GPU with float dot products), so a large
 * model's refresh neither copies q and k to the host nor runs the B·NH·T²·HS loop there.
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

    /**
     * The masses computed by a backend, read back as {@code [B][NH][nB][nB]}; keeps its key-mask and mass tensors
     * for the next call (reallocated only when a micro-batch needs more). One per caller; not thread-safe.
     */
    public static final class OnBackend {
        private final Backend be;
        private Tensor mask;   // (capacity) I32
        private Tensor mass;   // (capacity) F64

        public OnBackend(Backend be) {
            this.be = be;
        }

        /**
         * @param q       (B, T, C) or (B·T, C) queries of a dense forward, on the backend
         * @param k       likewise, keys
         * @param lse     (B, NH, T) F32 row log-sum-exp
         * @param keyMask (B·T) attention mask (≠ 0: real token)
         */
        public double[][][][] perSequence(Tensor q, Tensor k, Tensor lse, int[] keyMask, int bsz, int t, int nh,
                                          int block) {
            int nB = (t + block - 1) / block;
            int cells = Math.multiplyExact(Math.multiplyExact(bsz, nh), nB * nB);
            if (mask == null || mask.numel() < keyMask.length) {
                mask = be.allocate(DType.I32, keyMask.length);
            }
            if (mass == null || mass.numel() < cells) {
                mass = be.allocate(DType.F64, cells);
            }
            Tensor m = mask.slice(0, keyMask.length);
            Tensor out = mass.slice(0, cells);
            Tensors.copyFrom(be, m, keyMask);
            be.predict().attentionTileMass(out, q, k, lse, m, bsz, t, nh, block);
            double[] flat = Tensors.toDoubles(be, out);
            double[][][][] r = new double[bsz][nh][nB][nB];
            int i = 0;
            for (int b = 0; b < bsz; b++) {
                for (int h = 0; h < nh; h++) {
                    for (int qb = 0; qb < nB; qb++) {
                        for (int kb = 0; kb < nB; kb++) {
                            r[b][h][qb][kb] = flat[i++];
                        }
                    }
                }
            }
            return r;
        }
    }
}
