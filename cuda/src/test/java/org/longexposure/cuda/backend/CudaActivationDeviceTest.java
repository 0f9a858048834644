package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.U;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertBf16Within;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;
import static org.longexposure.cuda.backend.DeviceTestSupport.bf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.misaligned;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomF32;
import static org.longexposure.cuda.backend.DeviceTestSupport.roundedBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Dropout;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * CudaActivation (and the pointwise helpers on the same kernels) against CpuActivation and the
 * {@link Dropout} contract. Exact ops (ReLU, add, accumulate, dropout, scale, conversions) must
 * equal the CPU's f32 result rounded once to bf16, bit for bit. GELU and tanh-GELU use the CPU's formulas with
 * CUDA's expf (≤ 2 ulp) instead of the CPU's exp (≈ 2 ulp): the f32 values differ by a few ulps of the terms,
 * bounded here by 16·u·|x| (forward) and 16·u·|dOut|·(1 + |x|) (backward, whose derivative is at most about
 * 1.13 in magnitude plus |x|·φ(x)), before the one bf16 rounding.
 *
 * <p>Sizes: 1, 7, 200, 2051 and 8005 elements (vector bodies with scalar tails), plus views starting one
 * element into their storage, which force the scalar path.
 */
@Tag("gpu")
class CudaActivationDeviceTest extends DeviceTestBase {
    private static final int[] SIZES = {1, 7, 200, 2051, 8005};

    /** Inputs over the interesting range plus the extremes where exponentials saturate. */
    private static float[] inputs(SplittableRandom r, int n) {
        float[] x = randomBf16(r, n, -6, 6);
        float[] special = {0f, -0f, -20f, 20f, -11f, 11f, 1e-3f, -1e-3f};
        for (int i = 0; i < Math.min(n, special.length); i++) {
            x[(int) ((long) i * 7919 % n)] = bf16(special[i]);
        }
        return x;
    }

