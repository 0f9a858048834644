package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.PredictChecks;
import org.longexposure.backend.PredictOps;
import org.longexposure.backend.SelectionRule;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The predictor ops on the CPU ({@link PredictOps} documents the formulas and the selection rule): F32
 * activations, F64 masses and scores, I32 masks and layouts. Pooling runs in parallel over the B·nB pooled rows,
 * the tile masses over the NH·nB query-block rows and the neuron-block scores over the token blocks; each output
 * element is computed by one thread in the documented order, so results do not depend on the thread count.
 * The selections are tiny (at most nB or nb candidates per row) and run on the calling thread. Nothing is saved.
 */
final class CpuPredict implements PredictOps {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfDouble D = ValueLayout.JAVA_DOUBLE_UNALIGNED;

    private final CpuThreads threads;
    private final PredictChecks checks = new PredictChecks(CpuChecks::require, DType.F32);

    CpuPredict(CpuThreads threads) {
        this.threads = threads;
    }

    @Override
    public void blockMeanPool(Tensor pooled, Tensor counts, Tensor x, Tensor keyMask, int batchSize, int seqLen,
                              int block) {
        int c = checks.blockMeanPool(pooled, counts, x, keyMask, batchSize, seqLen, block);
        int nB = (seqLen + block - 1) / block;
        MemorySegment xs = x.host();
        MemorySegment ms = keyMask.host();
        MemorySegment ps = pooled.host();
        MemorySegment cs = counts.host();
        threads.parallelFor(batchSize * nB, row -> {
            int b = row / nB;
            int i = row % nB;
            double[] sum = new double[c];
            int count = 0;
            for (int t = i * block; t < Math.min(seqLen, (i + 1) * block); t++) {
                long tok = (long) b * seqLen + t;
                if (ms.getAtIndex(I, tok) == 0) {
                    continue;
                }
                count++;
                for (int e = 0; e < c; e++) {
                    sum[e] += xs.getAtIndex(F, tok * c + e);
                }
            }
            for (int e = 0; e < c; e++) {
                ps.setAtIndex(F, (long) row * c + e, count == 0 ? 0f : (float) (sum[e] / count));
            }
            cs.setAtIndex(I, row, count);
        });
    }

    @Override
    public void tileMass(Tensor mass, Tensor qk, Tensor counts, Tensor gamma, int batchSize, int numHeads,
                         int rank) {
        int nB = checks.tileMass(mass, qk, counts, gamma, batchSize, numHeads, rank);
        int w = numHeads * rank;
        MemorySegment qks = qk.host();
        MemorySegment cs = counts.host();
        MemorySegment out = mass.host();
        float[] g = new float[numHeads];
        for (int h = 0; h < numHeads; h++) {
            g[h] = gamma.host().getAtIndex(F, h);
        }
        threads.parallelFor(numHeads * nB, hq -> {
            int h = hq / nB;
            int qb = hq % nB;
            double[] agg = new double[nB];
            double[] row = new double[qb + 1];
            for (int b = 0; b < batchSize; b++) {
                if (cs.getAtIndex(I, (long) b * nB + qb) == 0) {
                    continue;
                }
                long qOff = ((long) b * nB + qb) * 2 * w + (long) h * rank;
                double max = Double.NEGATIVE_INFINITY;
                for (int kb = 0; kb <= qb; kb++) {
                    int n = cs.getAtIndex(I, (long) b * nB + kb);
                    if (n == 0) {
                        continue;
                    }
                    long kOff = ((long) b * nB + kb) * 2 * w + w + (long) h * rank;
                    double s = 0;
                    for (int r = 0; r < rank; r++) {
                        s += (double) qks.getAtIndex(F, qOff + r) * qks.getAtIndex(F, kOff + r);
                    }
                    row[kb] = g[h] * s + Math.log(qb == kb ? (n + 1) / 2.0 : n);
                    max = Math.max(max, row[kb]);
                }
                double sum = 0;
                for (int kb = 0; kb <= qb; kb++) {
                    row[kb] = cs.getAtIndex(I, (long) b * nB + kb) > 0 ? Math.exp(row[kb] - max) : 0;
                    sum += row[kb];
                }
                for (int kb = 0; kb <= qb; kb++) {
                    agg[kb] += row[kb] / sum;
                }
            }
            for (int kb = 0; kb < nB; kb++) {
                out.setAtIndex(D, (long) hq * nB + kb, agg[kb]);
            }
        });
    }

