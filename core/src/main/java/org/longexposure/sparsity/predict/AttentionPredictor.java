package org.longexposure.sparsity.predict;

import java.util.Arrays;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.SelectionRule;
import org.longexposure.sparsity.mask.BlockLayouts;

/**
 * One layer's attention-tile predictor (design note 5.1 and 13, "per-head rank-r Q̃/K̃ on mean-pooled input"):
 * scores (query-block, key-block) tiles of every head from the layer's attention input x (N, C) (pre-LN: LN1 of the
 * layer input), and turns the scores into a per-head causal {@link BlockLayout} shared by the micro-batch.
 *
 * <pre>
 * pool     x̄[b][qb] = [mean of x over the real tokens of block qb of sequence b, 1]      (D = C + 1)
 * project  q̃ = x̄·Pq_h,  k̃ = x̄·Pk_h                                                     Pq_h, Pk_h (D, R)
 * score    s[b][h][qb][kb] = q̃_qb·k̃_kb,  kb ≤ qb, kb holding a real key
 * predict  p̂[b][h][qb][·] = softmax_kb(γ_h·s + log n_kb),  n_kb = real keys of kb ((n+1)/2 on the diagonal)
 * layout   per head and query-block row: Σ_b p̂, then the largest tiles until they cover {@code coverage} of the
 *          row, plus the diagonal tile and the sink tile kb = 0 always; coverage ≥ 1 keeps every causal tile;
 *          under a budget ({@code maxRowFraction} &lt; 1) at most max(forced, ceil(maxRowFraction·(qb + 1))) tiles
 * </pre>
 * Why it works: q and k are affine in x, so the mean logit of a tile is exactly {@code scale·q̄_qb·k̄_kb}, a bilinear
 * form x̄_qbᵀ·G_h·x̄_kb of rank HS with {@code G_h = scale·Aq_h·Ak_hᵀ} (Aq_h: the (D, HS) affine map x̄ → q̄ of head
 * h). Pq_h·Pk_hᵀ is its best rank-R approximation (truncated SVD). The maps Aq, Ak are fitted by least squares on
 * saved (x, q) and (x, k) pairs, so a LoRA-modified q projection is absorbed when the fit sees its outputs.
 * γ_h (the softmax temperature mapping mean logits to tile masses) is fitted by one-dimensional Newton steps on the
 * cross-entropy between the true tile masses and p̂. {@code coverage} is calibrated on training data so that the
 * realised recall reaches the target mass (see {@link PredictorFit}).
 *
 * <p>Cost per micro-batch: O(N·C) pooling, O(B·nQB·D·R·NH) projections, O(B·NH·nQB²·R) scores: negligible next to
 * the attention itself. Parameters: {@code pq}, {@code pk} (NH, D, R) and {@code gamma} (NH), float.
 */
public final class AttentionPredictor {
    final int numHeads;
    final int dim;
    final int rank;
    final int block;
    final float[] pq;
    final float[] pk;
    final float[] gamma;
    double coverage;
    /** The tile budget per query-block row (see {@link SelectionRule#tileLimit}); 1 = none. */
    double maxRowFraction = 1.0;

    AttentionPredictor(int numHeads, int dim, int rank, int block, float[] pq, float[] pk, float[] gamma,
                       double coverage) {
        int d = dim + 1;
        if (pq.length != numHeads * d * rank || pk.length != pq.length || gamma.length != numHeads) {
            throw new IllegalArgumentException("attention predictor: expected projections of " + numHeads + " x "
                    + d + " x " + rank + " and " + numHeads + " temperatures, got " + pq.length + ", " + pk.length
                    + ", " + gamma.length);
        }
        this.numHeads = numHeads;
        this.dim = dim;
        this.rank = rank;
        this.block = block;
        this.pq = pq;
        this.pk = pk;
        this.gamma = gamma;
        this.coverage = coverage;
    }

    public int numHeads() {
        return numHeads;
    }

    public int rank() {
        return rank;
    }

    /** Tokens per tile side (the kernel's block). */
    public int block() {
        return block;
    }

