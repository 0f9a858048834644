package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.cuda.Gpu;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * {@link CudaAttention} against the CPU backend's attention (dense {@code CpuAttention}, block-sparse
 * {@code CpuSparseAttention}) on the same numbers: q, k, v, dOut drawn already rounded to bf16; the CPU runs in f32,
 * the GPU in bf16 on the tensor cores with fp32 accumulation.
 *
 * <p>Bounds, as ‖gpu − cpu‖₂ / ‖cpu‖₂: out, dQ, dK, dV 1e-2. The GPU rounds P and dS to bf16 for their products
 * and each output element to bf16 (each ≤ 2^-9 relative, ~3e-3 in the norm, as measured against a float64
 * reference on H200); 1e-2 leaves a 3× margin, while a wrong mask, tile or index gives errors of order 1. lse: its
 * f32 value comes from f32 score sums of the same bf16 inputs: 1e-5, and −∞ exactly where the CPU has it. Sizes are
 * awkward (T not a multiple of the 64-token tile), masks pad the ends of sequences, drop the first keys of one
 * (queries that see no key) and blank one sequence entirely.
 */
@Tag("gpu")
class CudaAttentionDeviceTest {
    private static CudaBackend gpu;
    private static CpuBackend cpu;

    @BeforeAll
    static void open() {
        gpu = Gpu.openOrSkip();
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    @Test
    void denseMatchesCpuWithPaddingAndEmptyRows() {
        Case c = Case.random(new SplittableRandom(1234), 3, 77, 3, 64, true);
        Result want = c.cpuDense();
        Result got = c.gpu(null);
        got.assertCloseTo(want);
    }

    @Test
    void denseMatchesCpuForOtherHeadSizes() {
        SplittableRandom rnd = new SplittableRandom(99);
        for (int[] size : new int[][] {{1, 130, 2, 80}, {2, 65, 2, 128}, {2, 3, 3, 32}, {1, 200, 1, 96}}) {
            Case c = Case.random(rnd, size[0], size[1], size[2], size[3], size[0] > 1);
            c.gpu(null).assertCloseTo(c.cpuDense(), Arrays.toString(size));
        }
    }

    /**
     * T = 1: each query sees one key, so P ≡ 1 and dS = P∘(dP − D) = 0: dQ and dK are exactly zero in exact
     * arithmetic (a relative error against the CPU's rounding residue would be meaningless), out = v and dV = dOut.
     */
    @Test
    void singleTokenSequencesHaveZeroQueryAndKeyGradients() {
        Case c = Case.random(new SplittableRandom(31), 2, 1, 3, 32, false);
        Result got = c.gpu(null);
        Result want = c.cpuDense();
        assertThat(Gpu.relativeError(got.out, want.out)).as("out").isLessThan(1e-2);
        assertThat(Gpu.relativeError(got.dV, want.dV)).as("dV").isLessThan(1e-2);
        double dvNorm = norm(want.dV);
        assertThat(norm(got.dQ)).as("|dQ|").isLessThan(1e-2 * dvNorm);
        assertThat(norm(got.dK)).as("|dK|").isLessThan(1e-2 * dvNorm);
    }

    private static double norm(float[] x) {
        double s = 0;
        for (float v : x) {
            s += (double) v * v;
        }
        return Math.sqrt(s);
    }

    @Test
    void blockSparseMatchesCpuAndFullLayoutGivesDenseBits() {
        SplittableRandom rnd = new SplittableRandom(7);
        Case c = Case.random(rnd, 2, 300, 3, 64, true);
        int nB = (c.T + CudaAttention.TILE - 1) / CudaAttention.TILE;
        int[][] random = randomLayout(rnd, c.NH, nB, 0.5);
        c.gpu(random).assertCloseTo(c.cpuSparse(random));

        int[][] full = randomLayout(rnd, c.NH, nB, 1.0);
        Result dense = c.gpu(null);
        Result fullLayout = c.gpu(full);
        assertThat(fullLayout.out).containsExactly(dense.out);
        assertThat(fullLayout.lse).containsExactly(dense.lse);
        assertThat(fullLayout.dQ).containsExactly(dense.dQ);
        assertThat(fullLayout.dK).containsExactly(dense.dK);
        assertThat(fullLayout.dV).containsExactly(dense.dV);
    }

    /**
     * More than 32 query blocks (T = 2200, nB = 35): the dK/dV pass finds a key block's query blocks 32 rows at a
     * time, so the sink column (key block 0 listed by every row, as the sparse step's layouts keep it) crosses that
     * boundary; rows also keep the diagonal and a few random tiles. Against the CPU, and the full layout against
     * the dense bits at the same size.
     */
    @Test
    void blockSparseWithSinkColumnLongerThan32Blocks() {
        SplittableRandom rnd = new SplittableRandom(21);
        Case c = Case.random(rnd, 1, 2200, 2, 32, true);
        int nB = (c.T + CudaAttention.TILE - 1) / CudaAttention.TILE;
        List<Integer> cols = new ArrayList<>();
        int[] rowPtr = new int[c.NH * nB + 1];
        for (int h = 0; h < c.NH; h++) {
            for (int qb = 0; qb < nB; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    if (kb == 0 || kb == qb || rnd.nextDouble() < 0.1) {
                        cols.add(kb);
                    }
                }
                rowPtr[h * nB + qb + 1] = cols.size();
            }
        }
        int[][] sink = {rowPtr, cols.stream().mapToInt(Integer::intValue).toArray()};
        c.gpu(sink).assertCloseTo(c.cpuSparse(sink));

        int[][] full = randomLayout(rnd, c.NH, nB, 1.0);
        Result dense = c.gpu(null);
        Result fullLayout = c.gpu(full);
        assertThat(fullLayout.dQ).containsExactly(dense.dQ);
        assertThat(fullLayout.dK).containsExactly(dense.dK);
        assertThat(fullLayout.dV).containsExactly(dense.dV);
    }

