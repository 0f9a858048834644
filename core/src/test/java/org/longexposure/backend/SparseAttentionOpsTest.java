package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.longexposure.backend.cpu.CpuAttention;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.backend.cpu.CpuSparseAttention;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;
import org.longexposure.testkit.reference.RefBlockSparseAttention;

/**
 * The CPU block-sparse attention ({@link CpuSparseAttention}): with the full layout it must reproduce the dense
 * {@link CpuAttention} bit for bit (it runs the same loops); on random layouts (densities 0.1, 0.3, 0.7, with and
 * without the forced diagonal and column 0, block sizes 1, 5, 16 and T not a multiple of the block) it must match the
 * float64 {@link RefBlockSparseAttention} within the "attention" tolerance rows, under right and left padding and
 * holes; 1 and 3 threads must agree bit for bit; rows that see no key give exact zeros and lse = −∞; bad layouts are
 * rejected naming the head, the query block and the value.
 */
class SparseAttentionOpsTest {
    /** How the keys of one sequence are masked. */
    enum Pad { FULL, RIGHT, LEFT, HOLES }

    private static CpuBackend layouts;

    @BeforeAll
    static void openBackend() {
        layouts = new CpuBackend(1);
    }

    @AfterAll
    static void closeBackend() {
        layouts.close();
    }

