package org.longexposure.backend.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.longexposure.tensor.DType;

/**
 * {@link CpuGemm} against a float64 triple loop over the very values the engine reads (F16/BF16 operands are
 * rounded first, then widened), on awkward sizes, strided and transposed views, offsets, padded C rows,
 * accumulate, alpha, F16/BF16 operands, 1 and 3 threads, and block sizes small enough to cross every cache-block
 * edge. Inputs are seeded uniform values in [-1, 1), never zero.
 *
 * <p>Tolerance: each of the K ≤ 512 F32 fused multiply-adds rounds the running sum by at most 2⁻²⁴ of its size,
 * so a result is typically off by about √K·2⁻²⁴, near 1e-6 relative; |c − ref| ≤ 1e-4 + 1e-4·|ref| elementwise
 * and ‖c − ref‖/‖ref‖ < 1e-5 leave ample room and still catch any dropped, doubled or misplaced term (a typical
 * term is about 0.25).
 */
class CpuGemmTest {
    private static final double ATOL = 1e-4;
    private static final double RTOL = 1e-4;
    private static final double REL_FROBENIUS = 1e-5;
    private static final int[] AWKWARD = {0, 1, 2, 7, 15, 17, 31, 33, 63, 65, 100, 129, 257};

    private static CpuThreads one;
    private static CpuThreads three;

    @BeforeAll
    static void startThreads() {
        one = new CpuThreads(1);
        three = new CpuThreads(3);
    }

    @AfterAll
    static void stopThreads() {
        one.close();
        three.close();
    }

    /** Default blocking, but every thread busy however small the product. */
    static CpuGemm allThreads(CpuThreads threads) {
        return new CpuGemm(threads, CpuGemm.DEFAULT_MC, CpuGemm.DEFAULT_KC, CpuGemm.DEFAULT_NC, 0);
    }

    /** How an operand is laid out in memory. */
    enum Layout { ROW_MAJOR, TRANSPOSED, STRIDED }

    /** A logical (rows, cols) operand: its view, and the values the engine will see, as doubles. */
    record Operand(MatrixRef ref, double[] values, int rows, int cols) {
        double at(int r, int c) {
            return values[r * cols + c];
        }
    }