    /** The calibrated fraction of each row's predicted mass the layout covers (≥ 1: every causal tile). */
    public double coverage() {
        return coverage;
    }

    /** The largest share of a query-block row's causal tiles a layout keeps (forced tiles aside); 1 = no budget. */
    public double maxRowFraction() {
        return maxRowFraction;
    }

    /** Sets the tile budget of {@link #maxRowFraction()}; must be in (0, 1]. */
    public void maxRowFraction(double fraction) {
        if (!(fraction > 0 && fraction <= 1)) {
            throw new IllegalArgumentException("attention predictor: max row fraction must be in (0, 1], got "
                    + fraction);
        }
        this.maxRowFraction = fraction;
    }

    /** The fitted per-head temperatures γ_h. */
    public float[] gamma() {
        return gamma.clone();
    }

    /**
     * The rank-R truncated SVD of each head's pooled-logit form {@code scale·Aq_h·Ak_hᵀ}. Per head, with Ak_h = Qk·Rk
     * (Rk upper triangular, from the Cholesky factor of the HS × HS Gram matrix Ak_hᵀ·Ak_h, so Qk = Ak_h·Rk⁻¹ is
     * never formed): G = Aq_h·Ak_hᵀ = M·Qkᵀ with M = Aq_h·Rkᵀ (D, HS); M = U·S·Vᵀ from the eigenvectors of MᵀM; the
     * left factors U·sqrt(S·scale), the right ones Qk·V·sqrt(S·scale) = Ak_h·(Rk⁻¹·V)·sqrt(S·scale). Every product
     * walks the (D, HS) matrices row by row. A head whose Ak_h is rank-deficient (a Cholesky pivot at or below 1e-12
     * of the largest diagonal entry) gets a thin QR of Ak_h instead.
     *
     * @param aq (D, C) the affine map [x, 1] → q, D = C + 1
     * @param ak (D, C) the affine map [x, 1] → k
     */
    static AttentionPredictor fromAffineMaps(double[] aq, double[] ak, int c, int numHeads, int rank, int block) {
        return fromAffineMaps(aq, ak, c, numHeads, rank, block, HostLoop.SEQUENTIAL);
    }

    /** {@link #fromAffineMaps} with the heads factorised through {@code heads} (each head writes its own rows). */
    static AttentionPredictor fromAffineMaps(double[] aq, double[] ak, int c, int numHeads, int rank, int block,
                                             HostLoop heads) {
        int d = c + 1;
        int hs = c / numHeads;
        int r = Math.min(rank, hs);
        float[] pq = new float[numHeads * d * rank];
        float[] pk = new float[numHeads * d * rank];
        double scale = 1.0 / Math.sqrt(hs);
        heads.run(numHeads, h -> {
            double[] aqh = columns(aq, d, c, h * hs, hs);
            double[] akh = columns(ak, d, c, h * hs, hs);
            double[] rk = Linalg.choleskyUpper(Linalg.gram(akh, d, hs), hs);
            double[] qk = null;
            if (rk == null) {
                rk = new double[hs * hs];
                qk = Linalg.qr(akh, d, hs, rk);
            }
            double[] m = aqTimesRkT(aqh, rk, d, hs);
            double[] v = new double[hs * hs];
            double[] ev = Linalg.symmetricEigen(Linalg.gram(m, d, hs), hs, v);
            for (int comp = 0; comp < r; comp++) {
                double sigma = Math.sqrt(Math.max(ev[comp], 0));
                if (sigma < 1e-12) {
                    continue;
                }
                double root = Math.sqrt(sigma * scale);
                double[] vc = new double[hs];
                for (int j = 0; j < hs; j++) {
                    vc[j] = v[j * hs + comp];
                }
                // right vector Qk·v: Ak_h·y with Rk·y = v (back substitution), or Q's columns directly
                double[] y = qk == null ? Linalg.solveUpper(rk, vc, hs) : vc;
                double[] right = qk == null ? akh : qk;
                for (int i = 0; i < d; i++) {
                    double u = 0;   // U[:, comp] = M·v / σ
                    double w = 0;
                    for (int j = 0; j < hs; j++) {
                        u += m[i * hs + j] * vc[j];
                        w += right[i * hs + j] * y[j];
                    }
                    pq[(h * d + i) * rank + comp] = (float) (u / sigma * root);
                    pk[(h * d + i) * rank + comp] = (float) (w * root);
                }
            }
        });
        float[] gamma = new float[numHeads];
        Arrays.fill(gamma, 1f);
        return new AttentionPredictor(numHeads, c, rank, block, pq, pk, gamma, 1.0);
    }