    /** The inputs of one case, as floats (what the engine gets) and their masks. */
    record Inputs(int B, int T, int NH, int HS, float scale, float[] q, float[] k, float[] v, float[] dOut,
                  int[] keyMask) {
        static Inputs random(long seed, int B, int T, int NH, int HS, float sharpness, Pad... pads) {
            Rng rng = new Rng(seed);
            int n = B * T * NH * HS;
            float[] q = rng.normalFloats(n, 0, 1.5);
            float[] k = rng.normalFloats(n, 0, 1.5);
            float[] v = rng.normalFloats(n);
            float[] dOut = rng.normalFloats(n);
            int[] m = new int[B * T];
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < T; t++) {
                    m[b * T + t] = switch (pads[b]) {
                        case FULL -> 1;
                        case RIGHT -> t < T - Math.max(1, T / 3) ? 1 : 0;
                        case LEFT -> t >= Math.max(1, T / 3) ? 1 : 0;
                        // Key 0 padded too, so the first rows see nothing.
                        case HOLES -> t > 0 && rng.nextDouble() < 0.7 ? 1 : 0;
                    };
                }
            }
            return new Inputs(B, T, NH, HS, (float) (sharpness / Math.sqrt(HS)), q, k, v, dOut, m);
        }

        int C() {
            return NH * HS;
        }
    }

    // --- (a) the full layout is the dense op

    static Stream<Arguments> fullCases() {
        return Stream.of(
                Arguments.of(1, 64, 2, 64, 64, new Pad[] {Pad.FULL}),
                Arguments.of(2, 70, 3, 17, 16, new Pad[] {Pad.HOLES, Pad.LEFT}),
                Arguments.of(2, 33, 2, 12, 5, new Pad[] {Pad.RIGHT, Pad.FULL}),
                Arguments.of(1, 21, 1, 8, 1, new Pad[] {Pad.HOLES}),
                Arguments.of(2, 45, 4, 20, 7, new Pad[] {Pad.LEFT, Pad.HOLES}),
                Arguments.of(1, 150, 2, 33, 64, new Pad[] {Pad.RIGHT}));
    }

    @ParameterizedTest(name = "B={0} T={1} NH={2} HS={3} block={4} masks={5}")
    @MethodSource("fullCases")
    void fullLayoutIsBitIdenticalToDenseAttention(int B, int T, int NH, int HS, int blockSize, Pad[] pads) {
        Inputs in = Inputs.random(17L * T + blockSize, B, T, NH, HS, 1f, pads);
        BlockLayout full = BlockLayouts.full(NH, T, blockSize, layouts);
        float[][] dense = runDense(in);
        float[][] sparse = runSparse(2, in, full);
        String[] names = {"out", "lse", "dQ", "dK", "dV"};
        for (int i = 0; i < names.length; i++) {
            assertThat(sparse[i]).as("%s of the full layout (block %d) vs dense attention, T=%d", names[i],
                    blockSize, T).isEqualTo(dense[i]);
        }
    }

    // --- (b), (c) random layouts against the float64 reference, and thread-count independence

    static Stream<Arguments> randomCases() {
        List<Arguments> cases = new ArrayList<>();
        int[] blockSizes = {1, 5, 16};
        double[] densities = {0.1, 0.3, 0.7};
        int[] lengths = {37, 50, 83};
        Pad[][] pads = {{Pad.RIGHT, Pad.HOLES}, {Pad.LEFT, Pad.FULL}, {Pad.HOLES, Pad.LEFT}};
        int c = 0;
        for (int bs : blockSizes) {
            for (double density : densities) {
                boolean diag = c % 2 == 0;
                boolean first = c % 4 < 2;
                int T = bs == 1 ? 29 + c : lengths[c % 3];
                cases.add(Arguments.of(T, 2, 12 + c % 5, bs, density, diag, first, pads[c % 3], 1f));
                c++;
            }
        }
        // A sharp softmax (score gaps of hundreds) and a head size above the vector length.
        cases.add(Arguments.of(70, 3, 17, 16, 0.3, true, true, new Pad[] {Pad.HOLES, Pad.RIGHT}, 6f));
        cases.add(Arguments.of(45, 2, 40, 5, 0.5, false, true, new Pad[] {Pad.FULL, Pad.HOLES}, 1f));
        return cases.stream();
    }

    @ParameterizedTest(name = "T={0} NH={1} HS={2} block={3} density={4} diag={5} col0={6} masks={7} sharp={8}")
    @MethodSource("randomCases")
    void randomLayoutsMatchReferenceWithAnyThreadCount(int T, int NH, int HS, int blockSize, double density,
                                                       boolean keepDiagonal, boolean keepFirstColumn, Pad[] pads,
                                                       float sharpness) {
        int B = pads.length;
        Inputs in = Inputs.random(1000L * T + 31L * blockSize + HS, B, T, NH, HS, sharpness, pads);
        BlockLayout layout = BlockLayouts.random(NH, T, blockSize, density, 7L * T + blockSize, keepDiagonal,
                keepFirstColumn, layouts);
        String what = "T=" + T + " NH=" + NH + " HS=" + HS + " block=" + blockSize + " density=" + density
                + " diag=" + keepDiagonal + " col0=" + keepFirstColumn + " masks=" + Arrays.toString(pads);
        checkAgainstReference(what, in, layout);
    }

    // --- (e) rows whose query block lists nothing

    @Test
    void emptyRowsGiveZeroOutputInfiniteLseAndNoGradient() {
        int T = 23;
        int NH = 2;
        int bs = 4;
        int nQB = 6;
        boolean[][][] keep = new boolean[NH][nQB][nQB];
        for (int qb = 0; qb < nQB; qb++) {
            // Head 0: query blocks 2 and 5 list nothing; the others list the diagonal and, for odd rows, block 1.
            if (qb != 2 && qb != 5) {
                keep[0][qb][qb] = true;
                keep[0][qb][1] |= qb % 2 == 1;
            }
            // Head 1: only key block 0, from query block 1 on (query block 0 is empty).
            keep[1][qb][0] = qb >= 1;
        }
        Inputs in = Inputs.random(77, 2, T, NH, 9, 1f, Pad.FULL, Pad.RIGHT);
        BlockLayout layout = BlockLayouts.fromBooleans(keep, T, bs, layouts);
        float[][] r = checkAgainstReference("rows with empty query blocks", in, layout);
        int C = in.C();
        for (int b = 0; b < in.B(); b++) {
            for (int t = 0; t < T; t++) {
                int qb = t / bs;
                boolean empty0 = qb == 2 || qb == 5;
                boolean empty1 = qb == 0;
                for (int h = 0; h < NH; h++) {
                    if (h == 0 ? empty0 : empty1) {
                        assertThat(r[1][(b * NH + h) * T + t]).isEqualTo(Float.NEGATIVE_INFINITY);
                        for (int d = 0; d < in.HS(); d++) {
                            int at = (b * T + t) * C + h * in.HS() + d;
                            assertThat(r[0][at] == 0 && r[2][at] == 0)
                                    .as("out and dQ of empty row (b %d, t %d, h %d)", b, t, h).isTrue();
                        }
                    }
                }
            }
        }

        // A layout listing nothing at all (colIdx still holds one element).
        BlockLayout none = BlockLayouts.fromBooleans(new boolean[NH][nQB][nQB], T, bs, layouts);
        assertThat(none.colIdx().numel()).isEqualTo(1);
        float[][] z = runSparse(1, in, none);
        for (int i = 0; i < 5; i++) {
            float expect = i == 1 ? Float.NEGATIVE_INFINITY : 0f;
            for (float x : z[i]) {
                assertThat(x).isEqualTo(expect);
            }
        }
    }

    // --- (d) invalid layouts

    @Test
    void rejectsInvalidLayoutsNamingHeadBlockAndValue() {
        // NH = 2, T = 10, block 4: nQB = 3, rows 0..2 are head 0, rows 3..5 head 1.
        int NH = 2;
        int T = 10;
        Inputs in = Inputs.random(5, 1, T, NH, 4, 1f, Pad.FULL);
        int[] goodPtr = {0, 1, 3, 5, 6, 7, 9};
        int[] goodCol = {0, 0, 1, 1, 2, 0, 1, 0, 2};
        assertThat(runSparse(1, in, layout(4, NH, T, goodPtr, goodCol))[0]).doesNotContain(Float.NaN);

        expectRejected(layout(4, NH, T, new int[] {0, 1, 3, 2, 6, 7, 9}, goodCol),
                "head 0, query block 2", "rowPtr[3] = 2");
        expectRejected(layout(4, NH, T, new int[] {0, 1, 3, 5, 6, 7, 10}, goodCol),
                "head 1, query block 2", "rowPtr[6] = 10", "colIdx size 9");
        expectRejected(layout(4, NH, T, new int[] {1, 1, 3, 5, 6, 7, 9}, goodCol), "rowPtr[0]", "got 1");
        // Head 1, query block 1 (row 4) lists key block 3 = nQB.
        expectRejected(layout(4, NH, T, goodPtr, new int[] {0, 0, 1, 1, 2, 0, 3, 0, 2}),
                "head 1, query block 1", "colIdx[6] = 3", "outside [0, 3)");
        expectRejected(layout(4, NH, T, goodPtr, new int[] {0, 0, 1, 1, 2, 0, -1, 0, 2}),
                "head 1, query block 1", "colIdx[6] = -1");
        // Head 0, query block 1 lists key block 2: above the diagonal.
        expectRejected(layout(4, NH, T, goodPtr, new int[] {0, 0, 2, 1, 2, 0, 1, 0, 2}),
                "head 0, query block 1", "colIdx[2] = 2", "above the diagonal");
        // Head 1, query block 2 lists 2 then 0, and 0 twice.
        expectRejected(layout(4, NH, T, goodPtr, new int[] {0, 0, 1, 1, 2, 0, 1, 2, 0}),
                "head 1, query block 2", "colIdx[8] = 0", "not strictly ascending");
        expectRejected(layout(4, NH, T, new int[] {0, 1, 3, 5, 6, 7, 9}, new int[] {0, 0, 1, 1, 2, 0, 1, 0, 0}),
                "head 1, query block 2", "colIdx[8] = 0", "not strictly ascending");
        // A layout built for other sizes.
        expectRejected(layout(4, NH, 12, goodPtr, goodCol), "seqLen 12", "T 10");
        expectRejected(BlockLayouts.full(1, T, 4, layouts), "numHeads 1");
    }

    private void expectRejected(BlockLayout bad, String... fragments) {
        Inputs in = Inputs.random(5, 1, 10, 2, 4, 1f, Pad.FULL);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuSparseAttention ops = new CpuSparseAttention(threads);
            Tensor[] t = tensors(arena, in);
            assertThatThrownBy(() -> ops.blockSparseAttentionForward(t[5], t[6], t[0], t[1], t[2], t[4], in.NH(),
                    in.scale(), bad))
                    .isInstanceOf(IllegalArgumentException.class).message().contains(fragments)
                    .contains("blockSparseAttentionForward layout");
            assertThatThrownBy(() -> ops.blockSparseAttentionBackward(t[7], t[8], t[9], t[3], t[5], t[6], t[0], t[1],
                    t[2], t[4], in.NH(), in.scale(), bad))
                    .isInstanceOf(IllegalArgumentException.class).message().contains(fragments);
        }
    }

    private static BlockLayout layout(int blockSize, int NH, int T, int[] rowPtr, int[] colIdx) {
        Tensor p = layouts.allocate(DType.I32, rowPtr.length).copyFrom(rowPtr);
        Tensor c = layouts.allocate(DType.I32, colIdx.length).copyFrom(colIdx);
        return new BlockLayout(blockSize, NH, T, p, c);
    }

    // --- helpers

    /**
     * Runs the sparse op with 1 and 3 threads (bit-identical), checks out, lse, dQ, dK, dV against the reference
     * with the "attention" rows, lse = −∞ exactly where the reference has it, and exact zeros for rows that see no
     * key and for keys no query sees. Returns the 1-thread results.
     */
    private static float[][] checkAgainstReference(String what, Inputs in, BlockLayout layout) {
        int B = in.B();
        int T = in.T();
        int NH = in.NH();
        int HS = in.HS();
        int C = in.C();
        int n = B * T * C;
        int[] rowPtr = ints(layout.rowPtr());
        int[] colIdx = ints(layout.colIdx());
        double[] refOut = new double[n];
        double[] refLse = new double[B * NH * T];
        double[] refDQ = new double[n];
        double[] refDK = new double[n];
        double[] refDV = new double[n];
        double[] q = Rng.toDouble(in.q());
        double[] k = Rng.toDouble(in.k());
        double[] v = Rng.toDouble(in.v());
        RefBlockSparseAttention.forward(refOut, refLse, q, k, v, in.keyMask(), rowPtr, colIdx, layout.blockSize(), B,
                T, NH, HS, in.scale());
        RefBlockSparseAttention.backward(refDQ, refDK, refDV, Rng.toDouble(in.dOut()), q, k, v, in.keyMask(), rowPtr,
                colIdx, layout.blockSize(), B, T, NH, HS, in.scale());

        float[][] single = runSparse(1, in, layout);
        float[][] multi = runSparse(3, in, layout);
        String[] names = {"out", "lse", "dQ", "dK", "dV"};
        double[][] refs = {refOut, refLse, refDQ, refDK, refDV};
        for (int i = 0; i < names.length; i++) {
            int[] shape = i == 1 ? new int[] {B, NH, T} : new int[] {B, T, C};
            TensorAssert.assertClose("attention", i < 2 ? Tolerances.Kind.FORWARD : Tolerances.Kind.GRAD, single[i],
                    refs[i], shape);
            assertThat(multi[i]).as("%s with 3 threads vs 1 thread, %s", names[i], what).isEqualTo(single[i]);
        }
        for (int i = 0; i < refLse.length; i++) {
            assertThat(single[1][i] == Float.NEGATIVE_INFINITY).as("lse[%d] is -inf iff the reference's is, %s", i,
                    what).isEqualTo(refLse[i] == Double.NEGATIVE_INFINITY);
        }
        // Exact zeros where no probability reaches: out and dQ of rows that see no key, dK and dV of keys that no
        // row sees (padding, or in no listed tile of any row of the head).
        boolean[][][] keep = BlockLayouts.toBooleans(layout);
        int bs = layout.blockSize();
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int t = 0; t < T; t++) {
                    boolean rowEmpty = refLse[(b * NH + h) * T + t] == Double.NEGATIVE_INFINITY;
                    boolean keySeen = false;
                    for (int i = t; i < T && !keySeen && in.keyMask()[b * T + t] != 0; i++) {
                        keySeen = keep[h][i / bs][t / bs];
                    }
                    for (int d = 0; d < HS; d++) {
                        int at = (b * T + t) * C + h * HS + d;
                        if (rowEmpty) {
                            assertThat(single[0][at] == 0 && single[2][at] == 0)
                                    .as("out and dQ of row (b %d, t %d, h %d) that sees no key, %s", b, t, h, what)
                                    .isTrue();
                        }
                        if (!keySeen) {
                            assertThat(single[3][at] == 0 && single[4][at] == 0)
                                    .as("dK and dV of key (b %d, t %d, h %d) that no row sees, %s", b, t, h, what)
                                    .isTrue();
                        }
                    }
                }
            }
        }
        return single;
    }

    /** q, k, v, dOut, keyMask, then NaN-filled out, lse, dQ, dK, dV (an unwritten element fails the checks). */
    private static Tensor[] tensors(Arena arena, Inputs in) {
        int B = in.B();
        int T = in.T();
        int C = in.C();
        return new Tensor[] {
            Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(in.q()),
            Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(in.k()),
            Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(in.v()),
            Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(in.dOut()),
            Tensor.allocateHost(arena, DType.I32, B, T).copyFrom(in.keyMask()),
            nans(arena, B, T, C), nans(arena, B, in.NH(), T), nans(arena, B, T, C), nans(arena, B, T, C),
            nans(arena, B, T, C)};
    }

    private static float[][] runSparse(int threadCount, Inputs in, BlockLayout layout) {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(threadCount)) {
            CpuSparseAttention ops = new CpuSparseAttention(threads);
            Tensor[] t = tensors(arena, in);
            ops.blockSparseAttentionForward(t[5], t[6], t[0], t[1], t[2], t[4], in.NH(), in.scale(), layout);
            ops.blockSparseAttentionBackward(t[7], t[8], t[9], t[3], t[5], t[6], t[0], t[1], t[2], t[4], in.NH(),
                    in.scale(), layout);
            return results(t);
        }
    }

    private static float[][] runDense(Inputs in) {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
            AttentionOps ops = new CpuAttention(threads);
            Tensor[] t = tensors(arena, in);
            ops.attentionForward(t[5], t[6], t[0], t[1], t[2], t[4], in.NH(), in.scale());
            ops.attentionBackward(t[7], t[8], t[9], t[3], t[5], t[6], t[0], t[1], t[2], t[4], in.NH(), in.scale());
            return results(t);
        }
    }

    private static float[][] results(Tensor[] t) {
        return new float[][] {t[5].toFloatArray(), t[6].toFloatArray(), t[7].toFloatArray(), t[8].toFloatArray(),
                t[9].toFloatArray()};
    }

    private static Tensor nans(Arena arena, long... dims) {
        Tensor t = Tensor.allocateHost(arena, DType.F32, dims);
        float[] a = new float[Math.toIntExact(t.numel())];
        Arrays.fill(a, Float.NaN);
        return t.copyFrom(a);
    }

    private static int[] ints(Tensor t) {
        int[] a = new int[Math.toIntExact(t.numel())];
        for (int i = 0; i < a.length; i++) {
            a[i] = t.getInt(i);
        }
        return a;
    }
}
