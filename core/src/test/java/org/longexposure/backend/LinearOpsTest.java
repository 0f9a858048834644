package org.longexposure.backend;

import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.half;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.backend.cpu.CpuGemm;
import org.longexposure.backend.cpu.CpuLinear;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.reference.RefLinear;

/**
 * CpuLinear against the float64 RefLinear on awkward shapes: forward with and without bias (overwrite and
 * accumulate), the residual forms ({@code x·Wᵀ + b + residual}, also in place, and {@code alpha·x·Wᵀ + residual}),
 * the scaled forward (overwrite and accumulate), input gradient (overwrite and accumulate), weight and bias gradients (accumulate), with F32, F16 and
 * BF16 frozen weights (the reference sees the same rounded weight values).
 */
class LinearOpsTest {
    @ParameterizedTest
    @CsvSource({"1,1,1,f32,1", "7,13,5,f32,2", "33,70,129,f16,3", "65,17,100,bf16,2", "130,96,64,f32,1",
            "5,300,31,f16,2"})
    void everyOpMatchesTheReference(int m, int n, int k, String dtype, int threads) {
        Rng rng = new Rng(m * 1000L + n * 10L + k);
        float[] x = rng.normalFloats(m * k);
        float[] w = rng.normalFloats(n * k);
        float[] b = rng.normalFloats(n);
        float[] dOut = rng.normalFloats(m * n);
        float[] prior = rng.normalFloats(m * k);
        float[] dWPrior = rng.normalFloats(n * k);
        float[] dBPrior = rng.normalFloats(n);
        float alpha = 0.75f;
        DType wt = DType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
        try (Arena arena = Arena.ofShared(); CpuThreads pool = new CpuThreads(threads)) {
            CpuLinear lin = new CpuLinear(pool, new CpuGemm(pool));
            Tensor wT = wt == DType.F32 ? f32(arena, w, n, k) : half(arena, wt, w, n, k);
            double[] wd = Rng.toDouble(wT.toFloatArray()); // the rounded values the engine reads
            double[] xd = Rng.toDouble(x);
            Tensor xT = f32(arena, x, m, k);

            Tensor out = zeros(arena, m, n);
            lin.linearForward(out, xT, wT, f32(arena, b, n));
            double[] ref = new double[m * n];
            RefLinear.forward(ref, xd, wd, Rng.toDouble(b), m, n, k);
            TensorAssert.assertClose("linear", FORWARD, out.toFloatArray(), ref, m, n);

            lin.linearForward(out, xT, wT, null);
            RefLinear.forward(ref, xd, wd, null, m, n, k);
            TensorAssert.assertClose("linear", FORWARD, out.toFloatArray(), ref, m, n);

            lin.linearForwardScaled(out, xT, wT, alpha, true);
            RefLinear.forwardAccumulate(ref, xd, wd, alpha, m, n, k);
            TensorAssert.assertClose("linear", FORWARD, out.toFloatArray(), ref, m, n);

            // out += x·Wᵀ + b on top of the previous result
            lin.linearForward(out, xT, wT, f32(arena, b, n), true);
            double[] term = new double[m * n];
            RefLinear.forward(term, xd, wd, Rng.toDouble(b), m, n, k);
            for (int i = 0; i < ref.length; i++) {
                ref[i] += term[i];
            }
            TensorAssert.assertClose("linear", FORWARD, out.toFloatArray(), ref, m, n);

            // out = alpha·x·Wᵀ, whatever out held
            lin.linearForwardScaled(out, xT, wT, alpha, false);
            java.util.Arrays.fill(ref, 0);
            RefLinear.forwardAccumulate(ref, xd, wd, alpha, m, n, k);
            TensorAssert.assertClose("linear", FORWARD, out.toFloatArray(), ref, m, n);

            // out = x·Wᵀ + b + residual, over a poisoned out, with and without bias; the residual is not touched
            float[] res = rng.normalFloats(m * n);
            Tensor resT = f32(arena, res, m, n);
            for (boolean withBias : new boolean[]{true, false}) {
                Tensor fused = f32(arena, rng.normalFloats(m * n), m, n);
                lin.linearForwardResidual(fused, xT, wT, withBias ? f32(arena, b, n) : null, resT);
                RefLinear.forwardResidual(ref, xd, wd, withBias ? Rng.toDouble(b) : null, Rng.toDouble(res), m, n,
                        k);
                TensorAssert.assertClose("linear", FORWARD, fused.toFloatArray(), ref, m, n);
                assertThat(resT.toFloatArray()).containsExactly(res);
            }
            // residual = out itself: the accumulating form
            Tensor inPlace = f32(arena, res, m, n);
            lin.linearForwardResidual(inPlace, xT, wT, f32(arena, b, n), inPlace);
            RefLinear.forwardResidual(ref, xd, wd, Rng.toDouble(b), Rng.toDouble(res), m, n, k);
            TensorAssert.assertClose("linear", FORWARD, inPlace.toFloatArray(), ref, m, n);
            // out = alpha·x·Wᵀ + residual
            Tensor scaled = f32(arena, rng.normalFloats(m * n), m, n);
            lin.linearForwardScaledResidual(scaled, xT, wT, alpha, resT);
            ref = Rng.toDouble(res);
            RefLinear.forwardAccumulate(ref, xd, wd, alpha, m, n, k);
            TensorAssert.assertClose("linear", FORWARD, scaled.toFloatArray(), ref, m, n);

            Tensor dOutT = f32(arena, dOut, m, n);
            for (boolean acc : new boolean[]{false, true}) {
                Tensor dInp = f32(arena, prior, m, k);
                lin.linearBackwardInput(dInp, dOutT, wT, alpha, acc);
                double[] dRef = Rng.toDouble(prior);
                RefLinear.backwardInput(dRef, Rng.toDouble(dOut), wd, alpha, acc, m, n, k);
                TensorAssert.assertClose("linear", GRAD, dInp.toFloatArray(), dRef, m, k);
            }

            Tensor dW = f32(arena, dWPrior, n, k);
            Tensor dB = f32(arena, dBPrior, n);
            lin.linearBackwardWeight(dW, dB, dOutT, xT, alpha);
            double[] dWRef = Rng.toDouble(dWPrior);
            double[] dBRef = Rng.toDouble(dBPrior);
            RefLinear.backwardWeight(dWRef, dBRef, Rng.toDouble(dOut), xd, alpha, m, n, k);
            TensorAssert.assertClose("linear", GRAD, dW.toFloatArray(), dWRef, n, k);
            TensorAssert.assertClose("linear", GRAD, dB.toFloatArray(), dBRef, n);
        }
    }

