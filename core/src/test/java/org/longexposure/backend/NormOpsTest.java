package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.cpu.CpuNorm;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.reference.RefLayerNorm;

/** CpuNorm against the float64 RefLayerNorm: forward, backward (overwrite and accumulate), determinism. */
class NormOpsTest {
    private static final float EPS = 1e-5f;

    /** One random problem with its float inputs and the oracle's float64 results. */
    private static final class Case {
        final int m;
        final int c;
        final float[] x;
        final float[] w;
        final float[] b;
        final float[] dOut;
        final float[] dInpPrior;
        final float[] dWPrior;
        final float[] dBPrior;
        final double[] out;
        final double[] mean;
        final double[] rstd;
        final double[] dInp;
        final double[] dW;
        final double[] dB;

        Case(int m, int c, boolean weight, boolean bias, boolean accumulate, double offset, long seed) {
            this.m = m;
            this.c = c;
            Rng rng = new Rng(seed);
            x = rng.normalFloats(m * c, offset, 1.7);
            w = weight ? rng.normalFloats(c, 1, 0.5) : null;
            b = bias ? rng.normalFloats(c) : null;
            dOut = rng.normalFloats(m * c);
            dInpPrior = accumulate ? rng.normalFloats(m * c) : null;
            dWPrior = weight ? rng.normalFloats(c) : null;
            dBPrior = bias ? rng.normalFloats(c) : null;
            out = new double[m * c];
            mean = new double[m];
            rstd = new double[m];
            RefLayerNorm.forward(out, mean, rstd, Rng.toDouble(x), d(w), d(b), EPS, m, c);
            dInp = accumulate ? Rng.toDouble(dInpPrior) : new double[m * c];
            dW = weight ? Rng.toDouble(dWPrior) : null;
            dB = bias ? Rng.toDouble(dBPrior) : null;
            RefLayerNorm.backward(dInp, dW, dB, Rng.toDouble(dOut), Rng.toDouble(x), mean, rstd, d(w), accumulate,
                    m, c);
        }

        private static double[] d(float[] a) {
            return a == null ? null : Rng.toDouble(a);
        }
    }

    /** The engine's results for a case. */
    private record Result(float[] out, float[] mean, float[] rstd, float[] dInp, float[] dW, float[] dB) {
    }