    /**
     * M = Aq·Rkᵀ (D, HS) for Aq (D, HS) and an upper triangular Rk (HS, HS): m[i][j] = Σ_{t ≥ j} aq[i][t]·rk[j][t],
     * t ascending; four rows of Aq at a time share each loaded rk entry (four independent sums in flight).
     */
    private static double[] aqTimesRkT(double[] aq, double[] rk, int d, int hs) {
        double[] m = new double[d * hs];
        int i = 0;
        for (; i + 4 <= d; i += 4) {
            int o0 = i * hs;
            int o1 = o0 + hs;
            int o2 = o1 + hs;
            int o3 = o2 + hs;
            for (int j = 0; j < hs; j++) {
                double s0 = 0;
                double s1 = 0;
                double s2 = 0;
                double s3 = 0;
                int rj = j * hs;
                for (int t = j; t < hs; t++) {   // (Rkᵀ)[t][j] = Rk[j][t]
                    double r = rk[rj + t];
                    s0 += aq[o0 + t] * r;
                    s1 += aq[o1 + t] * r;
                    s2 += aq[o2 + t] * r;
                    s3 += aq[o3 + t] * r;
                }
                m[o0 + j] = s0;
                m[o1 + j] = s1;
                m[o2 + j] = s2;
                m[o3 + j] = s3;
            }
        }
        for (; i < d; i++) {
            for (int j = 0; j < hs; j++) {
                double sum = 0;
                for (int t = j; t < hs; t++) {
                    sum += aq[i * hs + t] * rk[j * hs + t];
                }
                m[i * hs + j] = sum;
            }
        }
        return m;
    }