    /**
     * The fused residual equals the product followed by ActivationOps.addForward within rounding (both against
     * float64, and to each other within a few f32 ulps of the sum); a residual of the wrong shape is refused.
     */
    @Test
    void residualFormEqualsProductThenAdd() {
        int m = 19;
        int n = 45;
        int k = 37;
        Rng rng = new Rng(1905);
        float[] x = rng.normalFloats(m * k);
        float[] w = rng.normalFloats(n * k);
        float[] b = rng.normalFloats(n);
        float[] res = rng.normalFloats(m * n);
        try (Arena arena = Arena.ofShared(); CpuBackend be = new CpuBackend(2)) {
            Tensor xT = f32(arena, x, m, k);
            Tensor wT = half(arena, DType.BF16, w, n, k);
            Tensor bT = f32(arena, b, n);
            Tensor resT = f32(arena, res, m, n);
            Tensor fused = zeros(arena, m, n);
            be.linear().linearForwardResidual(fused, xT, wT, bT, resT);
            Tensor unfused = zeros(arena, m, n);
            be.linear().linearForward(unfused, xT, wT, bT);
            be.activation().addForward(unfused, unfused, resT);
            float[] got = fused.toFloatArray();
            float[] two = unfused.toFloatArray();
            double[] ref = new double[m * n];
            RefLinear.forwardResidual(ref, Rng.toDouble(x), Rng.toDouble(wT.toFloatArray()), Rng.toDouble(b),
                    Rng.toDouble(res), m, n, k);
            TensorAssert.assertClose("linear", FORWARD, got, ref, m, n);
            TensorAssert.assertClose("linear", FORWARD, two, ref, m, n);
            for (int i = 0; i < got.length; i++) {
                assertThat(Math.abs(got[i] - two[i])).as("element %d", i)
                        .isLessThanOrEqualTo(1e-5f * (float) (k + 2) * Math.max(1f, Math.abs(two[i])));
            }
            assertThatThrownBy(() -> be.linear().linearForwardResidual(fused, xT, wT, bT, zeros(arena, m + 1, n)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("residual");
        }
    }
}