    /**
     * Stores a random (rows, cols) matrix of the dtype at element offset {@code offset} in the given layout:
     * row-major with padded rows, the transpose of a row-major (cols, rows) array (swapped strides), or with
     * neither stride 1 (every second element of padded rows).
     */
    static Operand operand(Arena arena, SplittableRandom rnd, int rows, int cols, DType dtype, Layout layout,
                           long offset) {
        long rowStride;
        long colStride;
        long span;
        switch (layout) {
            case ROW_MAJOR -> {
                rowStride = cols + 3;
                colStride = 1;
                span = rows * rowStride;
            }
            case TRANSPOSED -> {
                rowStride = 1;
                colStride = rows + 2;
                span = cols * colStride;
            }
            default -> {
                colStride = 2;
                rowStride = 2L * cols + 5;
                span = rows * rowStride;
            }
        }
        long elements = offset + span + 1;
        MemorySegment seg = arena.allocate(elements * dtype.byteSize(), 16);
        for (long e = 0; e < elements; e++) {
            put(seg, dtype, e, (float) (rnd.nextDouble() * 2 - 1));
        }
        double[] values = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                long e = offset + r * rowStride + c * colStride;
                float v = nonZero(rnd);
                put(seg, dtype, e, v);
                values[r * cols + c] = get(seg, dtype, e);
            }
        }
        return new Operand(new MatrixRef(seg, dtype, offset, rowStride, colStride), values, rows, cols);
    }

    private static float nonZero(SplittableRandom rnd) {
        double u = rnd.nextDouble() * 2 - 1;
        return (float) (Math.abs(u) < 1e-3 ? 0.5 : u);
    }

    private static void put(MemorySegment s, DType d, long e, float v) {
        switch (d) {
            case F32 -> s.setAtIndex(ValueLayout.JAVA_FLOAT, e, v);
            case F16 -> s.setAtIndex(ValueLayout.JAVA_SHORT, e, Float.floatToFloat16(v));
            case BF16 -> s.setAtIndex(ValueLayout.JAVA_SHORT, e, (short) (Float.floatToRawIntBits(v) >>> 16));
            default -> throw new IllegalArgumentException("test operand dtype " + d);
        }
    }

    private static double get(MemorySegment s, DType d, long e) {
        return switch (d) {
            case F32 -> s.getAtIndex(ValueLayout.JAVA_FLOAT, e);
            case F16 -> Float.float16ToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT, e));
            case BF16 -> Float.intBitsToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT, e) << 16);
            default -> throw new IllegalArgumentException("test operand dtype " + d);
        };
    }

    /** One product: C (M, N) inside a (M, ldc) buffer at offset cOffset, checked against float64. */
    record Case(int m, int n, int k, DType aType, Layout aLayout, DType bType, Layout bLayout, float alpha,
                boolean accumulate, long cOffset, int ldcPad) {
        @Override
        public String toString() {
            return "(M,N,K)=(" + m + "," + n + "," + k + ") A " + aType + " " + aLayout + ", B " + bType + " "
                    + bLayout + ", alpha " + alpha + (accumulate ? ", +=" : ", =") + ", cOffset " + cOffset
                    + ", ldc N+" + ldcPad;
        }
    }

    /** Runs the case and returns C's whole buffer (for cross-checks between thread counts). */
    static float[] runAndCheck(Case tc, CpuGemm gemm, long seed) {
        // shared: the worker threads read A and B and write C
        try (Arena arena = Arena.ofShared()) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Operand a = operand(arena, rnd, tc.m, tc.k, tc.aType, tc.aLayout, 5);
            Operand b = operand(arena, rnd, tc.k, tc.n, tc.bType, tc.bLayout, 11);
            long ldc = tc.n + tc.ldcPad;
            long cElements = tc.cOffset + tc.m * ldc + 4;
            MemorySegment c = arena.allocate(cElements * Float.BYTES, 16);
            float[] before = new float[(int) cElements];
            for (int e = 0; e < cElements; e++) {
                before[e] = nonZero(rnd);
                c.setAtIndex(ValueLayout.JAVA_FLOAT, e, before[e]);
            }

            gemm.gemm(tc.m, tc.n, tc.k, tc.alpha, a.ref(), b.ref(), c, tc.cOffset, ldc, tc.accumulate);

            float[] after = c.toArray(ValueLayout.JAVA_FLOAT);
            double[] got = new double[tc.m * tc.n];
            double[] want = new double[tc.m * tc.n];
            boolean[] inside = new boolean[(int) cElements];
            for (int i = 0; i < tc.m; i++) {
                for (int j = 0; j < tc.n; j++) {
                    double s = 0;
                    for (int p = 0; p < tc.k; p++) {
                        s += a.at(i, p) * b.at(p, j);
                    }
                    int e = (int) (tc.cOffset + i * ldc + j);
                    inside[e] = true;
                    want[i * tc.n + j] = (double) tc.alpha * s + (tc.accumulate ? before[e] : 0.0);
                    got[i * tc.n + j] = after[e];
                }
            }
            for (int e = 0; e < cElements; e++) {
                if (!inside[e]) {
                    assertThat(Float.floatToRawIntBits(after[e]))
                            .as("%s: C element %d lies outside the (M, N) view and must be untouched", tc, e)
                            .isEqualTo(Float.floatToRawIntBits(before[e]));
                }
            }
            assertClose(tc.toString(), tc.n, got, want);
            return after;
        }
    }

    /** |got − want| ≤ ATOL + RTOL·|want| everywhere and a small Frobenius relative error; a readable report. */
    static void assertClose(String what, int n, double[] got, double[] want) {
        double maxErr = 0;
        double maxRel = 0;
        int worst = -1;
        double diff2 = 0;
        double ref2 = 0;
        List<String> bad = new ArrayList<>();
        for (int i = 0; i < got.length; i++) {
            double err = Math.abs(got[i] - want[i]);
            diff2 += err * err;
            ref2 += want[i] * want[i];
            if (!(err <= ATOL + RTOL * Math.abs(want[i])) && bad.size() < 5) {
                bad.add("(" + i / Math.max(n, 1) + "," + i % Math.max(n, 1) + ") got " + got[i] + " want " + want[i]);
            }
            if (!(err <= maxErr)) {
                maxErr = err;
                worst = i;
            }
            maxRel = Math.max(maxRel, err / Math.max(Math.abs(want[i]), 1e-30));
        }
        String report = what + ": max abs err " + maxErr + " at " + worst + ", max rel err " + maxRel
                + ", first bad " + bad;
        assertThat(bad).as(report).isEmpty();
        if (ref2 > 0) {
            assertThat(Math.sqrt(diff2 / ref2)).as(report).isLessThan(REL_FROBENIUS);
        }
    }

    // --- cases

    static Stream<Arguments> awkwardSizes() {
        SplittableRandom pick = new SplittableRandom(7);
        List<Arguments> out = new ArrayList<>();
        for (int m : AWKWARD) {
            for (int n : AWKWARD) {
                int k = AWKWARD[pick.nextInt(AWKWARD.length)];
                // all (M, N) pairs with a random K; the largest ones only now and then, to keep the run short
                if ((long) m * n * k > 2_000_000 && pick.nextInt(4) != 0) {
                    continue;
                }
                out.add(Arguments.of(m, n, k));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "(M,N,K)=({0},{1},{2})")
    @MethodSource("awkwardSizes")
    void awkwardSizesMatchFloat64(int m, int n, int k) {
        Case tc = new Case(m, n, k, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.ROW_MAJOR, 1f, false, 0, 0);
        runAndCheck(tc, new CpuGemm(three), 1000L * m + 31L * n + k);
    }

    static Stream<Case> layouts() {
        List<Case> out = new ArrayList<>();
        int[][] sizes = {{65, 33, 100}, {17, 129, 31}, {100, 7, 257}, {2, 63, 15}, {33, 65, 1}};
        int s = 0;
        for (Layout al : Layout.values()) {
            for (Layout bl : Layout.values()) {
                int[] mnk = sizes[s++ % sizes.length];
                boolean acc = s % 2 == 0;
                float alpha = s % 3 == 0 ? 1f : -0.75f;
                out.add(new Case(mnk[0], mnk[1], mnk[2], DType.F32, al, DType.F32, bl, alpha, acc, 3 + s, s % 4));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("layouts")
    void stridesOffsetsAccumulateAndAlpha(Case tc) {
        runAndCheck(tc, new CpuGemm(one), 42);
        runAndCheck(tc, allThreads(three), 43);
    }

    static Stream<Case> halfPrecision() {
        return Stream.of(
                // y = x·Wᵀ with W (N, K) row-major in F16 or BF16: B has strides (1, K)
                new Case(63, 100, 65, DType.F32, Layout.ROW_MAJOR, DType.F16, Layout.TRANSPOSED, 1f, false, 0, 0),
                new Case(33, 129, 17, DType.F32, Layout.ROW_MAJOR, DType.BF16, Layout.TRANSPOSED, 1f, true, 1, 5),
                // dX = dY·W with W row-major
                new Case(31, 65, 100, DType.F32, Layout.ROW_MAJOR, DType.F16, Layout.ROW_MAJOR, 0.5f, false, 2, 1),
                new Case(15, 33, 63, DType.F32, Layout.ROW_MAJOR, DType.BF16, Layout.ROW_MAJOR, 2f, true, 0, 0),
                // both operands half precision, odd layouts
                new Case(17, 31, 129, DType.BF16, Layout.TRANSPOSED, DType.F16, Layout.STRIDED, -1f, false, 7, 2),
                new Case(7, 63, 33, DType.F16, Layout.STRIDED, DType.BF16, Layout.ROW_MAJOR, 1.5f, true, 0, 3));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("halfPrecision")
    void halfPrecisionOperandsAreWidenedExactly(Case tc) {
        runAndCheck(tc, new CpuGemm(one), 5);
        runAndCheck(tc, allThreads(three), 6);
    }

    static Stream<Case> loraShapes() {
        return Stream.of(
                // h = x·Aᵀ with the LoRA A (R, in) = (8, 512): N = 8, the narrow path
                new Case(130, 8, 512, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.TRANSPOSED, 1f, false, 0, 0),
                // dH = dY·B with the LoRA B (out, R) = (512, 8) row-major
                new Case(130, 8, 512, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.ROW_MAJOR, 2f, true, 3, 1),
                // y += scaling·h·Bᵀ: K = 8
                new Case(130, 512, 8, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.TRANSPOSED, 2f, true, 0, 0),
                // dA = dHᵀ·x: M = 8, the short path; then with more columns than one L1 chunk of C holds
                new Case(8, 512, 130, DType.F32, Layout.TRANSPOSED, DType.F32, Layout.ROW_MAJOR, 1f, true, 0, 0),
                new Case(15, 1100, 33, DType.F32, Layout.ROW_MAJOR, DType.F16, Layout.ROW_MAJOR, -0.5f, true, 2, 3),
                new Case(16, 2100, 17, DType.BF16, Layout.STRIDED, DType.F32, Layout.ROW_MAJOR, 1f, false, 0, 1),
                // either side of the narrow path's limit N ≤ L (16 with AVX-512, 8 with AVX2), odd layouts
                new Case(33, 16, 100, DType.F32, Layout.STRIDED, DType.F16, Layout.TRANSPOSED, 0.5f, true, 1, 2),
                new Case(33, 17, 100, DType.F32, Layout.STRIDED, DType.F16, Layout.TRANSPOSED, 0.5f, true, 1, 2),
                new Case(65, 9, 33, DType.BF16, Layout.TRANSPOSED, DType.F32, Layout.STRIDED, -1f, false, 2, 0),
                new Case(17, 3, 65, DType.F16, Layout.ROW_MAJOR, DType.BF16, Layout.ROW_MAJOR, 1f, false, 0, 3));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("loraShapes")
    void narrowAndShallowLoraProducts(Case tc) {
        runAndCheck(tc, new CpuGemm(one), 21);
        runAndCheck(tc, allThreads(three), 22);
    }

    static Stream<Case> blockEdges() {
        return Stream.of(
                new Case(100, 129, 65, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.ROW_MAJOR, 1f, false, 0, 0),
                new Case(65, 257, 33, DType.F32, Layout.TRANSPOSED, DType.F16, Layout.TRANSPOSED, 0.5f, true, 4, 3),
                new Case(257, 17, 100, DType.BF16, Layout.ROW_MAJOR, DType.F32, Layout.STRIDED, -2f, false, 1, 1),
                new Case(2, 257, 129, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.TRANSPOSED, 1f, true, 0, 0),
                new Case(1, 1, 257, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.ROW_MAJOR, 1f, false, 0, 0));
    }

    /** Tiny cache blocks (M 24, K 16, N 64 before rounding) so every loop of the blocking runs many times. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("blockEdges")
    void smallCacheBlocksCrossEveryEdge(Case tc) {
        runAndCheck(tc, new CpuGemm(one, 24, 16, 64, 0), 77);
        runAndCheck(tc, new CpuGemm(three, 24, 16, 64, 0), 78);
        runAndCheck(tc, new CpuGemm(three, 1, 1, 1, 0), 79);
    }

    /** Only KC fixes the order of the sums: threads and the M and N blocking must not change a single bit. */
    @Test
    void resultDependsOnlyOnTheKBlock() {
        for (Case tc : List.of(
                new Case(65, 100, 257, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.ROW_MAJOR, 1f, false, 0, 0),
                new Case(5, 257, 65, DType.F32, Layout.ROW_MAJOR, DType.F16, Layout.TRANSPOSED, 1f, true, 0, 2))) {
            float[] c1 = runAndCheck(tc, new CpuGemm(one, 288, 64, 4096, 0), 9);
            float[] c3 = runAndCheck(tc, new CpuGemm(three, 288, 64, 4096, 0), 9);
            float[] c3small = runAndCheck(tc, new CpuGemm(three, 24, 64, 64, 0), 9);
            assertThat(firstDifference(c3, c1)).as("%s, 3 threads vs 1: first differing element", tc).isEqualTo(-1);
            assertThat(firstDifference(c3small, c1)).as("%s, other M and N blocks: first differing element", tc)
                    .isEqualTo(-1);
        }
    }

    private static int firstDifference(float[] x, float[] y) {
        for (int i = 0; i < x.length; i++) {
            if (Float.floatToRawIntBits(x[i]) != Float.floatToRawIntBits(y[i])) {
                return i;
            }
        }
        return x.length == y.length ? -1 : x.length;
    }

    @Test
    void emptyKOverwritesWithZerosOrLeavesCAlone() {
        for (boolean acc : new boolean[] {false, true}) {
            for (float alpha : new float[] {1f, 0f}) {
                int k = alpha == 0f ? 9 : 0;
                Case tc = new Case(7, 17, k, DType.F32, Layout.ROW_MAJOR, DType.F32, Layout.ROW_MAJOR, alpha, acc, 3,
                        2);
                runAndCheck(tc, allThreads(three), 3);
            }
        }
    }

    @Test
    void rejectsUnsupportedDtypeAndShortSegments() {
        CpuGemm gemm = new CpuGemm(one);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(4L * 64);
            MatrixRef f64 = MatrixRef.rowMajor(s, DType.F64, 0, 4);
            MatrixRef f32 = MatrixRef.rowMajor(s, DType.F32, 0, 4);
            assertThatThrownBy(() -> gemm.gemm(4, 4, 4, 1f, f64, f32, s, 0, 4, false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("A").hasMessageContaining("f64");
            assertThatThrownBy(() -> gemm.gemm(4, 4, 20, 1f, f32, f32, s, 0, 4, false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("B");
            assertThatThrownBy(() -> gemm.gemm(4, 4, 4, 1f, f32, f32, s, 60, 4, false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ldc");
            assertThatThrownBy(() -> gemm.gemm(4, 5, 4, 1f, f32, f32, s, 0, 4, false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ldc 4");
        }
    }
}