    private static double[] columns(double[] a, int rows, int cols, int from, int count) {
        double[] out = new double[rows * count];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(a, i * cols + from, out, i * count, count);
        }
        return out;
    }

    /**
     * The pooled attention input of one micro-batch, all the scores need of x: per sequence b and block qb the row
     * x̄ = [mean of x over the block's real tokens, 1] (all 0 for a block without real tokens), and the counts.
     *
     * @param means [B][nQB·D], D = C + 1
     * @param count [B][nQB] real tokens per block
     */
    record Pooled(double[][] means, int[][] count) {
    }

    /** The pooled input of x (B·T, C) on the host, in tiles of this predictor's block. */
    Pooled pool(float[] x, int[] mask, int bsz, int t) {
        int c = dim;
        int d = c + 1;
        int nQB = (t + block - 1) / block;
        double[][] means = new double[bsz][nQB * d];
        int[][] count = new int[bsz][nQB];
        for (int b = 0; b < bsz; b++) {
            double[] pooled = means[b];
            for (int i = 0; i < t; i++) {
                if (mask[b * t + i] == 0) {
                    continue;
                }
                int qb = i / block;
                count[b][qb]++;
                int off = (b * t + i) * c;
                for (int e = 0; e < c; e++) {
                    pooled[qb * d + e] += x[off + e];
                }
            }
            for (int qb = 0; qb < nQB; qb++) {
                int n = count[b][qb];
                for (int e = 0; e < c; e++) {
                    pooled[qb * d + e] = n == 0 ? 0 : pooled[qb * d + e] / n;
                }
                pooled[qb * d + c] = n == 0 ? 0 : 1;
            }
        }
        return new Pooled(means, count);
    }

    /**
     * Raw scores s[b][h][qb][kb] (kb ≤ qb) and the log key counts, from x (B·T, C) on the host.
     */
    Scores scores(float[] x, int[] mask, int bsz, int t) {
        return scores(pool(x, mask, bsz, t));
    }

    /** Raw scores of a pooled input (of this predictor's block size). */
    Scores scores(Pooled in) {
        int bsz = in.count().length;
        int nQB = in.count()[0].length;
        double[][][][] s = new double[bsz][numHeads][nQB][nQB];
        double[] qt = new double[nQB * rank];
        double[] kt = new double[nQB * rank];
        for (int b = 0; b < bsz; b++) {
            double[] pooled = in.means()[b];
            for (int h = 0; h < numHeads; h++) {
                project(pooled, pq, h, nQB, qt);
                project(pooled, pk, h, nQB, kt);
                for (int qb = 0; qb < nQB; qb++) {
                    for (int kb = 0; kb <= qb; kb++) {
                        double dot = 0;
                        for (int r = 0; r < rank; r++) {
                            dot += qt[qb * rank + r] * kt[kb * rank + r];
                        }
                        s[b][h][qb][kb] = dot;
                    }
                }
            }
        }
        return new Scores(s, in.count(), block);
    }

    private void project(double[] pooled, float[] p, int h, int nQB, double[] out) {
        int d = dim + 1;
        Arrays.fill(out, 0);
        for (int qb = 0; qb < nQB; qb++) {
            for (int e = 0; e < d; e++) {
                double xv = pooled[qb * d + e];
                if (xv == 0) {
                    continue;
                }
                int base = (h * d + e) * rank;
                for (int r = 0; r < rank; r++) {
                    out[qb * rank + r] += xv * p[base + r];
                }
            }
        }
    }

    /**
     * Raw tile scores of one micro-batch with the real-token counts of each block.
     *
     * @param s     [B][NH][nQB][nQB] raw scores (causal entries only)
     * @param count [B][nQB] real tokens per block
     */
    record Scores(double[][][][] s, int[][] count, int block) {
        int nQB() {
            return count[0].length;
        }

        /** log of the visible keys per query in tile (qb, kb): n_kb off the diagonal, (n+1)/2 on it. */
        double logKeys(int b, int qb, int kb) {
            int n = count[b][kb];
            return Math.log(qb == kb ? (n + 1) / 2.0 : n);
        }
    }

    /** p̂[b][h][qb][kb], rows without a real query all 0. */
    double[][][][] distribution(Scores sc) {
        int bsz = sc.count().length;
        int nQB = sc.nQB();
        double[][][][] p = new double[bsz][numHeads][nQB][nQB];
        for (int b = 0; b < bsz; b++) {
            for (int h = 0; h < numHeads; h++) {
                for (int qb = 0; qb < nQB; qb++) {
                    if (sc.count()[b][qb] == 0) {
                        continue;
                    }
                    double[] row = p[b][h][qb];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int kb = 0; kb <= qb; kb++) {
                        if (sc.count()[b][kb] > 0) {
                            row[kb] = gamma[h] * sc.s()[b][h][qb][kb] + sc.logKeys(b, qb, kb);
                            max = Math.max(max, row[kb]);
                        }
                    }
                    double sum = 0;
                    for (int kb = 0; kb <= qb; kb++) {
                        row[kb] = sc.count()[b][kb] > 0 ? Math.exp(row[kb] - max) : 0;
                        sum += row[kb];
                    }
                    for (int kb = 0; kb <= qb; kb++) {
                        row[kb] /= sum;
                    }
                }
            }
        }
        return p;
    }

    /** The tile grid [NH][nQB][nQB] this predictor keeps for the predicted distributions of a micro-batch. */
    static boolean[][][] select(double[][][][] dist, int numHeads, int nQB, double coverage) {
        return select(dist, numHeads, nQB, coverage, 1.0);
    }

    /**
     * The kept tiles [NH][nQB][nQB] for the per-sequence distributions {@code dist} [B][NH][nQB][nQB]: per row, Σ_b
     * of the distributions (b ascending), then {@link SelectionRule} with the diagonal and the sink forced and the
     * budget {@link SelectionRule#tileLimit}.
     */
    static boolean[][][] select(double[][][][] dist, int numHeads, int nQB, double coverage, double maxRowFraction) {
        boolean[][][] keep = new boolean[numHeads][nQB][nQB];
        double[] agg = new double[nQB];
        for (int h = 0; h < numHeads; h++) {
            for (int qb = 0; qb < nQB; qb++) {
                boolean[] row = keep[h][qb];
                row[qb] = true;
                row[0] = true;
                Arrays.fill(agg, 0);
                for (double[][][] seq : dist) {
                    for (int kb = 0; kb <= qb; kb++) {
                        agg[kb] += seq[h][qb][kb];
                    }
                }
                SelectionRule.choose(agg, qb + 1, coverage, SelectionRule.tileLimit(qb, maxRowFraction), row);
            }
        }
        return keep;
    }

    /** The tile grid for the attention input x (B·T, C) of one micro-batch. */
    boolean[][][] keep(float[] x, int[] mask, int bsz, int t) {
        Scores sc = scores(x, mask, bsz, t);
        return select(distribution(sc), numHeads, sc.nQB(), coverage, maxRowFraction);
    }

    /** The layout for the attention input x (B·T, C) of one micro-batch, allocated on {@code be}. */
    public BlockLayout layout(Backend be, float[] x, int[] mask, int bsz, int t) {
        return BlockLayouts.fromBooleans(keep(x, mask, bsz, t), t, block, be);
    }

    /**
     * Fits γ_h by Newton steps on CE(γ) = −Σ_rows Σ_kb m_kb·log p̂_γ(kb), convex in γ: the gradient is
     * Σ_rows (M·E_p̂[s] − Σ m·s) and the curvature Σ_rows M·Var_p̂[s], M = Σ_kb m_kb.
     *
     * @param scores the training micro-batches' raw scores
     * @param masses their true tile masses [B][NH][nQB][nQB]
     */
    void fitTemperature(java.util.List<Scores> scores, java.util.List<double[][][][]> masses) {
        for (int h = 0; h < numHeads; h++) {
            double g = 1;
            for (int iter = 0; iter < 30; iter++) {
                double grad = 0;
                double hess = 0;
                for (int mb = 0; mb < scores.size(); mb++) {
                    Scores sc = scores.get(mb);
                    double[][][][] m = masses.get(mb);
                    for (int b = 0; b < sc.count().length; b++) {
                        for (int qb = 0; qb < sc.nQB(); qb++) {
                            if (sc.count()[b][qb] == 0) {
                                continue;
                            }
                            double[] s = sc.s()[b][h][qb];
                            double max = Double.NEGATIVE_INFINITY;
                            for (int kb = 0; kb <= qb; kb++) {
                                if (sc.count()[b][kb] > 0) {
                                    max = Math.max(max, g * s[kb] + sc.logKeys(b, qb, kb));
                                }
                            }
                            double z = 0;
                            double e1 = 0;
                            double e2 = 0;
                            double mTot = 0;
                            double ms = 0;
                            for (int kb = 0; kb <= qb; kb++) {
                                if (sc.count()[b][kb] == 0) {
                                    continue;
                                }
                                double w = Math.exp(g * s[kb] + sc.logKeys(b, qb, kb) - max);
                                z += w;
                                e1 += w * s[kb];
                                e2 += w * s[kb] * s[kb];
                                mTot += m[b][h][qb][kb];
                                ms += m[b][h][qb][kb] * s[kb];
                            }
                            e1 /= z;
                            e2 /= z;
                            grad += mTot * e1 - ms;
                            hess += mTot * Math.max(e2 - e1 * e1, 0);
                        }
                    }
                }
                if (hess <= 1e-12) {
                    break;
                }
                double step = grad / hess;
                g = Math.max(0, g - step);
                if (Math.abs(step) < 1e-7 * Math.max(1, Math.abs(g))) {
                    break;
                }
            }
            gamma[h] = (float) g;
        }
    }
}