    @ParameterizedTest
    @ValueSource(strings = {"RELU", "GELU", "GELU_TANH"})
    void forwardMatchesCpu(String name) {
        Activation act = Activation.valueOf(name);
        SplittableRandom r = new SplittableRandom(name.hashCode());
        for (int n : SIZES) {
            for (boolean aligned : new boolean[] {true, false}) {
                float[] x = inputs(r, n);
                Tensor xc = tensor(cpu, DType.F32, x, n);
                Tensor yc = cpu.allocate(DType.F32, n);
                cpu.activation().activationForward(yc, xc, act);
                float[] expect = floats(cpu, yc);
                Tensor xg = aligned ? tensor(gpu, DType.BF16, x, n) : misaligned(gpu, DType.BF16, x);
                Tensor yg = aligned ? gpu.allocate(DType.BF16, n) : misaligned(gpu, DType.BF16, new float[n]);
                gpu.activation().activationForward(yg, xg, act);
                String what = act + " forward n=" + n + (aligned ? "" : " misaligned");
                if (act == Activation.RELU) {
                    assertExact(what, floats(gpu, yg), roundedBf16(expect));
                } else {
                    double[] delta = new double[n];
                    for (int i = 0; i < n; i++) {
                        delta[i] = 16 * U * Math.abs(x[i]) + 1e-37;
                    }
                    assertBf16Within(what, floats(gpu, yg), expect, delta);
                }
                // in place: out aliases inp
                gpu.activation().activationForward(xg, xg, act);
                assertExact(what + " in place", floats(gpu, xg), floats(gpu, yg));
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"RELU", "GELU", "GELU_TANH"})
    void backwardMatchesCpu(String name) {
        Activation act = Activation.valueOf(name);
        SplittableRandom r = new SplittableRandom(name.hashCode() + 1);
        for (int n : SIZES) {
            for (boolean aligned : new boolean[] {true, false}) {
                float[] x = inputs(r, n);
                float[] dy = randomBf16(r, n, -2, 2);
                Tensor dxc = cpu.allocate(DType.F32, n);
                cpu.activation().activationBackward(dxc, tensor(cpu, DType.F32, dy, n), tensor(cpu, DType.F32, x, n),
                        act);
                float[] expect = floats(cpu, dxc);
                Tensor xg = aligned ? tensor(gpu, DType.BF16, x, n) : misaligned(gpu, DType.BF16, x);
                Tensor dyg = aligned ? tensor(gpu, DType.BF16, dy, n) : misaligned(gpu, DType.BF16, dy);
                Tensor dxg = aligned ? gpu.allocate(DType.BF16, n) : misaligned(gpu, DType.BF16, new float[n]);
                gpu.activation().activationBackward(dxg, dyg, xg, act);
                String what = act + " backward n=" + n + (aligned ? "" : " misaligned");
                if (act == Activation.RELU) {
                    assertExact(what, floats(gpu, dxg), roundedBf16(expect));
                } else {
                    double[] delta = new double[n];
                    for (int i = 0; i < n; i++) {
                        delta[i] = 16 * U * Math.abs(dy[i]) * (1 + Math.abs(x[i])) + 1e-37;
                    }
                    assertBf16Within(what, floats(gpu, dxg), expect, delta);
                }
                // dInp aliases dOut
                gpu.activation().activationBackward(dyg, dyg, xg, act);
                assertExact(what + " in place", floats(gpu, dyg), floats(gpu, dxg));
            }
        }
    }

    @Test
    void reluBackwardAcceptsTheForwardOutput() {
        SplittableRandom r = new SplittableRandom(3);
        int n = 2051;
        float[] x = inputs(r, n);
        float[] dy = randomBf16(r, n, -1, 1);
        Tensor xg = tensor(gpu, DType.BF16, x, n);
        Tensor yg = gpu.allocate(DType.BF16, n);
        gpu.activation().activationForward(yg, xg, Activation.RELU);
        Tensor fromInput = gpu.allocate(DType.BF16, n);
        Tensor fromOutput = gpu.allocate(DType.BF16, n);
        Tensor dyg = tensor(gpu, DType.BF16, dy, n);
        gpu.activation().activationBackward(fromInput, dyg, xg, Activation.RELU);
        gpu.activation().activationBackward(fromOutput, dyg, yg, Activation.RELU);
        assertExact("relu backward from the output", floats(gpu, fromOutput), floats(gpu, fromInput));
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F32"})
    void addAndAccumulateAreExactIncludingAliases(String dtypeName) {
        DType d = DType.valueOf(dtypeName);
        SplittableRandom r = new SplittableRandom(11);
        for (int n : SIZES) {
            float[] a = randomBf16(r, n, -4, 4);
            float[] b = d == DType.BF16 ? randomBf16(r, n, -4, 4) : randomF32(r, n, -4, 4);
            float[] sum = new float[n];
            float[] twice = new float[n];
            for (int i = 0; i < n; i++) {
                sum[i] = a[i] + b[i];
                twice[i] = b[i] + b[i];
            }
            float[] expect = d == DType.BF16 ? roundedBf16(sum) : sum;
            Tensor ag = tensor(gpu, d, a, n);
            Tensor bg = tensor(gpu, d, b, n);
            Tensor out = gpu.allocate(d, n);
            gpu.activation().addForward(out, ag, bg);
            assertExact("add n=" + n, floats(gpu, out), expect);
            // out aliases a
            Tensor a2 = tensor(gpu, d, a, n);
            gpu.activation().addForward(a2, a2, bg);
            assertExact("add out=a n=" + n, floats(gpu, a2), expect);
            // out aliases b
            Tensor b2 = tensor(gpu, d, b, n);
            gpu.activation().addForward(b2, ag, b2);
            assertExact("add out=b n=" + n, floats(gpu, b2), expect);
            // all three the same tensor: doubling is exact
            Tensor b3 = tensor(gpu, d, b, n);
            gpu.activation().addForward(b3, b3, b3);
            assertExact("add out=a=b n=" + n, floats(gpu, b3), twice);
            // accumulate, on a misaligned view too
            Tensor dst = misaligned(gpu, d, a);
            gpu.activation().accumulate(dst, misaligned(gpu, d, b));
            assertExact("accumulate n=" + n, floats(gpu, dst), expect);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F32"})
    void dropoutMatchesTheSharedMaskExactly(String dtypeName) {
        DType d = DType.valueOf(dtypeName);
        SplittableRandom r = new SplittableRandom(23);
        long[] seeds = {0L, 42L, -7L, Long.MIN_VALUE + 12345L};
        float[] ps = {0f, 0.1f, 0.5f, 0.9f};
        for (int n : SIZES) {
            for (int s = 0; s < seeds.length; s++) {
                float p = ps[s];
                long seed = seeds[s];
                float[] x = randomBf16(r, n, -3, 3);
                Tensor xc = tensor(cpu, DType.F32, x, n);
                Tensor yc = cpu.allocate(DType.F32, n);
                cpu.activation().dropoutForward(yc, xc, p, seed);
                float[] expect = floats(cpu, yc);
                if (d == DType.BF16) {
                    expect = roundedBf16(expect);
                }
                // the mask itself, from the contract: zero exactly where keep() is false
                float scale = 1f / (1f - p);
                for (int i = 0; i < n; i++) {
                    float want = Dropout.keep(seed, i, p) ? x[i] * scale : 0f;
                    assertThat(expect[i]).isEqualTo(d == DType.BF16 ? bf16(want) : want);
                }
                Tensor xg = tensor(gpu, d, x, n);
                Tensor yg = gpu.allocate(d, n);
                gpu.activation().dropoutForward(yg, xg, p, seed);
                String what = "dropout " + d + " n=" + n + " p=" + p + " seed=" + seed;
                assertExact(what, floats(gpu, yg), expect);
                // backward is the same map; in place and on a misaligned view
                Tensor dyg = misaligned(gpu, d, x);
                gpu.activation().dropoutBackward(dyg, dyg, p, seed);
                assertExact(what + " backward", floats(gpu, dyg), expect);
            }
        }
    }

    @Test
    void dropoutRejectsProbabilityOne() {
        Tensor t = gpu.allocate(DType.BF16, 8);
        assertThatThrownBy(() -> gpu.activation().dropoutForward(t, t, 1f, 1L))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("p must be in [0, 1)");
    }

    @Test
    void scaleIsExact() {
        SplittableRandom r = new SplittableRandom(29);
        CudaActivation pointwise = (CudaActivation) gpu.activation();
        for (int n : SIZES) {
            float[] x = randomF32(r, n, -5, 5);
            float f = 0.7310586f;
            float[] scaled = new float[n];
            float[] scaledBf = new float[n];
            for (int i = 0; i < n; i++) {
                scaled[i] = x[i] * f;
                scaledBf[i] = bf16(bf16(x[i]) * f);
            }
            Tensor t32 = tensor(gpu, DType.F32, x, n);
            pointwise.scale(t32, f);
            assertExact("scale f32 n=" + n, floats(gpu, t32), scaled);
            Tensor t16 = misaligned(gpu, DType.BF16, x);
            pointwise.scale(t16, f);
            assertExact("scale bf16 n=" + n, floats(gpu, t16), scaledBf);
        }
    }

    @Test
    void conversionsRoundToNearestEven() {
        SplittableRandom r = new SplittableRandom(31);
        CudaActivation pointwise = (CudaActivation) gpu.activation();
        for (int n : SIZES) {
            float[] x = randomF32(r, n, -1000, 1000);
            float[] special = {Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, Float.MAX_VALUE, -0f,
                    Float.MIN_NORMAL, 1.00390625f /* a tie: 1 + 2^-8 */, 1.01171875f /* tie rounding up */};
            for (int i = 0; i < Math.min(n, special.length); i++) {
                x[i] = special[i];
            }
            Tensor src = tensor(gpu, DType.F32, x, n);
            Tensor dst = gpu.allocate(DType.BF16, n);
            pointwise.convert(dst, src);
            float[] down = floats(gpu, dst);
            assertExact("f32 -> bf16 n=" + n, down, roundedBf16(x));
            Tensor back = misaligned(gpu, DType.F32, new float[n]);
            pointwise.convert(back, dst);
            assertExact("bf16 -> f32 n=" + n, floats(gpu, back), down);
        }
    }

    @Test
    void rejectsMismatchedOperands() {
        Tensor a = gpu.allocate(DType.BF16, 4, 5);
        assertThatThrownBy(() -> gpu.activation().addForward(a, a, gpu.allocate(DType.F32, 4, 5)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("b must be bf16");
        assertThatThrownBy(() -> gpu.activation().accumulate(a, gpu.allocate(DType.BF16, 5, 4)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("src has shape");
        assertThatThrownBy(() -> gpu.activation().activationForward(a, cpu.allocate(DType.BF16, 4, 5),
                Activation.GELU)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("device memory");
    }
}
