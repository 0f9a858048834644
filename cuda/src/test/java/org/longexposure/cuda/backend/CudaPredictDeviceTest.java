package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertBf16Within;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.model.SparsityPlan;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.sparsity.predict.Predictors;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * CudaPredict against CpuPredict, op by op and through the whole predictor plan:
 * <ul>
 *   <li>blockMeanPool: counts exactly; pooled values are the CPU's double mean rounded to BF16 (the CPU rounds it
 *       to F32 first: one BF16 half-ulp plus the F32 rounding);</li>
 *   <li>tileMass: the same BF16 projections give the CPU's masses to 1e-12 relative (CUDA's double exp/log against
 *       Java's, a few ulps);</li>
 *   <li>attentionTileMass (the true masses of a dense forward): the float64 definition to 1e-5 relative (float dot
 *       products and expf on the GPU);</li>
 *   <li>neuronBlockScores: fixed-point sums, exact in any order: exactly the CPU's;</li>
 *   <li>selectTiles / selectNeuronBlocks: the same masses and scores give exactly the CPU's CSR (rowPtr and the
 *       listed indices), including exact ties, all-zero rows, coverage 0 and 1, nB = 1 and 64, nb = 70;</li>
 *   <li>the predictor plan on both backends from the same inputs gives the same layouts. The inputs are chosen so
 *       that no rounding separates the backends: integer weights and activations, activations constant over each
 *       sequence block (so means are exact), all projections small integers (exact in BF16 and in any fp32
 *       accumulation order). Masses then differ only by the exp/log ulps above, far from any selection boundary
 *       for these seeds; with general inputs BF16 rounding of the pooled input and projections can legitimately
 *       flip near-ties, which is why this test does not use them.</li>
 * </ul>
 */
@Tag("gpu")
class CudaPredictDeviceTest extends DeviceTestBase {

