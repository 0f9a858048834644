package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.longexposure.backend.cpu.CpuAttention;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.reference.RefAttention;

/**
 * {@link AttentionOps} on the CPU backend against the float64 {@link RefAttention}: forward (out, lse) and backward
 * (dQ, dK, dV) on seeded random inputs with awkward shapes and right padding, left padding, holes and fully padded
 * sequences; with 1 and 3 threads, which must agree bit for bit. Rows that see no key must give out = 0,
 * lse = −∞ and zero gradients; padded keys must get zero dK, dV.
 */
class AttentionOpsTest {
    private static final double FWD_ATOL = 1e-5;
    private static final double FWD_RTOL = 1e-4;
    private static final double GRAD_ATOL = 1e-4;
    private static final double GRAD_RTOL = 1e-3;

    /** How the keys of one sequence are masked. */
    enum Pad { FULL, RIGHT, LEFT, HOLES, EMPTY }

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(1, 1, 1, 5, new Pad[] {Pad.FULL}, 1f),
                Arguments.of(2, 1, 2, 12, new Pad[] {Pad.LEFT, Pad.FULL}, 1f),
                Arguments.of(2, 7, 3, 12, new Pad[] {Pad.RIGHT, Pad.LEFT}, 1f),
                Arguments.of(3, 7, 4, 64, new Pad[] {Pad.HOLES, Pad.FULL, Pad.LEFT}, 1f),
                Arguments.of(3, 33, 2, 17, new Pad[] {Pad.HOLES, Pad.RIGHT, Pad.LEFT}, 1f),
                Arguments.of(2, 33, 4, 64, new Pad[] {Pad.FULL, Pad.EMPTY}, 1f),
                Arguments.of(1, 70, 4, 64, new Pad[] {Pad.HOLES}, 1f),
                Arguments.of(3, 70, 1, 5, new Pad[] {Pad.LEFT, Pad.HOLES, Pad.FULL}, 1f),
                // A sharp softmax: score gaps of hundreds, so most exponentials underflow to 0.
                Arguments.of(2, 70, 3, 17, new Pad[] {Pad.RIGHT, Pad.HOLES}, 6f),
                Arguments.of(1, 150, 2, 12, new Pad[] {Pad.HOLES}, 1f),
                Arguments.of(2, 200, 2, 80, new Pad[] {Pad.FULL, Pad.LEFT}, 1f));
    }

    @ParameterizedTest(name = "B={0} T={1} NH={2} HS={3} masks={4} sharpness={5}")
    @MethodSource("cases")
    void matchesReferenceWithAnyThreadCount(int B, int T, int NH, int HS, Pad[] pads, float sharpness) {
        int C = NH * HS;
        int n = B * T * C;
        SplittableRandom rnd = new SplittableRandom(31L * T + 7L * HS + NH + 1000L * B);
        float[] q = gaussian(rnd, n, 1.5f);
        float[] k = gaussian(rnd, n, 1.5f);
        float[] v = gaussian(rnd, n, 1.0f);
        float[] dOut = gaussian(rnd, n, 1.0f);
        int[] keyMask = masks(rnd, B, T, pads);
        float scale = (float) (sharpness / Math.sqrt(HS));
        String shape = "B=" + B + " T=" + T + " NH=" + NH + " HS=" + HS + " masks=" + Arrays.toString(pads)
                + " scale=" + scale;

        double[] refOut = new double[n];
        double[] refLse = new double[B * NH * T];
        double[] refDQ = new double[n];
        double[] refDK = new double[n];
        double[] refDV = new double[n];
        RefAttention.forward(refOut, refLse, widen(q), widen(k), widen(v), keyMask, B, T, NH, HS, scale);
        RefAttention.backward(refDQ, refDK, refDV, widen(dOut), widen(q), widen(k), widen(v), keyMask, B, T, NH,
                HS, scale);

        float[][] single = run(1, q, k, v, dOut, keyMask, B, T, NH, HS, scale);
        float[][] multi = run(3, q, k, v, dOut, keyMask, B, T, NH, HS, scale);
        String[] names = {"out", "lse", "dQ", "dK", "dV"};
        double[][] refs = {refOut, refLse, refDQ, refDK, refDV};
        for (int i = 0; i < names.length; i++) {
            boolean grad = i >= 2;
            assertClose(names[i] + " " + shape, single[i], refs[i], grad ? GRAD_ATOL : FWD_ATOL,
                    grad ? GRAD_RTOL : FWD_RTOL);
            assertThat(multi[i]).as("%s with 3 threads vs 1 thread, %s", names[i], shape).isEqualTo(single[i]);
        }

        // Rows that see no key, and padded keys: exact zeros (and −∞ lse), not merely small values.
        for (int b = 0; b < B; b++) {
            boolean anyVisible = false;
            for (int t = 0; t < T; t++) {
                anyVisible |= keyMask[b * T + t] != 0;
                for (int c = 0; c < C; c++) {
                    int at = (b * T + t) * C + c;
                    if (!anyVisible) {
                        assertThat(single[0][at] == 0 && single[2][at] == 0)
                                .as("out and dQ of row (%d, %d) that sees no key, %s", b, t, shape).isTrue();
                    }
                    if (keyMask[b * T + t] == 0) {
                        assertThat(single[3][at] == 0 && single[4][at] == 0)
                                .as("dK and dV of padded key (%d, %d), %s", b, t, shape).isTrue();
                    }
                }
                for (int h = 0; h < NH && !anyVisible; h++) {
                    assertThat(single[1][(b * NH + h) * T + t]).isEqualTo(Float.NEGATIVE_INFINITY);
                }
            }
        }
    }

    @Test
    void rejectsBadShapesNamingTheArgument() {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            AttentionOps ops = new CpuAttention(threads);
            Tensor x = Tensor.allocateHost(arena, DType.F32, 2, 5, 6);
            Tensor lse = Tensor.allocateHost(arena, DType.F32, 2, 3, 5);
            Tensor mask = Tensor.allocateHost(arena, DType.I32, 2, 5);
            Tensor wrongLse = Tensor.allocateHost(arena, DType.F32, 2, 5, 3);
            Tensor floatMask = Tensor.allocateHost(arena, DType.F32, 2, 5);
            Tensor shortK = Tensor.allocateHost(arena, DType.F32, 2, 4, 6);
            assertThatThrownBy(() -> ops.attentionForward(x, wrongLse, x, x, x, mask, 3, 1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lse");
            assertThatThrownBy(() -> ops.attentionForward(x, lse, x, x, x, floatMask, 3, 1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("keyMask");
            assertThatThrownBy(() -> ops.attentionForward(x, lse, x, x, x, mask, 4, 1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("numHeads");
            assertThatThrownBy(() -> ops.attentionBackward(x, x, x, x, x, lse, x, shortK, x, mask, 3, 1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(" k:");
        }
    }

    /** Forward and backward on fresh tensors pre-filled with NaN (so an unwritten element fails the check). */
    private static float[][] run(int threadCount, float[] q, float[] k, float[] v, float[] dOut, int[] keyMask,
                                 int B, int T, int NH, int HS, float scale) {
        int C = NH * HS;
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(threadCount)) {
            AttentionOps ops = new CpuAttention(threads);
            Tensor tq = Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(q);
            Tensor tk = Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(k);
            Tensor tv = Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(v);
            Tensor tdOut = Tensor.allocateHost(arena, DType.F32, B, T, C).copyFrom(dOut);
            Tensor tMask = Tensor.allocateHost(arena, DType.I32, B, T).copyFrom(keyMask);
            Tensor out = nans(arena, B, T, C);
            Tensor lse = nans(arena, B, NH, T);
            Tensor dQ = nans(arena, B, T, C);
            Tensor dK = nans(arena, B, T, C);
            Tensor dV = nans(arena, B, T, C);
            ops.attentionForward(out, lse, tq, tk, tv, tMask, NH, scale);
            ops.attentionBackward(dQ, dK, dV, tdOut, out, lse, tq, tk, tv, tMask, NH, scale);
            return new float[][] {out.toFloatArray(), lse.toFloatArray(), dQ.toFloatArray(), dK.toFloatArray(),
                    dV.toFloatArray()};
        }
    }

    private static Tensor nans(Arena arena, long... dims) {
        Tensor t = Tensor.allocateHost(arena, DType.F32, dims);
        float[] a = new float[Math.toIntExact(t.numel())];
        Arrays.fill(a, Float.NaN);
        return t.copyFrom(a);
    }

    /** (B, T) key mask, one {@link Pad} kind per sequence. */
    private static int[] masks(SplittableRandom rnd, int B, int T, Pad[] pads) {
        int[] m = new int[B * T];
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                m[b * T + t] = switch (pads[b]) {
                    case FULL -> 1;
                    case RIGHT -> t < T - Math.max(1, T / 3) ? 1 : 0;
                    case LEFT -> t >= Math.max(1, T / 3) ? 1 : 0;
                    // Key 0 padded too, so the first rows see nothing.
                    case HOLES -> t > 0 && rnd.nextDouble() < 0.7 ? 1 : 0;
                    case EMPTY -> 0;
                };
            }
        }
        return m;
    }

    /**
     * Fails unless {@code |x − ref| ≤ atol + rtol·|ref|} everywhere (an infinite ref must be matched exactly),
     * reporting the worst index, its pair, the max abs error and the first pairs.
     */
    private static void assertClose(String what, float[] actual, double[] ref, double atol, double rtol) {
        assertThat(actual).as(what + " length").hasSize(ref.length);
        int worst = -1;
        double worstRatio = 1;
        double maxAbs = 0;
        for (int i = 0; i < ref.length; i++) {
            double err = Math.abs(actual[i] - ref[i]);
            boolean exact = actual[i] == ref[i];
            double ratio = exact ? 0 : Double.isNaN(err) || Double.isInfinite(ref[i]) ? Double.POSITIVE_INFINITY
                    : err / (atol + rtol * Math.abs(ref[i]));
            if (!exact && !Double.isNaN(err) && !Double.isInfinite(err)) {
                maxAbs = Math.max(maxAbs, err);
            }
            if (ratio > worstRatio) {
                worstRatio = ratio;
                worst = i;
            }
        }
        if (worst >= 0) {
            StringBuilder first = new StringBuilder();
            for (int i = 0; i < Math.min(4, ref.length); i++) {
                first.append(" (").append(actual[i]).append(", ").append(ref[i]).append(')');
            }
            fail(what + ": |x - ref| > " + atol + " + " + rtol + "·|ref| at index " + worst + ": x=" + actual[worst]
                    + " ref=" + ref[worst] + " (" + worstRatio + "× the tolerance); max abs error " + maxAbs
                    + "; first pairs" + first);
        }
    }

    private static double[] widen(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    private static float[] gaussian(SplittableRandom rnd, int n, float std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            // Box-Muller: two uniforms give one standard normal.
            a[i] = (float) (std * Math.sqrt(-2 * Math.log(1 - rnd.nextDouble()))
                    * Math.cos(2 * Math.PI * rnd.nextDouble()));
        }
        return a;
    }
}