    private static Result run(Case k, int threadCount, boolean accumulate) {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(threadCount)) {
            CpuNorm norm = new CpuNorm(threads);
            Tensor x = f32(arena, k.x, k.m, k.c);
            Tensor w = k.w == null ? null : f32(arena, k.w, k.c);
            Tensor b = k.b == null ? null : f32(arena, k.b, k.c);
            Tensor out = zeros(arena, k.m, k.c);
            Tensor mean = zeros(arena, k.m);
            Tensor rstd = zeros(arena, k.m);
            norm.layerNormForward(out, mean, rstd, x, w, b, EPS);
            Tensor dInp = accumulate ? f32(arena, k.dInpPrior, k.m, k.c) : zeros(arena, k.m, k.c);
            Tensor dW = k.w == null ? null : f32(arena, k.dWPrior, k.c);
            Tensor dB = k.b == null ? null : f32(arena, k.dBPrior, k.c);
            norm.layerNormBackward(dInp, dW, dB, f32(arena, k.dOut, k.m, k.c), x, mean, rstd, w, accumulate);
            return new Result(out.toFloatArray(), mean.toFloatArray(), rstd.toFloatArray(), dInp.toFloatArray(),
                    dW == null ? null : dW.toFloatArray(), dB == null ? null : dB.toFloatArray());
        }
    }

    @ParameterizedTest(name = "M={0} C={1} weight={2} bias={3} accumulate={4} offset={5}")
    @CsvSource({
        "1, 1, true, true, false, 0",
        "1, 13, true, true, false, 0.3",
        "7, 67, true, true, true, 0.3",
        "33, 50, false, false, false, 0.3",
        "7, 13, true, false, true, 0",
        "33, 67, false, true, false, 0",
        "3, 770, true, true, true, 0.3",
        "5, 1027, true, true, false, 40",
        "70, 771, true, true, true, 0.3",
    })
    void matchesReference(int m, int c, boolean weight, boolean bias, boolean accumulate, double offset) {
        Case k = new Case(m, c, weight, bias, accumulate, offset, 1000L * m + c);
        Result r = run(k, 2, accumulate);
        TensorAssert.assertClose("layernorm", FORWARD, r.out(), k.out, m, c);
        TensorAssert.assertClose("layernorm", FORWARD, r.mean(), k.mean, m);
        TensorAssert.assertClose("layernorm", FORWARD, r.rstd(), k.rstd, m);
        TensorAssert.assertClose("layernorm", GRAD, r.dInp(), k.dInp, m, c);
        if (weight) {
            TensorAssert.assertClose("layernorm", GRAD, r.dW(), k.dW, c);
        }
        if (bias) {
            TensorAssert.assertClose("layernorm", GRAD, r.dB(), k.dB, c);
        }
    }

    @Test
    void resultsAreBitIdenticalForOneTwoAndThreeThreads() {
        // 70·771 elements: above the size where rows and column blocks are split over threads.
        Case k = new Case(70, 771, true, true, true, 0.3, 5);
        Result one = run(k, 1, true);
        for (int t : new int[] {2, 3}) {
            Result r = run(k, t, true);
            TensorAssert.assertBitIdentical("out", one.out(), r.out());
            TensorAssert.assertBitIdentical("mean", one.mean(), r.mean());
            TensorAssert.assertBitIdentical("rstd", one.rstd(), r.rstd());
            TensorAssert.assertBitIdentical("dInp", one.dInp(), r.dInp());
            TensorAssert.assertBitIdentical("dWeight", one.dW(), r.dW());
            TensorAssert.assertBitIdentical("dBias", one.dB(), r.dB());
        }
    }

    @Test
    void forwardOutputMayBeItsInputAndBackwardMayOverwriteDOut() {
        Case k = new Case(9, 37, true, true, false, 0.3, 9);
        Result separate = run(k, 1, false);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuNorm norm = new CpuNorm(threads);
            Tensor w = f32(arena, k.w, k.c);
            Tensor b = f32(arena, k.b, k.c);
            Tensor mean = zeros(arena, k.m);
            Tensor rstd = zeros(arena, k.m);
            Tensor x = f32(arena, k.x, k.m, k.c);
            norm.layerNormForward(x, mean, rstd, x, w, b, EPS);
            TensorAssert.assertBitIdentical("in-place out", separate.out(), x.toFloatArray());

            Tensor xIn = f32(arena, k.x, k.m, k.c);
            Tensor d = f32(arena, k.dOut, k.m, k.c);
            Tensor dW = f32(arena, k.dWPrior, k.c);
            Tensor dB = f32(arena, k.dBPrior, k.c);
            norm.layerNormBackward(d, dW, dB, d, xIn, mean, rstd, w, false);
            TensorAssert.assertBitIdentical("in-place dInp", separate.dInp(), d.toFloatArray());
            TensorAssert.assertBitIdentical("dWeight", separate.dW(), dW.toFloatArray());
        }
    }

    @Test
    void mismatchedShapesAreRejectedNamingBoth() {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuNorm norm = new CpuNorm(threads);
            Tensor x = zeros(arena, 4, 6);
            assertThatThrownBy(() -> norm.layerNormForward(zeros(arena, 4, 5), zeros(arena, 4), zeros(arena, 4), x,
                    null, null, EPS))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("out has shape [4, 5]").hasMessageContaining("inp has shape [4, 6]");
            assertThatThrownBy(() -> norm.layerNormForward(zeros(arena, 4, 6), zeros(arena, 4), zeros(arena, 4), x,
                    zeros(arena, 7), null, EPS))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("weight has shape [7]");
            assertThat(x.toFloatArray()).containsOnly(0f);
        }
    }
}
