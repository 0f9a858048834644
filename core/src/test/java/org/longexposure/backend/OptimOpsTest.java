package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.longexposure.backend.cpu.CpuOptim;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;
import org.longexposure.testkit.reference.RefAdamW;
import org.longexposure.testkit.reference.RefGradClip;

/** CpuOptim against RefAdamW and RefGradClip: several AdamW steps, Σg² order-independence, scale, zero. */
class OptimOpsTest {
    private static final float LR = 1e-3f;
    private static final float BETA1 = 0.9f;
    private static final float BETA2 = 0.999f;
    private static final float EPS = 1e-8f;
    private static final float WD = 0.01f;

    @ParameterizedTest
    @ValueSource(ints = {1, 13, 1003, 70_001})
    void severalAdamWStepsMatchReference(int n) {
        Rng rng = new Rng(n);
        float[] p0 = rng.normalFloats(n);
        double[] p = Rng.toDouble(p0);
        double[] m = new double[n];
        double[] v = new double[n];
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
            CpuOptim optim = new CpuOptim(threads);
            Tensor pt = f32(arena, p0, n);
            Tensor mt = zeros(arena, n);
            Tensor vt = zeros(arena, n);
            for (int step = 1; step <= 5; step++) {
                float[] g = rng.normalFloats(n, 0, 0.1);
                g[0] = step == 2 ? 0f : g[0]; // a zero gradient must leave only decay and momentum
                optim.adamwUpdate(pt, f32(arena, g, n), mt, vt, LR, BETA1, BETA2, EPS, WD, step);
                RefAdamW.step(p, Rng.toDouble(g), m, v, LR, BETA1, BETA2, EPS, WD, step);
            }
            TensorAssert.assertClose("adamw", FORWARD, pt.toFloatArray(), p, n);
            TensorAssert.assertClose("adamw", FORWARD, mt.toFloatArray(), m, n);
            TensorAssert.assertClose("adamw", FORWARD, vt.toFloatArray(), v, n);
        }
    }

    @Test
    void adamWIsBitIdenticalForAnyThreadCount() {
        int n = 200_003;
        Rng rng = new Rng(3);
        float[] p0 = rng.normalFloats(n);
        float[] g = rng.normalFloats(n);
        float[] first = null;
        for (int t : new int[] {1, 2, 3}) {
            try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(t)) {
                CpuOptim optim = new CpuOptim(threads);
                Tensor pt = f32(arena, p0, n);
                Tensor mt = zeros(arena, n);
                Tensor vt = zeros(arena, n);
                for (int step = 1; step <= 2; step++) {
                    optim.adamwUpdate(pt, f32(arena, g, n), mt, vt, LR, BETA1, BETA2, EPS, WD, step);
                }
                if (first == null) {
                    first = pt.toFloatArray();
                } else {
                    TensorAssert.assertBitIdentical("param, threads " + t, first, pt.toFloatArray());
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 13, 16_387, 100_003})
    void sumOfSquaresMatchesReferenceAndIgnoresThreadCount(int n) {
        float[] g = new Rng(n + 1).normalFloats(n, 0, 3);
        double ref = RefGradClip.sumOfSquares(Rng.toDouble(g));
        Double first = null;
        for (int t : new int[] {1, 2, 3}) {
            try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(t)) {
                double s = new CpuOptim(threads).sumOfSquares(f32(arena, g, n));
                TensorAssert.assertClose("sum_of_squares", FORWARD, s, ref);
                if (first == null) {
                    first = s;
                } else {
                    assertThat(Double.doubleToRawLongBits(s)).as("threads %d", t)
                            .isEqualTo(Double.doubleToRawLongBits(first));
                }
            }
        }
    }

    @Test
    void gradientClippingComposesLikeTorch() {
        Rng rng = new Rng(21);
        float[] a = rng.normalFloats(1003, 0, 2);
        float[] b = rng.normalFloats(67, 0, 2);
        double[] ra = Rng.toDouble(a);
        double[] rb = Rng.toDouble(b);
        double refTotal = RefGradClip.clip(1.0, ra, rb);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
            CpuOptim optim = new CpuOptim(threads);
            Tensor ta = f32(arena, a, 1003);
            Tensor tb = f32(arena, b, 67);
            double total = Math.sqrt(optim.sumOfSquares(ta) + optim.sumOfSquares(tb));
            float coef = (float) RefGradClip.clipCoefficient(total, 1.0);
            optim.scale(ta, coef);
            optim.scale(tb, coef);
            TensorAssert.assertClose("sum_of_squares", FORWARD, total, refTotal);
            // The coefficient itself is rounded to float before scaling: one more rounding than the scale row's.
            Tolerances.Tol twoRoundings = new Tolerances.Tol(0, 2.5e-7);
            TensorAssert.assertClose("clipped a", twoRoundings, ta.toFloatArray(), ra, 1003);
            TensorAssert.assertClose("clipped b", twoRoundings, tb.toFloatArray(), rb, 67);
        }
    }

    @Test
    void scaleAndZero() {
        int n = 7 * 14_287;
        float[] x = new Rng(5).normalFloats(n);
        double[] ref = Rng.toDouble(x);
        RefGradClip.scale(ref, -0.37f);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
            CpuOptim optim = new CpuOptim(threads);
            Tensor t = f32(arena, x, 7, 14_287);
            optim.scale(t, -0.37f);
            TensorAssert.assertClose("scale", FORWARD, t.toFloatArray(), ref, n);
            optim.zero(t);
            assertThat(t.toFloatArray()).containsOnly(0f);
        }
    }

    @Test
    void mismatchedShapesAreRejectedNamingBoth() {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuOptim optim = new CpuOptim(threads);
            assertThatThrownBy(() -> optim.adamwUpdate(zeros(arena, 3, 4), zeros(arena, 12), zeros(arena, 3, 4),
                    zeros(arena, 3, 4), LR, BETA1, BETA2, EPS, WD, 1))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("grad has shape [12]").hasMessageContaining("param has shape [3, 4]");
            assertThatThrownBy(() -> optim.adamwUpdate(zeros(arena, 3), zeros(arena, 3), zeros(arena, 3),
                    zeros(arena, 3), LR, BETA1, BETA2, EPS, WD, 0))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("1-based");
        }
    }
}