    private static Tensor doubles(Backend be, double[] v, long... dims) {
        Tensor t = be.allocate(DType.F64, dims);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(8L * v.length);
            MemorySegment.copy(v, 0, s, ValueLayout.JAVA_DOUBLE_UNALIGNED, 0, v.length);
            be.write(t, s);
        }
        return t;
    }

    private static double[] doubles(Backend be, Tensor t) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(t.byteSize());
            be.read(t, s);
            return s.toArray(ValueLayout.JAVA_DOUBLE);
        }
    }

    private static Tensor ints(Backend be, int[] v) {
        Tensor t = be.allocate(DType.I32, v.length);
        Tensors.copyFrom(be, t, v);
        return t;
    }

    /** rowPtr and the listed indices up to rowPtr's last entry. */
    private static int[][] csr(Backend be, Tensor rowPtr, Tensor idx) {
        int[] ptr = Tensors.toInts(be, rowPtr);
        int[] all = Tensors.toInts(be, idx);
        return new int[][] {ptr, Arrays.copyOf(all, ptr[ptr.length - 1])};
    }

    /** The two layouts' rowPtr and listed indices are equal. */
    private static void assertSameCsr(String what, Backend wantBe, Tensor wantPtr, Tensor wantIdx, Backend gotBe,
                                      Tensor gotPtr, Tensor gotIdx) {
        int[][] want = csr(wantBe, wantPtr, wantIdx);
        int[][] got = csr(gotBe, gotPtr, gotIdx);
        assertThat(got[0]).as(what + " rowPtr").containsExactly(want[0]);
        assertThat(got[1]).as(what + " indices").containsExactly(want[1]);
    }

    /** An empty tile layout with room for the full causal one. */
    private static BlockLayout tileLayout(Backend be, int block, int nh, int t) {
        int nB = (t + block - 1) / block;
        return new BlockLayout(block, nh, t, be.allocate(DType.I32, (long) nh * nB + 1),
                be.allocate(DType.I32, (long) nh * nB * (nB + 1) / 2));
    }

    /** Sequence b has its last 5·b tokens padded (whole padded blocks for the later sequences). */
    private static int[] paddedMask(int bsz, int t) {
        int[] mask = new int[bsz * t];
        for (int b = 0; b < bsz; b++) {
            for (int i = 0; i < t; i++) {
                mask[b * t + i] = i < Math.max(1, t - 5 * b * (b + 1)) ? 1 : 0;
            }
        }
        return mask;
    }

    @Test
    void poolingMatchesTheCpu() {
        SplittableRandom r = new SplittableRandom(21);
        for (int[] dims : new int[][] {{3, 70, 300, 16}, {2, 64, 64, 64}, {1, 5, 7, 64}}) {
            int bsz = dims[0];
            int t = dims[1];
            int c = dims[2];
            int block = dims[3];
            int nB = (t + block - 1) / block;
            float[] x = randomBf16(r, bsz * t * c, -3, 3);
            int[] mask = paddedMask(bsz, t);
            Tensor pc = cpu.allocate(DType.F32, (long) bsz * nB, c);
            Tensor cc = cpu.allocate(DType.I32, (long) bsz * nB);
            cpu.predict().blockMeanPool(pc, cc, tensor(cpu, DType.F32, x, (long) bsz * t, c), ints(cpu, mask), bsz,
                    t, block);
            Tensor pg = gpu.allocate(DType.BF16, (long) bsz * nB, c);
            Tensor cg = gpu.allocate(DType.I32, (long) bsz * nB);
            gpu.predict().blockMeanPool(pg, cg, tensor(gpu, DType.BF16, x, (long) bsz * t, c), ints(gpu, mask), bsz,
                    t, block);
            String what = "pool B " + bsz + " T " + t + " C " + c + " block " + block;
            assertThat(Tensors.toInts(gpu, cg)).as(what + " counts").containsExactly(Tensors.toInts(cpu, cc));
            float[] expect = floats(cpu, pc);
            double[] delta = new double[expect.length];
            Arrays.fill(delta, 1e-30);
            for (int i = 0; i < expect.length; i++) {
                delta[i] = 0x1.0p-24 * Math.abs(expect[i]) + 1e-30;
            }
            assertBf16Within(what, floats(gpu, pg), expect, delta);
        }
    }

    @Test
    void tileMassMatchesTheCpuOnTheSameProjections() {
        SplittableRandom r = new SplittableRandom(22);
        int bsz = 3;
        int t = 150;
        int block = 16;   // nB = 10, the last block partial; padding empties whole blocks of sequence 2
        int nB = 10;
        int nh = 5;
        int rank = 6;
        int[] mask = paddedMask(bsz, t);
        int[] counts = new int[bsz * nB];
        for (int i = 0; i < mask.length; i++) {
            counts[(i / t) * nB + (i % t) / block] += mask[i] != 0 ? 1 : 0;
        }
        float[] qk = randomBf16(r, bsz * nB * 2 * nh * rank, -1.5, 1.5);
        float[] gamma = {0.5f, 1f, 2f, 0.25f, 3f};
        long rows = (long) bsz * nB;
        Tensor mc = cpu.allocate(DType.F64, nh, nB, nB);
        cpu.predict().tileMass(mc, tensor(cpu, DType.F32, qk, rows, 2L * nh * rank), ints(cpu, counts),
                tensor(cpu, DType.F32, gamma, nh), bsz, nh, rank);
        Tensor mg = gpu.allocate(DType.F64, nh, nB, nB);
        gpu.predict().tileMass(mg, tensor(gpu, DType.BF16, qk, rows, 2L * nh * rank), ints(gpu, counts),
                tensor(gpu, DType.F32, gamma, nh), bsz, nh, rank);
        double[] expect = doubles(cpu, mc);
        double[] got = doubles(gpu, mg);
        for (int i = 0; i < expect.length; i++) {
            assertThat(got[i]).as("mass %d", i).isCloseTo(expect[i],
                    org.assertj.core.data.Offset.offset(1e-12 * Math.max(1, Math.abs(expect[i]))));
        }
    }

    /**
     * attentionTileMass on the GPU against the float64 definition (TileMass.perSequence) on the same BF16 q and k:
     * the float dot products and expf differ from the double ones by a few float ulps per term, so each tile is
     * within 1e-5 of its mass (at least 1e-5 absolute); head sizes 64 and 80, blocks of 64 and 32 (a partial last
     * one), padded tokens, a consistent log-sum-exp.
     */
    @Test
    void trueTileMassesMatchTheFloat64Definition() {
        SplittableRandom r = new SplittableRandom(23);
        for (int[] dims : new int[][] {{2, 150, 3, 64, 64}, {3, 100, 2, 80, 32}}) {
            int bsz = dims[0];
            int t = dims[1];
            int nh = dims[2];
            int hs = dims[3];
            int block = dims[4];
            int c = nh * hs;
            int nB = (t + block - 1) / block;
            float[] q = randomBf16(r, bsz * t * c, -1, 1);
            float[] k = randomBf16(r, bsz * t * c, -1, 1);
            int[] mask = paddedMask(bsz, t);
            // a consistent lse: the CPU attention's on the same values (float; both sides read this one)
            Tensor lseC = cpu.allocate(DType.F32, bsz, nh, t);
            Tensor qc = tensor(cpu, DType.F32, q, bsz, t, c);
            cpu.attention().attentionForward(cpu.allocate(DType.F32, bsz, t, c), lseC, qc,
                    tensor(cpu, DType.F32, k, bsz, t, c), qc, ints(cpu, mask).view(bsz, t), nh,
                    (float) (1.0 / Math.sqrt(hs)));
            float[] lse = floats(cpu, lseC);
            double[][][][] expect = org.longexposure.sparsity.exposer.TileMass.perSequence(q, k, lse, mask, bsz, t,
                    nh, hs, block);
            Tensor mg = gpu.allocate(DType.F64, bsz, nh, nB, nB);
            gpu.predict().attentionTileMass(mg, tensor(gpu, DType.BF16, q, (long) bsz * t, c),
                    tensor(gpu, DType.BF16, k, (long) bsz * t, c), tensor(gpu, DType.F32, lse, bsz, nh, t),
                    ints(gpu, mask), bsz, t, nh, block);
            double[] got = doubles(gpu, mg);
            int i = 0;
            for (int b = 0; b < bsz; b++) {
                for (int h = 0; h < nh; h++) {
                    for (int qb = 0; qb < nB; qb++) {
                        for (int kb = 0; kb < nB; kb++) {
                            double e = expect[b][h][qb][kb];
                            assertThat(got[i++]).as("HS %d block %d: mass[%d][%d][%d][%d]", hs, block, b, h, qb, kb)
                                    .isCloseTo(e, org.assertj.core.data.Offset.offset(1e-5 * Math.max(1, e)));
                        }
                    }
                }
            }
        }
    }

    /** Random masses with exact ties, zero rows and zeros, upper triangle 0. */
    private static double[] masses(SplittableRandom r, int nh, int nB) {
        double[] m = new double[nh * nB * nB];
        for (int hq = 0; hq < nh * nB; hq++) {
            int qb = hq % nB;
            if (r.nextInt(7) == 0) {
                continue;   // a row of zeros: only the forced tiles
            }
            for (int kb = 0; kb <= qb; kb++) {
                int kind = r.nextInt(4);
                m[hq * nB + kb] = kind == 0 ? 0 : kind == 1 ? 0.125 : r.nextDouble();
            }
        }
        return m;
    }

    @Test
    void poolingReadsAnInputAtAnOddElementOffset() {
        SplittableRandom r = new SplittableRandom(27);
        int bsz = 2;
        int t = 9;
        int c = 10;
        int block = 4;
        int nB = 3;
        float[] x = randomBf16(r, bsz * t * c + 1, -3, 3);
        int[] mask = paddedMask(bsz, t);
        long n = (long) bsz * t * c;
        // one leading element: the input starts 2 bytes past a 4-byte boundary, so pairs cannot be loaded whole
        Tensor xg = tensor(gpu, DType.BF16, x, n + 1).slice(1, n).view((long) bsz * t, c);
        Tensor xc = tensor(cpu, DType.F32, x, n + 1).slice(1, n).view((long) bsz * t, c);
        Tensor pc = cpu.allocate(DType.F32, (long) bsz * nB, c);
        Tensor cc = cpu.allocate(DType.I32, (long) bsz * nB);
        cpu.predict().blockMeanPool(pc, cc, xc, ints(cpu, mask), bsz, t, block);
        Tensor pg = gpu.allocate(DType.BF16, (long) bsz * nB, c);
        Tensor cg = gpu.allocate(DType.I32, (long) bsz * nB);
        gpu.predict().blockMeanPool(pg, cg, xg, ints(gpu, mask), bsz, t, block);
        float[] expect = floats(cpu, pc);
        double[] delta = new double[expect.length];
        for (int i = 0; i < expect.length; i++) {
            delta[i] = 0x1.0p-24 * Math.abs(expect[i]) + 1e-30;
        }
        assertBf16Within("pool at an odd offset", floats(gpu, pg), expect, delta);
    }

    @Test
    void tileSelectionEqualsTheCpuExactly() {
        SplittableRandom r = new SplittableRandom(23);
        for (int[] dims : new int[][] {{5, 4096, 64}, {3, 150, 16}, {2, 7, 64}}) {
            int nh = dims[0];
            int t = dims[1];
            int block = dims[2];
            int nB = (t + block - 1) / block;
            double[] m = masses(r, nh, nB);
            for (double[] cf : new double[][] {{0, 1}, {0.3, 1}, {0.77, 1}, {0.95, 1}, {1, 1}, {1, 0.15},
                    {0.77, 0.3}, {0.95, 0.07}}) {
                double coverage = cf[0];
                double fraction = cf[1];
                BlockLayout lc = tileLayout(cpu, block, nh, t);
                BlockLayout lg = tileLayout(gpu, block, nh, t);
                cpu.predict().selectTiles(lc, doubles(cpu, m, nh, nB, nB), coverage, fraction);
                gpu.predict().selectTiles(lg, doubles(gpu, m, nh, nB, nB), coverage, fraction);
                String what = "NH " + nh + " nB " + nB + " coverage " + coverage + " row fraction " + fraction;
                assertSameCsr(what, cpu, lc.rowPtr(), lc.colIdx(), gpu, lg.rowPtr(), lg.colIdx());
            }
        }
    }

    @Test
    void neuronScoresAndSelectionEqualTheCpuExactly() {
        SplittableRandom r = new SplittableRandom(24);
        int rows = 103;
        int tb = 8;      // nTB = 13, the last token block partial
        int ffn = 555;
        int bn = 8;      // nb = 70, the last block 3 wide
        int nb = 70;
        int nTB = 13;
        int[] mask = new int[rows];
        for (int i = 0; i < rows; i++) {
            mask[i] = (i >= 16 && i < 24) || i >= 97 ? 0 : 1;   // token block 2 is all padding
        }
        float[] z = randomBf16(r, rows * nb, -2, 10);
        Tensor sc = cpu.allocate(DType.F64, nTB, nb);
        Tensor sg = gpu.allocate(DType.F64, nTB, nb);
        cpu.predict().neuronBlockScores(sc, tensor(cpu, DType.F32, z, rows, nb), ints(cpu, mask), tb, ffn, bn);
        gpu.predict().neuronBlockScores(sg, tensor(gpu, DType.BF16, z, rows, nb), ints(gpu, mask), tb, ffn, bn);
        double[] scores = doubles(cpu, sc);
        assertThat(doubles(gpu, sg)).as("neuron-block scores").containsExactly(scores);
        // the selection, on these scores and on scores with exact ties
        double[] tied = scores.clone();
        for (int i = 0; i < tied.length; i += 3) {
            tied[i] = 4;
        }
        for (double[] s : new double[][] {scores, tied}) {
            for (double[] cb : new double[][] {{0, nb}, {0.37, nb}, {0.8, nb}, {1, nb}, {1, 9}, {0.8, 5}, {1, 0}}) {
                double coverage = cb[0];
                int budget = (int) cb[1];
                long idx = (long) nTB * Math.max(1, budget);
                NeuronLayout lc = new NeuronLayout(bn, tb, rows, budget, cpu.allocate(DType.I32, nTB + 1),
                        cpu.allocate(DType.I32, idx));
                NeuronLayout lg = new NeuronLayout(bn, tb, rows, budget, gpu.allocate(DType.I32, nTB + 1),
                        gpu.allocate(DType.I32, idx));
                cpu.predict().selectNeuronBlocks(lc, doubles(cpu, s, nTB, nb), ints(cpu, mask), coverage);
                gpu.predict().selectNeuronBlocks(lg, doubles(gpu, s, nTB, nb), ints(gpu, mask), coverage);
                String what = (s == tied ? "tied " : "") + "coverage " + coverage + " budget " + budget;
                assertSameCsr(what, cpu, lc.rowPtr(), lc.blockIdx(), gpu, lg.rowPtr(), lg.blockIdx());
                int[] rowPtr = Tensors.toInts(cpu, lc.rowPtr());
                assertThat(rowPtr[3] - rowPtr[2]).as("a token block of padding lists nothing").isZero();
            }
        }
    }

    @Test
    void neuronScoresOverLongTokenBlocksEqualTheCpuExactly() {
        SplittableRandom r = new SplittableRandom(26);
        int rows = 1000;
        int ffn = 300;
        int bn = 32;     // nb = 10, the last block 12 wide
        int nb = 10;
        int[] mask = new int[rows];
        for (int i = 0; i < rows; i++) {
            mask[i] = i % 97 == 5 || (i >= 640 && i < 700) ? 0 : 1;
        }
        float[] z = randomBf16(r, rows * nb, -3, 40);
        for (int tb : new int[] {rows, 333, 64, 130}) {
            int nTB = (rows + tb - 1) / tb;
            Tensor sc = cpu.allocate(DType.F64, nTB, nb);
            Tensor sg = gpu.allocate(DType.F64, nTB, nb);
            cpu.predict().neuronBlockScores(sc, tensor(cpu, DType.F32, z, rows, nb), ints(cpu, mask), tb, ffn, bn);
            gpu.predict().neuronBlockScores(sg, tensor(gpu, DType.BF16, z, rows, nb), ints(gpu, mask), tb, ffn, bn);
            assertThat(doubles(gpu, sg)).as("token block %d", tb).containsExactly(doubles(cpu, sc));
        }
    }

    /**
     * predictTiles (one launch: masses, selection and CSR) gives bit for bit what tileMass then selectTiles give on
     * the GPU, masses and layout, over several coverages and budgets, repeated calls (the arrival counter must be
     * back at zero after each launch), T up to 4096 (nB = 64, a CSR over NH·nB = 320 rows), padded sequences.
     */
    @Test
    void fusedTilePredictionEqualsTheTwoCalls() {
        SplittableRandom r = new SplittableRandom(27);
        for (int[] dims : new int[][] {{3, 150, 16, 5, 6}, {2, 4096, 64, 5, 8}, {4, 1024, 64, 32, 8},
                {1, 7, 64, 3, 2}}) {
            int bsz = dims[0];
            int t = dims[1];
            int block = dims[2];
            int nh = dims[3];
            int rank = dims[4];
            int nB = (t + block - 1) / block;
            int[] mask = paddedMask(bsz, t);
            int[] counts = new int[bsz * nB];
            for (int i = 0; i < mask.length; i++) {
                counts[(i / t) * nB + (i % t) / block] += mask[i] != 0 ? 1 : 0;
            }
            long rows = (long) bsz * nB;
            Tensor qk = tensor(gpu, DType.BF16, randomBf16(r, (int) rows * 2 * nh * rank, -1.5, 1.5), rows,
                    2L * nh * rank);
            float[] g = new float[nh];
            for (int h = 0; h < nh; h++) {
                g[h] = 0.25f * (h % 4 + 1);
            }
            Tensor gamma = tensor(gpu, DType.F32, g, nh);
            Tensor cnt = ints(gpu, counts);
            for (double[] cf : new double[][] {{0.77, 1}, {0, 1}, {1, 0.15}, {0.95, 0.3}, {0.9, 0.15}}) {
                BlockLayout two = tileLayout(gpu, block, nh, t);
                BlockLayout one = tileLayout(gpu, block, nh, t);
                Tensor m2 = gpu.allocate(DType.F64, nh, nB, nB);
                Tensor m1 = gpu.allocate(DType.F64, nh, nB, nB);
                gpu.predict().tileMass(m2, qk, cnt, gamma, bsz, nh, rank);
                gpu.predict().selectTiles(two, m2, cf[0], cf[1]);
                gpu.predict().predictTiles(one, m1, qk, cnt, gamma, bsz, rank, cf[0], cf[1]);
                String what = "B " + bsz + " T " + t + " NH " + nh + " coverage " + cf[0] + " fraction " + cf[1];
                assertThat(doubles(gpu, m1)).as(what + " mass").containsExactly(doubles(gpu, m2));
                assertSameCsr(what, gpu, two.rowPtr(), two.colIdx(), gpu, one.rowPtr(), one.colIdx());
            }
        }
    }

    /**
     * predictNeuronBlocks (one launch: fixed-point sums by atomics, selection and CSR) gives bit for bit the CPU's
     * scores and layout (neuronBlockScores then selectNeuronBlocks), for token blocks of 8 rows up to the whole
     * micro-batch (63 CTAs adding into one token block), exact ties, a token block of padding, budgets, repeated
     * calls (the accumulators and counters must be back at zero after each launch).
     */
    @Test
    void fusedNeuronPredictionEqualsTheCpu() {
        SplittableRandom r = new SplittableRandom(28);
        int rows = 4000;
        int ffn = 8192;
        int bn = 128;
        int nb = 64;
        int[] mask = new int[rows];
        for (int i = 0; i < rows; i++) {
            mask[i] = i % 97 == 5 || (i >= 640 && i < 704) ? 0 : 1;
        }
        float[] z = randomBf16(r, rows * nb, -3, 40);
        for (int i = 0; i < z.length; i += 7) {
            z[i] = 1f;   // many equal values: ties in the scores of short token blocks
        }
        Tensor zc = tensor(cpu, DType.F32, z, rows, nb);
        Tensor zg = tensor(gpu, DType.BF16, z, rows, nb);
        Tensor mc = ints(cpu, mask);
        Tensor mg = ints(gpu, mask);
        for (int tb : new int[] {rows, 64, 8, 1000}) {
            int nTB = (rows + tb - 1) / tb;
            for (double[] cb : new double[][] {{0.8, nb}, {1, 9}, {0.37, 20}, {0, nb}}) {
                int budget = (int) cb[1];
                long idx = (long) nTB * Math.max(1, budget);
                NeuronLayout lc = new NeuronLayout(bn, tb, rows, budget, cpu.allocate(DType.I32, nTB + 1),
                        cpu.allocate(DType.I32, idx));
                NeuronLayout lg = new NeuronLayout(bn, tb, rows, budget, gpu.allocate(DType.I32, nTB + 1),
                        gpu.allocate(DType.I32, idx));
                Tensor sc = cpu.allocate(DType.F64, nTB, nb);
                Tensor sg = gpu.allocate(DType.F64, nTB, nb);
                cpu.predict().predictNeuronBlocks(lc, sc, zc, mc, ffn, cb[0]);
                gpu.predict().predictNeuronBlocks(lg, sg, zg, mg, ffn, cb[0]);
                String what = "token block " + tb + " coverage " + cb[0] + " budget " + budget;
                assertThat(doubles(gpu, sg)).as(what + " scores").containsExactly(doubles(cpu, sc));
                assertSameCsr(what, cpu, lc.rowPtr(), lc.blockIdx(), gpu, lg.rowPtr(), lg.blockIdx());
            }
        }
        assertThat(mask[640]).as("token block 10 of 64 rows is all padding").isZero();
    }

    /** Small integers in [-k, k] as floats. */
    private static float[] integers(SplittableRandom r, int n, int k) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = r.nextInt(2 * k + 1) - k;
        }
        return v;
    }

    @Test
    void thePredictorPlanBuildsTheCpusLayoutsOnTheGpu(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(25);
        int c = 24;
        int nh = 4;
        int rank = 3;
        int block = 16;
        int ffn = 70;
        int bn = 8;     // nb = 9, the last block 6 wide
        int nb = 9;
        int tb = 16;
        double[] attnCoverage = {0, 0.4, 0.8, 1};
        double[] mlpCoverage = {0.3, 0.6, 0.9, 1};
        int layers = attnCoverage.length;
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (Arena arena = Arena.ofConfined()) {
            for (int l = 0; l < layers; l++) {
                tensors.put("layers." + l + ".attn.q", host(arena, integers(r, nh * (c + 1) * rank, 1), nh, c + 1,
                        rank));
                tensors.put("layers." + l + ".attn.k", host(arena, integers(r, nh * (c + 1) * rank, 1), nh, c + 1,
                        rank));
                // temperatures keep the logits O(1): projections are integers up to about ±50
                tensors.put("layers." + l + ".attn.gamma", host(arena, new float[] {0.01f, 0.02f, 0.005f, 0.03f},
                        nh));
                tensors.put("layers." + l + ".mlp.weight", host(arena, integers(r, nb * (c + 1), 2), nb, c + 1));
            }
            SafetensorsWriter.write(dir.resolve(Predictors.TENSORS), tensors);
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("format", "longexposure-predictors");
        root.put("version", 1);
        root.put("hidden_size", c);
        root.put("num_heads", nh);
        root.put("attn_block", block);
        root.put("rank", rank);
        root.put("ffn_dim", ffn);
        root.put("neuron_block", bn);
        root.put("token_block", tb);
        ArrayNode ls = root.putArray("layers");
        for (int l = 0; l < layers; l++) {
            ls.addObject().put("attn_coverage", attnCoverage[l]).put("mlp_coverage", mlpCoverage[l]);
        }
        Files.writeString(dir.resolve(Predictors.JSON), json.writeValueAsString(root));
        Predictors p = Predictors.load(dir);

        int bsz = 3;
        int t = 150;   // nB = 10, the last block partial; later sequences padded over whole blocks
        int n = bsz * t;
        int[] mask = paddedMask(bsz, t);
        // activations constant over each sequence block, so every block mean is exact
        float[] x = new float[n * c];
        for (int b = 0; b < bsz; b++) {
            for (int i = 0; i < (t + block - 1) / block; i++) {
                float[] rowValues = integers(r, c, 2);
                for (int tok = i * block; tok < Math.min(t, (i + 1) * block); tok++) {
                    System.arraycopy(rowValues, 0, x, (b * t + tok) * c, c);
                }
            }
        }
        SparsityPlan onCpu = p.plan(cpu, true, true);
        SparsityPlan onGpu = p.plan(gpu, true, true);
        SparsityPlan.Input inCpu = new SparsityPlan.Input(bsz, t, tensor(cpu, DType.F32, x, n, c), mask,
                ints(cpu, mask));
        SparsityPlan.Input inGpu = new SparsityPlan.Input(bsz, t, tensor(gpu, DType.BF16, x, n, c), mask,
                ints(gpu, mask));
        long dropped = 0;
        for (int l = 0; l < layers; l++) {
            BlockLayout ac = onCpu.attention(l, inCpu);
            BlockLayout ag = onGpu.attention(l, inGpu);
            boolean[][][] want = BlockLayouts.toBooleans(cpu, ac);
            assertThat(BlockLayouts.toBooleans(gpu, ag)).as("layer %d attention layout", l).isDeepEqualTo(want);
            dropped += Math.round((1 - BlockLayouts.density(cpu, ac)) * nh * 55);
            NeuronLayout mc = onCpu.mlp(l, inCpu);
            NeuronLayout mg = onGpu.mlp(l, inGpu);
            int[][] wantN = csr(cpu, mc.rowPtr(), mc.blockIdx());
            int[][] gotN = csr(gpu, mg.rowPtr(), mg.blockIdx());
            assertThat(gotN[0]).as("layer %d MLP rowPtr", l).containsExactly(wantN[0]);
            assertThat(gotN[1]).as("layer %d MLP blockIdx", l).containsExactly(wantN[1]);
            assertThat(mg.maxBlocks()).isEqualTo(nb);
        }
        assertThat(dropped).as("the sparse layers drop tiles").isPositive();
    }

    private static Tensor host(Arena arena, float[] v, long... dims) {
        return Tensor.allocateHost(arena, DType.F32, dims).copyFrom(v);
    }
}
