package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.longexposure.backend.cpu.CpuActivation;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.reference.RefActivation;

/** CpuActivation against RefActivation for every activation, the adds, aliasing and determinism. */
class ActivationOpsTest {
    /** Awkward lengths: one element, less than a vector, a few vectors plus a tail, several parallel blocks. */
    private static final int[] SIZES = {1, 13, 67 * 33, 100_003};

    /** Normal values spread wide, with the edges planted: zeros, tiny, and large of both signs. */
    private static float[] inputs(int n, long seed) {
        float[] x = new Rng(seed).normalFloats(n, 0, 3);
        float[] special = {0f, -0f, 1e-30f, -1e-30f, 8f, -8f, 20f, -20f, 90f, -90f, 1e-4f, -1e-4f};
        for (int i = 0; i < Math.min(n, special.length); i++) {
            x[(int) ((long) i * 7919 % n)] = special[i];
        }
        return x;
    }

    private static RefActivation.Kind kind(Activation act) {
        return RefActivation.Kind.valueOf(act.name());
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void forwardAndBackwardMatchReference(Activation act) {
        for (int n : SIZES) {
            float[] x = inputs(n, n + act.ordinal());
            float[] dOut = new Rng(n * 3L).normalFloats(n);
            double[] out = new double[n];
            RefActivation.forward(out, Rng.toDouble(x), kind(act));
            double[] dInp = new double[n];
            RefActivation.backward(dInp, Rng.toDouble(dOut), Rng.toDouble(x), kind(act));
            try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
                CpuActivation ops = new CpuActivation(threads);
                long[] dims = n == 67 * 33 ? new long[] {33, 67} : new long[] {n};
                Tensor xt = f32(arena, x, dims);
                Tensor yt = zeros(arena, dims);
                ops.activationForward(yt, xt, act);
                TensorAssert.assertClose(act.hfName(), FORWARD, yt.toFloatArray(), out, n);
                Tensor dx = zeros(arena, dims);
                ops.activationBackward(dx, f32(arena, dOut, dims), xt, act);
                TensorAssert.assertClose(act.hfName(), GRAD, dx.toFloatArray(), dInp, n);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void inPlaceEqualsOutOfPlaceAndThreadCountDoesNotMatter(Activation act) {
        int n = 100_003;
        float[] x = inputs(n, 77);
        float[] dOut = new Rng(78).normalFloats(n);
        float[][] reference = null;
        for (int t : new int[] {1, 2, 3}) {
            try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(t)) {
                CpuActivation ops = new CpuActivation(threads);
                Tensor xt = f32(arena, x, n);
                Tensor yt = zeros(arena, n);
                ops.activationForward(yt, xt, act);
                Tensor dx = zeros(arena, n);
                ops.activationBackward(dx, f32(arena, dOut, n), xt, act);
                float[][] r = {yt.toFloatArray(), dx.toFloatArray()};
                if (reference == null) {
                    reference = r;
                } else {
                    TensorAssert.assertBitIdentical(act + " forward, threads " + t, reference[0], r[0]);
                    TensorAssert.assertBitIdentical(act + " backward, threads " + t, reference[1], r[1]);
                }
                Tensor inPlace = f32(arena, x, n);
                ops.activationForward(inPlace, inPlace, act);
                TensorAssert.assertBitIdentical(act + " out == inp", reference[0], inPlace.toFloatArray());
                Tensor d = f32(arena, dOut, n);
                ops.activationBackward(d, d, xt, act);
                TensorAssert.assertBitIdentical(act + " dInp == dOut", reference[1], d.toFloatArray());
            }
        }
    }

    @Test
    void reluBackwardAcceptsTheForwardOutput() {
        int n = 1003;
        float[] x = inputs(n, 5);
        float[] dOut = new Rng(6).normalFloats(n);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuActivation ops = new CpuActivation(threads);
            Tensor xt = f32(arena, x, n);
            Tensor yt = zeros(arena, n);
            ops.activationForward(yt, xt, Activation.RELU);
            Tensor fromInput = zeros(arena, n);
            Tensor fromOutput = zeros(arena, n);
            ops.activationBackward(fromInput, f32(arena, dOut, n), xt, Activation.RELU);
            ops.activationBackward(fromOutput, f32(arena, dOut, n), yt, Activation.RELU);
            TensorAssert.assertBitIdentical("relu backward", fromInput.toFloatArray(), fromOutput.toFloatArray());
        }
    }

    @Test
    void addAndAccumulateMatchReferenceAlsoInPlace() {
        for (int n : SIZES) {
            Rng rng = new Rng(n);
            float[] a = rng.normalFloats(n);
            float[] b = rng.normalFloats(n);
            double[] sum = new double[n];
            RefActivation.add(sum, Rng.toDouble(a), Rng.toDouble(b));
            try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
                CpuActivation ops = new CpuActivation(threads);
                Tensor out = zeros(arena, n);
                ops.addForward(out, f32(arena, a, n), f32(arena, b, n));
                TensorAssert.assertClose("add", FORWARD, out.toFloatArray(), sum, n);
                Tensor at = f32(arena, a, n);
                ops.addForward(at, at, f32(arena, b, n));
                TensorAssert.assertBitIdentical("out == a", out.toFloatArray(), at.toFloatArray());
                Tensor bt = f32(arena, b, n);
                ops.addForward(bt, f32(arena, a, n), bt);
                TensorAssert.assertBitIdentical("out == b", out.toFloatArray(), bt.toFloatArray());
                Tensor dst = f32(arena, a, n);
                ops.accumulate(dst, f32(arena, b, n));
                TensorAssert.assertClose("add", GRAD, dst.toFloatArray(), sum, n);
            }
        }
    }

    @Test
    void mismatchedShapesAreRejectedNamingBoth() {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuActivation ops = new CpuActivation(threads);
            assertThatThrownBy(() -> ops.addForward(zeros(arena, 2, 3), zeros(arena, 2, 3), zeros(arena, 3, 2)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("b has shape [3, 2]").hasMessageContaining("a has shape [2, 3]");
            assertThatThrownBy(() -> ops.activationForward(zeros(arena, 5), zeros(arena, 6), Activation.GELU))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out has shape [5]");
        }
    }
}