    @Override
    public void attentionTileMass(Tensor mass, Tensor q, Tensor k, Tensor lse, Tensor keyMask, int batchSize,
                                  int seqLen, int numHeads, int block) {
        int hs = checks.attentionTileMass(mass, q, k, lse, keyMask, batchSize, seqLen, numHeads, block);
        int c = numHeads * hs;
        int nB = (seqLen + block - 1) / block;
        double scale = 1.0 / Math.sqrt(hs);
        MemorySegment qs = q.host();
        MemorySegment ks = k.host();
        MemorySegment ls = lse.host();
        MemorySegment ms = keyMask.host();
        MemorySegment out = mass.host();
        threads.parallelFor(batchSize * numHeads, bh -> {   // one (sequence, head) per task: its nB² tiles
            int b = bh / numHeads;
            int h = bh % numHeads;
            double[] tiles = new double[nB * nB];
            float[] qi = new float[hs];
            for (int i = 0; i < seqLen; i++) {
                long row = (long) b * seqLen + i;
                if (ms.getAtIndex(I, row) == 0) {
                    continue;
                }
                for (int e = 0; e < hs; e++) {
                    qi[e] = qs.getAtIndex(F, row * c + h * hs + e);
                }
                double rowLse = ls.getAtIndex(F, ((long) b * numHeads + h) * seqLen + i);
                int off = (i / block) * nB;
                for (int j = 0; j <= i; j++) {
                    long col = (long) b * seqLen + j;
                    if (ms.getAtIndex(I, col) == 0) {
                        continue;
                    }
                    double dot = 0;
                    for (int e = 0; e < hs; e++) {
                        dot += (double) qi[e] * ks.getAtIndex(F, col * c + h * hs + e);
                    }
                    tiles[off + j / block] += Math.exp(scale * dot - rowLse);
                }
            }
            long base = (long) bh * nB * nB;
            for (int t = 0; t < tiles.length; t++) {
                out.setAtIndex(D, base + t, tiles[t]);
            }
        });
    }

    @Override
    public void selectTiles(BlockLayout layout, Tensor mass, double coverage, double maxRowFraction) {
        checks.selectTiles(layout, mass, coverage, maxRowFraction);
        int nh = layout.numHeads();
        int nB = layout.numBlocks();
        MemorySegment ms = mass.host();
        MemorySegment rp = layout.rowPtr().host();
        MemorySegment ci = layout.colIdx().host();
        double[] v = new double[nB];
        boolean[] keep = new boolean[nB];
        int nnz = 0;
        rp.setAtIndex(I, 0, 0);
        for (int hq = 0; hq < nh * nB; hq++) {
            int qb = hq % nB;
            for (int kb = 0; kb <= qb; kb++) {
                v[kb] = ms.getAtIndex(D, (long) hq * nB + kb);
            }
            Arrays.fill(keep, 0, qb + 1, false);
            keep[qb] = true;
            keep[0] = true;
            SelectionRule.choose(v, qb + 1, coverage, SelectionRule.tileLimit(qb, maxRowFraction), keep);
            for (int kb = 0; kb <= qb; kb++) {
                if (keep[kb]) {
                    ci.setAtIndex(I, nnz++, kb);
                }
            }
            rp.setAtIndex(I, hq + 1, nnz);
        }
    }

    @Override
    public void neuronBlockScores(Tensor scores, Tensor z, Tensor keyMask, int tokenBlock, int ffn,
                                  int neuronBlock) {
        int rows = checks.neuronBlockScores(scores, z, keyMask, tokenBlock, ffn, neuronBlock);
        int nb = PredictChecks.neuronBlocks(ffn, neuronBlock);
        int nTB = (rows + tokenBlock - 1) / tokenBlock;
        MemorySegment zs = z.host();
        MemorySegment ms = keyMask.host();
        MemorySegment out = scores.host();
        double scale = 0x1p32;   // 2^SCORE_FRACTION_BITS
        threads.parallelFor(nTB, r -> {
            long[] s = new long[nb];
            int end = Math.min(rows, (r + 1) * tokenBlock);
            for (int t = r * tokenBlock; t < end; t++) {
                if (ms.getAtIndex(I, t) == 0) {
                    continue;
                }
                for (int j = 0; j < nb; j++) {
                    double width = Math.min(neuronBlock, ffn - j * neuronBlock);
                    s[j] += (long) (Math.min(Math.max((double) zs.getAtIndex(F, (long) t * nb + j), 0), width) * scale);
                }
            }
            for (int j = 0; j < nb; j++) {
                out.setAtIndex(D, (long) r * nb + j, (double) s[j] / scale);
            }
        });
    }

    @Override
    public void selectNeuronBlocks(NeuronLayout layout, Tensor scores, Tensor keyMask, double coverage) {
        int nb = checks.selectNeuronBlocks(layout, scores, keyMask, coverage);
        int rows = layout.rows();
        int tb = layout.tokenBlock();
        int nTB = layout.numTokenBlocks();
        MemorySegment ss = scores.host();
        MemorySegment ms = keyMask.host();
        MemorySegment rp = layout.rowPtr().host();
        MemorySegment bi = layout.blockIdx().host();
        int limit = Math.min(layout.maxBlocks(), nb);
        double[] v = new double[nb];
        boolean[] keep = new boolean[nb];
        int nnz = 0;
        rp.setAtIndex(I, 0, 0);
        for (int r = 0; r < nTB; r++) {
            boolean real = false;
            for (int t = r * tb; t < Math.min(rows, (r + 1) * tb) && !real; t++) {
                real = ms.getAtIndex(I, t) != 0;
            }
            Arrays.fill(keep, false);
            if (real) {
                for (int j = 0; j < nb; j++) {
                    v[j] = ss.getAtIndex(D, (long) r * nb + j);
                }
                SelectionRule.choose(v, nb, coverage, limit, keep);
            }
            for (int j = 0; j < nb; j++) {
                if (keep[j]) {
                    bi.setAtIndex(I, nnz++, j);
                }
            }
            rp.setAtIndex(I, r + 1, nnz);
        }
    }
}
