package org.longexposure.sparsity.predict;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.FakeDeviceBackend;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.io.data.Batcher;
import org.longexposure.io.data.Example;
import org.longexposure.io.data.JsonlDataset;
import org.longexposure.io.data.TokenEncoder;
import org.longexposure.io.tokenizer.Tokenizer;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.SparsityPlan;
import org.longexposure.model.TokenEncoders;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The predictors applied with backend ops ({@link PredictorPlan}, {@link org.longexposure.backend.PredictOps})
 * against the host form ({@link AttentionPredictor#keep}, {@link MlpPredictor#keep}):
 * <ul>
 *   <li>the selection ops given the host form's masses and scores give the host form's layouts exactly, including
 *       ties, partial and padded blocks, coverage 0 (diagonal + sink; nothing for the MLP) and 1 (full);</li>
 *   <li>pooling is the double mean rounded once, tile masses and neuron-block scores agree with the host form to
 *       float rounding of the projections;</li>
 *   <li>the whole plan inside the model gives the host form's layouts on the opt-preln fixture and on the bundled
 *       opt-mini-256 with the e2e sample (these inputs have no near-ties at the rounding level: the comparison is
 *       exact), and on a device-like backend it moves no byte through the host after its first call.</li>
 * </ul>
 */
class PredictorPlanTest {
    private static AttentionPredictor randomAttention(SplittableRandom rng, int nh, int c, int rank, int block,
                                                      double coverage) {
        int d = c + 1;
        float[] pq = new float[nh * d * rank];
        float[] pk = new float[pq.length];
        float[] gamma = new float[nh];
        for (int i = 0; i < pq.length; i++) {
            pq[i] = (float) rng.nextDouble(-1, 1);
            pk[i] = (float) rng.nextDouble(-1, 1);
        }
        for (int h = 0; h < nh; h++) {
            gamma[h] = (float) rng.nextDouble(0.2, 2);
        }
        return new AttentionPredictor(nh, c, rank, block, pq, pk, gamma, coverage);
    }

    private static float[] randomFloats(SplittableRandom rng, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rng.nextDouble(-1, 1);
        }
        return x;
    }

    /** Sequence 0 is full; sequence b > 0 has its last 4·b tokens padded (a whole padded block when T allows). */
    private static int[] paddedMask(int bsz, int t) {
        int[] mask = new int[bsz * t];
        for (int b = 0; b < bsz; b++) {
            for (int i = 0; i < t; i++) {
                mask[b * t + i] = i < Math.max(1, t - 4 * b) ? 1 : 0;
            }
        }
        return mask;
    }

    private static Tensor doubles(Backend be, double[] v, long... dims) {
        Tensor t = be.allocate(DType.F64, dims);
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            var seg = arena.allocate(8L * v.length);
            for (int i = 0; i < v.length; i++) {
                seg.setAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, i, v[i]);
            }
            be.write(t, seg);
        }
        return t;
    }

    private static Tensor ints(Backend be, int[] v) {
        Tensor t = be.allocate(DType.I32, v.length);
        Tensors.copyFrom(be, t, v);
        return t;
    }

    /** Σ_b dist[b][h][qb][kb], b ascending: the mass tensor tileMass computes. */
    private static double[] aggregate(double[][][][] dist, int nh, int nB) {
        double[] agg = new double[nh * nB * nB];
        for (double[][][] seq : dist) {
            for (int h = 0; h < nh; h++) {
                for (int qb = 0; qb < nB; qb++) {
                    for (int kb = 0; kb <= qb; kb++) {
                        agg[(h * nB + qb) * nB + kb] += seq[h][qb][kb];
                    }
                }
            }
        }
        return agg;
    }

    private static BlockLayout emptyBlockLayout(Backend be, int nh, int t, int block) {
        int nB = (t + block - 1) / block;
        return new BlockLayout(block, nh, t, be.allocate(DType.I32, (long) nh * nB + 1),
                be.allocate(DType.I32, (long) nh * nB * (nB + 1) / 2));
    }

    private static boolean[][] toBooleans(Backend be, NeuronLayout l, int nb) {
        int[] ptr = Tensors.toInts(be, l.rowPtr());
        int[] idx = Tensors.toInts(be, l.blockIdx());
        boolean[][] keep = new boolean[l.numTokenBlocks()][nb];
        for (int r = 0; r < keep.length; r++) {
            for (int e = ptr[r]; e < ptr[r + 1]; e++) {
                if (e > ptr[r]) {
                    assertThat(idx[e]).as("blockIdx ascending in token block %d", r).isGreaterThan(idx[e - 1]);
                }
                keep[r][idx[e]] = true;
            }
        }
        return keep;
    }

    @ParameterizedTest
    @CsvSource({"0, 1", "0.3, 1", "0.7, 1", "0.95, 1", "1, 1", "0.7, 0.3", "1, 0.3", "1, 0.01", "0.95, 0.6"})
    void tileSelectionEqualsTheHostRuleOnTheHostMasses(double coverage, double fraction) {
        SplittableRandom rng = new SplittableRandom(11);
        int nh = 3;
        int c = 10;
        try (CpuBackend be = new CpuBackend(2)) {
            for (int[] tb : new int[][] {{11, 3}, {1, 4}, {13, 13}, {17, 4}, {40, 3}}) {
                int t = tb[0];
                int block = tb[1];
                int bsz = 3;
                int nB = (t + block - 1) / block;
                AttentionPredictor p = randomAttention(rng, nh, c, 2, block, coverage);
                int[] mask = paddedMask(bsz, t);
                double[][][][] dist = p.distribution(p.scores(randomFloats(rng, bsz * t * c), mask, bsz, t));
                boolean[][][] expect = AttentionPredictor.select(dist, nh, nB, coverage, fraction);
                BlockLayout layout = emptyBlockLayout(be, nh, t, block);
                be.predict().selectTiles(layout, doubles(be, aggregate(dist, nh, nB), nh, nB, nB), coverage,
                        fraction);
                boolean[][][] got = BlockLayouts.toBooleans(be, layout);
                assertThat(got).as("T %d block %d", t, block).isDeepEqualTo(expect);
                for (int h = 0; h < nh; h++) {
                    for (int qb = 0; qb < nB; qb++) {
                        int kept = 0;
                        for (int kb = 0; kb <= qb; kb++) {
                            kept += got[h][qb][kb] ? 1 : 0;
                        }
                        int budget = Math.max(qb == 0 ? 1 : 2, (int) Math.ceil(fraction * (qb + 1)));
                        assertThat(kept).as("row %d of head %d within its budget", qb, h).isLessThanOrEqualTo(budget);
                        if (coverage == 1) {
                            assertThat(kept).as("coverage 1 fills the budget").isEqualTo(Math.min(qb + 1, budget));
                        }
                    }
                }
                if (coverage == 1 && fraction == 1) {
                    assertThat(BlockLayouts.toBooleans(be, layout))
                            .isDeepEqualTo(BlockLayouts.toBooleans(be, BlockLayouts.full(nh, t, block, be)));
                }
                if (coverage == 0) {
                    for (int h = 0; h < nh; h++) {
                        for (int qb = 0; qb < nB; qb++) {
                            for (int kb = 0; kb < nB; kb++) {
                                assertThat(expect[h][qb][kb]).isEqualTo(kb == qb || kb == 0);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void equalMassesAreVisitedByAscendingKeyBlockLikeTheHostRule() {
        int nB = 6;
        double[][][][] dist = new double[1][1][nB][nB];
        // row 5: masses 0.1, 0.2, 0.2, 0.2, 0.1, 0.2 (sum 1): the three middle 0.2 tie
        dist[0][0][5] = new double[] {0.1, 0.2, 0.2, 0.2, 0.1, 0.2};
        dist[0][0][3] = new double[] {0.25, 0.25, 0.25, 0.25, 0, 0};
        dist[0][0][2] = new double[] {0, 0, 0, 0, 0, 0};
        try (CpuBackend be = new CpuBackend(1)) {
            for (double coverage : new double[] {0.3, 0.5, 0.55, 0.65, 0.9}) {
                boolean[][][] expect = AttentionPredictor.select(dist, 1, nB, coverage);
                BlockLayout layout = emptyBlockLayout(be, 1, nB * 2 - 1, 2);
                be.predict().selectTiles(layout, doubles(be, aggregate(dist, 1, nB), 1, nB, nB), coverage, 1.0);
                assertThat(BlockLayouts.toBooleans(be, layout)).as("coverage %s", coverage).isDeepEqualTo(expect);
            }
            // coverage 0.5 in row 5: sink and diagonal forced; visiting 1 (0.2), 2 (0.2) reaches 0.4 < 0.5, then
            // 3 (0.2) makes 0.6: kb 1, 2, 3 kept, 4 not
            boolean[][][] half = AttentionPredictor.select(dist, 1, nB, 0.5);
            assertThat(half[0][5]).containsExactly(true, true, true, true, false, true);
        }
    }

    @ParameterizedTest
    @CsvSource({"0, 6", "0.4, 6", "0.8, 6", "1, 6", "0.8, 2", "1, 2", "1, 0", "0.4, 9"})
    void neuronSelectionEqualsTheHostRuleOnTheHostScores(double coverage, int budget) {
        SplittableRandom rng = new SplittableRandom(12);
        int c = 9;
        int ffn = 45;
        int bn = 8;   // 6 blocks, the last of 5 neurons
        int nb = 6;
        try (CpuBackend be = new CpuBackend(2)) {
            for (int[] rt : new int[][] {{23, 5}, {7, 7}, {30, 4}}) {
                int rows = rt[0];
                int tb = rt[1];
                float[] w = randomFloats(rng, nb * (c + 1));
                MlpPredictor p = new MlpPredictor(c, ffn, bn, tb, w, coverage);
                p.maxBlocks(budget);
                int maxBlocks = Math.min(budget, nb);
                assertThat(p.maxBlocks()).isEqualTo(maxBlocks);
                int[] mask = new int[rows];
                for (int i = 0; i < rows; i++) {
                    mask[i] = i < rows - tb - 1 ? 1 : 0;   // the last token block (at least) has no real row
                }
                mask[2] = 0;
                float[] x = randomFloats(rng, rows * c);
                double[][] scores = p.blockScores(x, mask, rows);
                boolean[][] expect = p.keep(x, mask, rows);
                int nTB = scores.length;
                double[] flat = new double[nTB * nb];
                for (int r = 0; r < nTB; r++) {
                    System.arraycopy(scores[r], 0, flat, r * nb, nb);
                }
                NeuronLayout layout = new NeuronLayout(bn, tb, rows, maxBlocks, be.allocate(DType.I32, nTB + 1),
                        be.allocate(DType.I32, (long) nTB * Math.max(1, maxBlocks)));
                Tensor keyMask = ints(be, mask);
                be.predict().selectNeuronBlocks(layout, doubles(be, flat, nTB, nb), keyMask, coverage);
                boolean[][] got = toBooleans(be, layout, nb);
                assertThat(got).as("rows %d token block %d", rows, tb).isDeepEqualTo(expect);
                assertThat(got[nTB - 1]).as("a token block of padding lists nothing").containsOnly(false);
                if (coverage == 0) {
                    assertThat(Tensors.toInts(be, layout.rowPtr())[nTB]).isZero();
                }
                int[] rowPtr = Tensors.toInts(be, layout.rowPtr());
                for (int r = 0; r < nTB - 1; r++) {
                    int listed = rowPtr[r + 1] - rowPtr[r];
                    assertThat(listed).as("token block %d within the budget", r).isLessThanOrEqualTo(maxBlocks);
                    if (coverage == 1) {
                        assertThat(listed).as("coverage 1 fills the budget").isEqualTo(maxBlocks);
                    }
                }
                // the scores op on z = x·Wᵀ + b in float: the host form's scores up to that rounding
                float[] z = new float[rows * nb];
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < nb; j++) {
                        float s = w[j * (c + 1) + c];
                        for (int e = 0; e < c; e++) {
                            s += w[j * (c + 1) + e] * x[i * c + e];
                        }
                        z[i * nb + j] = s;
                    }
                }
                Tensor zt = be.allocate(DType.F32, rows, nb);
                Tensors.copyFrom(be, zt, z);
                Tensor st = be.allocate(DType.F64, nTB, nb);
                be.predict().neuronBlockScores(st, zt, keyMask, tb, ffn, bn);
                for (int r = 0; r < nTB; r++) {
                    for (int j = 0; j < nb; j++) {
                        assertThat(st.host().getAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, (long) r * nb + j))
                                .isCloseTo(scores[r][j], org.assertj.core.data.Offset.offset(1e-5));
                    }
                }
            }
        }
    }

    /**
     * neuronBlockScores adds 32.32 fixed-point terms: the scores are bit for bit the same whatever the order of the
     * rows inside a token block (here reversed), equal an independent long-integer sum of the truncated terms, and
     * are within rows·2^-32 of the exact sum; a token block of padding scores 0; a token block too long for the
     * fixed point is refused.
     */
    @Test
    void neuronBlockScoresAreFixedPointSumsIndependentOfRowOrder() {
        SplittableRandom rng = new SplittableRandom(31);
        int rows = 300;
        int tb = 100;
        int ffn = 50;
        int bn = 8;     // nb = 7, the last block 2 wide
        int nb = 7;
        float[] z = new float[rows * nb];
        int[] mask = new int[rows];
        for (int i = 0; i < rows; i++) {
            mask[i] = i >= 100 && i < 200 ? 0 : (rng.nextInt(5) == 0 ? 0 : 1);   // token block 1 is all padding
            for (int j = 0; j < nb; j++) {
                z[i * nb + j] = (float) (rng.nextDouble() * 12 - 3) * (rng.nextInt(7) == 0 ? 1e-9f : 1f);
            }
        }
        float[] zr = new float[rows * nb];
        int[] mr = new int[rows];
        for (int i = 0; i < rows; i++) {
            int block = i / tb;
            int src = block * tb + (tb - 1 - i % tb);   // rows reversed inside their token block
            System.arraycopy(z, src * nb, zr, i * nb, nb);
            mr[i] = mask[src];
        }
        try (CpuBackend be = new CpuBackend(2)) {
            double[] a = scores(be, z, mask, rows, nb, tb, ffn, bn);
            double[] b = scores(be, zr, mr, rows, nb, tb, ffn, bn);
            assertThat(b).as("rows reversed").containsExactly(a);
            for (int r = 0; r < rows / tb; r++) {
                for (int j = 0; j < nb; j++) {
                    double width = Math.min(bn, ffn - j * bn);
                    long fixed = 0;
                    double exact = 0;
                    for (int i = r * tb; i < (r + 1) * tb; i++) {
                        if (mask[i] != 0) {
                            double term = Math.min(Math.max(z[i * nb + j], 0.0), width);
                            fixed += (long) Math.floor(term * 4294967296.0);
                            exact += term;
                        }
                    }
                    assertThat(a[r * nb + j]).isEqualTo(fixed / 4294967296.0)
                            .isCloseTo(exact, org.assertj.core.data.Offset.offset(tb * 0x1p-32 + 1e-12));
                    if (r == 1) {
                        assertThat(a[r * nb + j]).as("padding").isZero();
                    }
                }
            }
            Tensor big = be.allocate(DType.F64, 1, 1);
            assertThatThrownBy(() -> be.predict().neuronBlockScores(big, be.allocate(DType.F32, 1 << 17, 1),
                    ints(be, new int[1 << 17]), 1 << 17, 1 << 15, 1 << 15))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("2^31");
        }
    }

    private static double[] scores(Backend be, float[] z, int[] mask, int rows, int nb, int tb, int ffn, int bn) {
        Tensor zt = be.allocate(DType.F32, rows, nb);
        Tensors.copyFrom(be, zt, z);
        Tensor st = be.allocate(DType.F64, (rows + tb - 1) / tb, nb);
        be.predict().neuronBlockScores(st, zt, ints(be, mask), tb, ffn, bn);
        return Tensors.toDoubles(be, st);
    }

    @Test
    void poolingIsTheDoubleMeanOfTheRealTokensAndTileMassesMatchTheHostForm() {
        SplittableRandom rng = new SplittableRandom(13);
        int nh = 2;
        int c = 7;
        int rank = 3;
        int bsz = 3;
        int t = 10;
        int block = 4;   // 3 blocks, the last partial; sequence 2 has its third block fully padded
        int nB = 3;
        AttentionPredictor p = randomAttention(rng, nh, c, rank, block, 0.5);
        int[] mask = paddedMask(bsz, t);
        float[] x = randomFloats(rng, bsz * t * c);
        try (CpuBackend be = new CpuBackend(2)) {
            Tensor xt = be.allocate(DType.F32, (long) bsz * t, c);
            Tensors.copyFrom(be, xt, x);
            Tensor pooled = be.allocate(DType.F32, (long) bsz * nB, c);
            Tensor counts = be.allocate(DType.I32, (long) bsz * nB);
            be.predict().blockMeanPool(pooled, counts, xt, ints(be, mask), bsz, t, block);
            float[] pv = Tensors.toFloats(be, pooled);
            int[] cv = Tensors.toInts(be, counts);
            for (int b = 0; b < bsz; b++) {
                for (int i = 0; i < nB; i++) {
                    int n = 0;
                    double[] sum = new double[c];
                    for (int tok = i * block; tok < Math.min(t, (i + 1) * block); tok++) {
                        if (mask[b * t + tok] != 0) {
                            n++;
                            for (int e = 0; e < c; e++) {
                                sum[e] += x[(b * t + tok) * c + e];
                            }
                        }
                    }
                    assertThat(cv[b * nB + i]).isEqualTo(n);
                    for (int e = 0; e < c; e++) {
                        assertThat(pv[(b * nB + i) * c + e]).isEqualTo(n == 0 ? 0f : (float) (sum[e] / n));
                    }
                }
            }
            assertThat(cv[2 * nB + 2]).as("a fully padded block").isZero();
            // projections as the plan forms them, then the masses against the host form's distribution
            PredictorPlan plan = new PredictorPlan(new Predictors(List.of(p), List.of()), be, true, false);
            BlockLayout layout = plan.attention(0, new SparsityPlan.Input(bsz, t, xt, mask, ints(be, mask)));
            double[][][][] dist = p.distribution(p.scores(x, mask, bsz, t));
            double[] agg = aggregate(dist, nh, nB);
            int w = nh * rank;
            Tensor qk = be.allocate(DType.F32, (long) bsz * nB, 2L * w);
            float[][] wq = project(p.pq, pv, bsz * nB, nh, c, rank);
            float[][] wk = project(p.pk, pv, bsz * nB, nh, c, rank);
            float[] packed = new float[bsz * nB * 2 * w];
            for (int row = 0; row < bsz * nB; row++) {
                System.arraycopy(wq[0], row * w, packed, row * 2 * w, w);
                System.arraycopy(wk[0], row * w, packed, row * 2 * w + w, w);
            }
            Tensors.copyFrom(be, qk, packed);
            Tensor gamma = be.allocate(DType.F32, nh);
            Tensors.copyFrom(be, gamma, p.gamma);
            Tensor mass = be.allocate(DType.F64, nh, nB, nB);
            be.predict().tileMass(mass, qk, counts, gamma, bsz, nh, rank);
            for (int i = 0; i < agg.length; i++) {
                assertThat(mass.host().getAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, i)).as("mass %d", i)
                        .isCloseTo(agg[i], org.assertj.core.data.Offset.offset(1e-5));
            }
            assertThat(BlockLayouts.toBooleans(be, layout)).isDeepEqualTo(p.keep(x, mask, bsz, t));
        }
    }

    /** [pooled, 1]·P_h in float for the rows of pooled (rows, C): the projections (rows, NH·R). */
    private static float[][] project(float[] pr, float[] pooled, int rows, int nh, int c, int rank) {
        float[] out = new float[rows * nh * rank];
        for (int i = 0; i < rows; i++) {
            for (int h = 0; h < nh; h++) {
                for (int r = 0; r < rank; r++) {
                    double s = pr[(h * (c + 1) + c) * rank + r];
                    for (int e = 0; e < c; e++) {
                        s += (double) pooled[i * c + e] * pr[(h * (c + 1) + e) * rank + r];
                    }
                    out[(i * nh + h) * rank + r] = (float) s;
                }
            }
        }
        return new float[][] {out};
    }

    @Test
    void selectionOpsRejectTargetsTooSmallForTheFullLayout() {
        try (CpuBackend be = new CpuBackend(1)) {
            BlockLayout small = new BlockLayout(2, 1, 5, be.allocate(DType.I32, 4), be.allocate(DType.I32, 5));
            assertThatThrownBy(() -> be.predict().selectTiles(small, be.allocate(DType.F64, 1, 3, 3), 0.5, 1.0))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("colIdx")
                    .hasMessageContaining("6");
            BlockLayout fits = new BlockLayout(2, 1, 5, be.allocate(DType.I32, 4), be.allocate(DType.I32, 6));
            assertThatThrownBy(() -> be.predict().selectTiles(fits, be.allocate(DType.F64, 1, 3, 3), 0.5, 0))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("maxRowFraction");
            NeuronLayout narrow = new NeuronLayout(4, 2, 4, 2, be.allocate(DType.I32, 3), be.allocate(DType.I32, 3));
            assertThatThrownBy(() -> be.predict().selectNeuronBlocks(narrow, be.allocate(DType.F64, 2, 3),
                    be.allocate(DType.I32, 4), 0.5)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("min(maxBlocks, nb) = 4");
        }
    }

    /**
     * A plan that returns the backend plan's layouts and checks each against the host form computed from the same
     * input; counts the tiles and neuron blocks the layouts drop, and the host traffic of the backend plan's calls.
     */
    private static final class Comparing implements SparsityPlan {
        final Predictors p;
        final Backend be;
        final SparsityPlan plan;
        long droppedTiles;
        long droppedBlocks;
        long compared;
        long trafficInPlan;

        Comparing(Predictors p, Backend be) {
            this.p = p;
            this.be = be;
            this.plan = p.plan(be, true, p.mlp(0) != null);
        }

        private long traffic() {
            return be instanceof FakeDeviceBackend f ? f.bytesRead() + f.bytesWritten() : 0;
        }

        @Override
        public BlockLayout attention(int layer, Input in) {
            long before = traffic();
            BlockLayout got = plan.attention(layer, in);
            trafficInPlan += traffic() - before;
            float[] x = Tensors.toFloats(be, in.x());
            boolean[][][] expect = p.attention(layer).keep(x, in.attentionMask(), in.batchSize(), in.seqLen());
            boolean[][][] keep = BlockLayouts.toBooleans(be, got);
            assertThat(keep).as("layer %d attention layout", layer).isDeepEqualTo(expect);
            int nB = got.numBlocks();
            droppedTiles += (long) got.numHeads() * nB * (nB + 1) / 2
                    - Math.round(BlockLayouts.density(be, got) * got.numHeads() * nB * (nB + 1) / 2);
            compared++;
            return got;
        }

        @Override
        public NeuronLayout mlp(int layer, Input in) {
            if (p.mlp(layer) == null) {
                return null;
            }
            long before = traffic();
            NeuronLayout got = plan.mlp(layer, in);
            trafficInPlan += traffic() - before;
            float[] x = Tensors.toFloats(be, in.x());
            MlpPredictor mp = p.mlp(layer);
            boolean[][] expect = mp.keep(x, in.attentionMask(), in.rows());
            boolean[][] keep = toBooleans(be, got, mp.numBlocks());
            assertThat(keep).as("layer %d MLP layout", layer).isDeepEqualTo(expect);
            for (boolean[] row : keep) {
                for (boolean k : row) {
                    droppedBlocks += k ? 0 : 1;
                }
            }
            compared++;
            return got;
        }
    }

    private static Path fixture() throws Exception {
        return Path.of(PredictorPlanTest.class.getResource("/fixtures/opt-preln/meta.json").toURI()).getParent();
    }

    private static List<Batch> fixtureBatches(Path dir) {
        try (var f = org.longexposure.io.safetensors.SafetensorsFile.open(dir.resolve("batches.safetensors"))) {
            Tensor ids = f.tensor("input_ids");
            int nb = ids.shape().idim(0);
            int b = ids.shape().idim(1);
            int t = ids.shape().idim(2);
            List<Batch> out = new ArrayList<>();
            for (int i = 0; i < nb; i++) {
                out.add(new Batch(b, t, slice(ids, i), slice(f.tensor("attention_mask"), i),
                        slice(f.tensor("labels"), i)));
            }
            return out;
        }
    }

    private static int[] slice(Tensor t, int i) {
        int per = Math.toIntExact(t.numel() / t.shape().dim(0));
        int[] out = new int[per];
        for (int j = 0; j < per; j++) {
            out[j] = t.getInt((long) i * per + j);
        }
        return out;
    }

    @Test
    void inTheModelThePlanGivesTheHostLayoutsOnTheFixtureAndMovesNothingThroughTheHostOfADevice() throws Exception {
        Path dir = fixture();
        List<Batch> batches = fixtureBatches(dir);
        Predictors p;
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(dir.resolve("model"), be)) {
            p = PredictorFit.fit(be, lm, batches.subList(0, 1), new PredictorFit.Config(3, 3, 0.9, 12, 5, 0.95));
            Comparing cmp = new Comparing(p, be);
            lm.sparsity(cmp);
            for (Batch b : batches) {
                ForwardState st = lm.allocate(b.batchSize(), b.seqLen());
                lm.forward(st, b, false);
            }
            assertThat(cmp.compared).isEqualTo(4L * batches.size());
            assertThat(cmp.droppedTiles).as("the layouts drop tiles").isPositive();
            assertThat(cmp.droppedBlocks).as("the layouts drop neuron blocks").isPositive();
        }
        try (FakeDeviceBackend dev = new FakeDeviceBackend(2);
             CausalLm lm = Architecture.load(dir.resolve("model"), dev)) {
            Comparing cmp = new Comparing(p, dev);
            lm.sparsity(cmp);
            Batch b = batches.get(batches.size() - 1);
            ForwardState st = lm.allocate(b.batchSize(), b.seqLen());
            lm.forward(st, b, false);   // first use: the predictors' temperatures and biases are written once
            cmp.trafficInPlan = 0;
            lm.forward(st, b, false);
            assertThat(cmp.trafficInPlan).as("host bytes moved by the plan on the second micro-batch").isZero();
        }
    }

    @Test
    void inTheModelThePlanGivesTheHostLayoutsOnTheBundledModel() {
        Path model = Path.of("../models/opt-mini-256");
        Path data = Path.of("../data/e2e-sample/train.jsonl");
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(model, be)) {
            Tokenizer tok = Tokenizer.load(model);
            TokenEncoder enc = TokenEncoders.of(tok);
            int seqLen = 90;   // batches padded to at most 90 tokens: blocks of 16, the last one partial or padded
            List<Example> rows = Batcher.truncate(JsonlDataset.read(data, enc), seqLen).rows();
            List<Batch> batches = new ArrayList<>();
            for (int m = 0; m < 3; m++) {
                batches.add(Batcher.batch(rows.subList(3 * m, 3 * m + 3), seqLen, enc.padId()));
            }
            Predictors p = PredictorFit.fit(be, lm, batches.subList(0, 2),
                    new PredictorFit.Config(16, 8, 0.9, 64, 24, 0.9));
            Comparing cmp = new Comparing(p, be);
            lm.sparsity(cmp);
            for (Batch b : batches) {
                ForwardState st = lm.allocate(b.batchSize(), b.seqLen());
                lm.forward(st, b, false);
            }
            assertThat(cmp.compared).isEqualTo(8L * batches.size());
            assertThat(cmp.droppedTiles).as("the layouts drop tiles").isPositive();
            assertThat(cmp.droppedBlocks).as("the layouts drop neuron blocks").isPositive();
        }
    }
}