    @Test
    void backwardIsDeterministic() {
        Case c = Case.random(new SplittableRandom(5), 2, 150, 2, 80, true);
        Result a = c.gpu(null);
        Result b = c.gpu(null);
        assertThat(b.dQ).containsExactly(a.dQ);
        assertThat(b.dK).containsExactly(a.dK);
        assertThat(b.dV).containsExactly(a.dV);
    }

    /** CSR {rowPtr, colIdx} over NH·nB rows keeping each causal tile with probability {@code density}. */
    private static int[][] randomLayout(SplittableRandom rnd, int nh, int nB, double density) {
        List<Integer> cols = new ArrayList<>();
        int[] rowPtr = new int[nh * nB + 1];
        for (int h = 0; h < nh; h++) {
            for (int qb = 0; qb < nB; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    if (rnd.nextDouble() < density) {
                        cols.add(kb);
                    }
                }
                rowPtr[h * nB + qb + 1] = cols.size();
            }
        }
        int[] colIdx = cols.isEmpty() ? new int[1] : cols.stream().mapToInt(Integer::intValue).toArray();
        return new int[][] {rowPtr, colIdx};
    }

    private record Result(float[] out, float[] lse, float[] dQ, float[] dK, float[] dV) {
        void assertCloseTo(Result want) {
            assertCloseTo(want, "");
        }

        /** {@code label} names the case (B, T, NH, HS) in failure messages. */
        void assertCloseTo(Result want, String label) {
            assertThat(Gpu.relativeError(out, want.out)).as("out %s", label).isLessThan(1e-2);
            assertThat(Gpu.relativeError(dQ, want.dQ)).as("dQ %s", label).isLessThan(1e-2);
            assertThat(Gpu.relativeError(dK, want.dK)).as("dK %s", label).isLessThan(1e-2);
            assertThat(Gpu.relativeError(dV, want.dV)).as("dV %s", label).isLessThan(1e-2);
            int n = want.lse.length;
            float[] finiteGot = new float[n];
            float[] finiteWant = new float[n];
            for (int i = 0; i < n; i++) {
                boolean inf = want.lse[i] == Float.NEGATIVE_INFINITY;
                assertThat(lse[i] == Float.NEGATIVE_INFINITY).as("lse[%d] = -inf", i).isEqualTo(inf);
                finiteGot[i] = inf ? 0 : lse[i];
                finiteWant[i] = inf ? 0 : want.lse[i];
            }
            assertThat(Gpu.relativeError(finiteGot, finiteWant)).as("lse").isLessThan(1e-5);
        }
    }

    /** One problem: bf16-exact inputs, a key mask, sizes. */
    private record Case(int B, int T, int NH, int HS, float[] q, float[] k, float[] v, float[] dOut, int[] mask) {
        static Case random(SplittableRandom rnd, int b, int t, int nh, int hs, boolean pad) {
            int n = b * t * nh * hs;
            int[] mask = new int[b * t];
            Arrays.fill(mask, 1);
            if (pad) {
                for (int s = 0; s < b; s++) {
                    int tail = rnd.nextInt(t / 3 + 1);
                    for (int i = t - tail; i < t; i++) {
                        mask[s * t + i] = 0;  // right padding: those queries still see the real keys
                    }
                }
                for (int i = 0; i < Math.max(1, t / 5); i++) {
                    mask[(b - 1) * t + i] = 0;  // leading padding: the first queries see no key at all
                }
                if (b > 2) {
                    Arrays.fill(mask, t, 2 * t, 0);  // a sequence of padding only
                }
            }
            return new Case(b, t, nh, hs, Gpu.randomBf16(rnd, n, 2f), Gpu.randomBf16(rnd, n, 2f),
                    Gpu.randomBf16(rnd, n, 1f), Gpu.randomBf16(rnd, n, 1f), mask);
        }

        float scale() {
            return (float) (1 / Math.sqrt(HS));
        }

        Result cpuDense() {
            return cpu(null);
        }

        Result cpuSparse(int[][] layout) {
            return cpu(layout);
        }

        private Result cpu(int[][] layout) {
            int c = NH * HS;
            Tensor tq = host(q);
            Tensor tk = host(k);
            Tensor tv = host(v);
            Tensor tg = host(dOut);
            Tensor tm = cpu.allocate(DType.I32, B, T).copyFrom(mask);
            Tensor out = cpu.allocate(DType.F32, B, T, c);
            Tensor lse = cpu.allocate(DType.F32, B, NH, T);
            Tensor dQ = cpu.allocate(DType.F32, B, T, c);
            Tensor dK = cpu.allocate(DType.F32, B, T, c);
            Tensor dV = cpu.allocate(DType.F32, B, T, c);
            if (layout == null) {
                cpu.attention().attentionForward(out, lse, tq, tk, tv, tm, NH, scale());
                cpu.attention().attentionBackward(dQ, dK, dV, tg, out, lse, tq, tk, tv, tm, NH, scale());
            } else {
                BlockLayout l = new BlockLayout(CudaAttention.TILE, NH, T,
                        cpu.allocate(DType.I32, layout[0].length).copyFrom(layout[0]),
                        cpu.allocate(DType.I32, layout[1].length).copyFrom(layout[1]));
                cpu.sparse().blockSparseAttentionForward(out, lse, tq, tk, tv, tm, NH, scale(), l);
                cpu.sparse().blockSparseAttentionBackward(dQ, dK, dV, tg, out, lse, tq, tk, tv, tm, NH, scale(), l);
            }
            return new Result(out.toFloatArray(), lse.toFloatArray(), dQ.toFloatArray(), dK.toFloatArray(),
                    dV.toFloatArray());
        }

        private Tensor host(float[] values) {
            return cpu.allocate(DType.F32, B, T, (long) NH * HS).copyFrom(values);
        }

        /** Forward then backward on the GPU; outputs poisoned with NaN first so an unwritten element shows. */
        Result gpu(int[][] layout) {
            int c = NH * HS;
            Tensor tq = Gpu.upload(gpu, DType.BF16, q, B, T, c);
            Tensor tk = Gpu.upload(gpu, DType.BF16, k, B, T, c);
            Tensor tv = Gpu.upload(gpu, DType.BF16, v, B, T, c);
            Tensor tg = Gpu.upload(gpu, DType.BF16, dOut, B, T, c);
            Tensor tm = ints(mask, B, T);
            Tensor out = poisoned(DType.BF16, B, T, c);
            Tensor lse = poisoned(DType.F32, B, NH, T);
            Tensor dQ = poisoned(DType.BF16, B, T, c);
            Tensor dK = poisoned(DType.BF16, B, T, c);
            Tensor dV = poisoned(DType.BF16, B, T, c);
            CudaAttention att = (CudaAttention) gpu.attention();
            if (layout == null) {
                att.attentionForward(out, lse, tq, tk, tv, tm, NH, scale());
                att.attentionBackward(dQ, dK, dV, tg, out, lse, tq, tk, tv, tm, NH, scale());
            } else {
                BlockLayout l = new BlockLayout(CudaAttention.TILE, NH, T, ints(layout[0], layout[0].length),
                        ints(layout[1], layout[1].length));
                att.blockSparseAttentionForward(out, lse, tq, tk, tv, tm, NH, scale(), l);
                att.blockSparseAttentionBackward(dQ, dK, dV, tg, out, lse, tq, tk, tv, tm, NH, scale(), l);
            }
            return new Result(Gpu.download(gpu, out), Gpu.download(gpu, lse), Gpu.download(gpu, dQ),
                    Gpu.download(gpu, dK), Gpu.download(gpu, dV));
        }

        private static Tensor poisoned(DType dtype, long... dims) {
            Tensor t = gpu.allocate(dtype, dims);
            gpu.stream().memsetD8(CudaBackend.ptr(t), (byte) 0xFF, t.byteSize());  // all-ones bits: NaN
            return t;
        }

        private static Tensor ints(int[] values, long... dims) {
            Tensor t = gpu.allocate(DType.I32, dims);
            try (Arena a = Arena.ofConfined()) {
                MemorySegment host = a.allocate(t.byteSize());
                MemorySegment.copy(values, 0, host, ValueLayout.JAVA_INT, 0, values.length);
                gpu.write(t, host);
                gpu.sync();
            }
            return t;
        }
    }
}
