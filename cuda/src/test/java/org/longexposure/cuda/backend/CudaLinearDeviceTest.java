package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;

import java.util.SplittableRandom;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.Activation;
import org.longexposure.backend.LinearOps;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.cuda.Gpu;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * {@link CudaLinear} against the CPU backend's {@code CpuLinear} on the same numbers: every input is drawn already
 * rounded to bf16, the CPU runs in f32 on those values, the GPU in bf16 with fp32 accumulation.
 *
 * <p>Bounds, as ‖gpu − cpu‖₂ / ‖cpu‖₂: BF16 outputs 1e-2. The only intended difference is the single rounding of
 * each output element to bf16 (relative error ≤ 2^-9 ≈ 2e-3) plus fp32 summation order (~1e-6); 1e-2 leaves a 5×
 * margin, while a wrong transpose, stride, bias or alpha gives errors of order 1. F32 outputs (dWeight, dBias)
 * have no output rounding: 1e-4.
 */
@Tag("gpu")
class CudaLinearDeviceTest {
    private static CudaBackend gpu;
    private static CpuBackend cpu;

    @BeforeAll
    static void open() {
        gpu = Gpu.openOrSkip();
        cpu = new CpuBackend(1);
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

    private final SplittableRandom rnd = new SplittableRandom(42);

    @Test
    void forwardWithFrozenBf16WeightAndF32Bias() {
        int b = 3;
        int t = 13;
        int k = 71;
        int n = 53;
        float[] x = Gpu.randomBf16(rnd, b * t * k, 1f);
        float[] w = Gpu.randomBf16(rnd, n * k, 0.2f);
        float[] bias = Gpu.randomBf16(rnd, n, 0.5f);

        Tensor out = gpu.allocate(DType.BF16, b, t, n);
        gpu.linear().linearForward(out, Gpu.upload(gpu, DType.BF16, x, b, t, k), Gpu.upload(gpu, DType.BF16, w, n, k),
                Gpu.upload(gpu, DType.F32, bias, n));
        Tensor ref = cpu.allocate(DType.F32, b, t, n);
        cpu.linear().linearForward(ref, host(x, b, t, k), host(w, n, k), host(bias, n));

        assertThat(Gpu.relativeError(Gpu.download(gpu, out), ref.toFloatArray())).isLessThan(1e-2);
    }

    /**
     * The fused ReLU, against a float64 reference of max(x·Wᵀ + b, 0) and against the GPU's own linearForward
     * followed by the ReLU kernel; with and without bias, awkward sizes, about half the outputs negative before the
     * ReLU.
     *
     * <p>The two GPU paths are separate cuBLASLt plans (each shape and epilogue gets its own algorithm, autotuned or
     * not), so they need not agree bit for bit: a split-K algorithm may even reduce its partial sums in the output
     * type. Each element is therefore held to the reference within one bf16 rounding of the result (2^-8·|ref|)
     * plus 2^-9·Σ|x·w| + |b| for the summation (the bound a bf16 rounding of partial sums can reach). A missing or
     * misplaced ReLU, a wrong bias or transpose gives errors of order |ref| and fails it.
     */
    @Test
    void forwardReluMatchesForwardThenRelu() {
        int m = 37;
        int k = 90;
        int n = 45;
        float[] x = Gpu.randomBf16(rnd, m * k, 1f);
        float[] w = Gpu.randomBf16(rnd, n * k, 0.2f);
        float[] bias = Gpu.randomBf16(rnd, n, 0.5f);
        Tensor xd = Gpu.upload(gpu, DType.BF16, x, m, k);
        Tensor wd = Gpu.upload(gpu, DType.BF16, w, n, k);
        Tensor bd = Gpu.upload(gpu, DType.F32, bias, n);
        for (boolean withBias : new boolean[] {true, false}) {
            Tensor fused = gpu.allocate(DType.BF16, m, n);
            gpu.fillUniform(fused, -9f, 9f, 3); // poison: every element must be written
            gpu.linear().linearForwardRelu(fused, xd, wd, withBias ? bd : null);
            Tensor twoOps = gpu.allocate(DType.BF16, m, n);
            gpu.linear().linearForward(twoOps, xd, wd, withBias ? bd : null);
            gpu.activation().activationForward(twoOps, twoOps, Activation.RELU);
            float[] got = Gpu.download(gpu, fused);
            float[] two = Gpu.download(gpu, twoOps);

            int negatives = 0;
            for (int r = 0; r < m; r++) {
                for (int c = 0; c < n; c++) {
                    double sum = withBias ? bias[c] : 0.0;
                    double magnitude = withBias ? Math.abs(bias[c]) : 0.0;
                    for (int i = 0; i < k; i++) {
                        double term = (double) x[r * k + i] * w[c * k + i];
                        sum += term;
                        magnitude += Math.abs(term);
                    }
                    negatives += sum < 0 ? 1 : 0;
                    double want = Math.max(sum, 0.0);
                    double bound = 0x1p-8 * Math.abs(sum) + 0x1p-9 * magnitude;
                    int e = r * n + c;
                    assertThat(got[e]).as("fused, bias %s, element %d", withBias, e).isGreaterThanOrEqualTo(0f)
                            .isCloseTo((float) want, Offset.offset((float) bound));
                    assertThat(two[e]).as("forward then ReLU, bias %s, element %d", withBias, e)
                            .isCloseTo((float) want, Offset.offset((float) bound));
                }
            }
            assertThat(negatives).as("inputs must exercise the ReLU").isBetween(m * n / 4, 3 * m * n / 4);
            Tensor ref = cpu.allocate(DType.F32, m, n);
            cpu.linear().linearForwardRelu(ref, host(x, m, k), host(w, n, k), withBias ? host(bias, n) : null);
            assertThat(Gpu.relativeError(got, ref.toFloatArray())).as("bias %s", withBias).isLessThan(1e-2);
        }
    }

    @Test
    void forwardWithBf16BiasAndWithoutBias() {
        int m = 29;
        int k = 130;
        int n = 17;
        float[] x = Gpu.randomBf16(rnd, m * k, 1f);
        float[] w = Gpu.randomBf16(rnd, n * k, 0.2f);
        float[] bias = Gpu.randomBf16(rnd, n, 0.5f);
        Tensor xd = Gpu.upload(gpu, DType.BF16, x, m, k);
        Tensor wd = Gpu.upload(gpu, DType.BF16, w, n, k);

        Tensor withBias = gpu.allocate(DType.BF16, m, n);
        gpu.linear().linearForward(withBias, xd, wd, Gpu.upload(gpu, DType.BF16, bias, n));
        Tensor ref = cpu.allocate(DType.F32, m, n);
        cpu.linear().linearForward(ref, host(x, m, k), host(w, n, k), host(bias, n));
        assertThat(Gpu.relativeError(Gpu.download(gpu, withBias), ref.toFloatArray())).isLessThan(1e-2);

        Tensor noBias = gpu.allocate(DType.BF16, m, n);
        gpu.linear().linearForward(noBias, xd, wd, null);
        cpu.linear().linearForward(ref, host(x, m, k), host(w, n, k), null);
        assertThat(Gpu.relativeError(Gpu.download(gpu, noBias), ref.toFloatArray())).isLessThan(1e-2);
    }

    /**
     * LoRA's two products with F32 weights: h = x·Aᵀ, then out = alpha·h·Bᵀ (overwrite, over a poisoned out) and
     * out += alpha·h·Bᵀ (accumulate onto a prior), each against the CPU twin starting from the GPU's bf16 h.
     */
    @Test
    void loraForwardWithF32WeightsOverwritesOrAccumulates() {
        int m = 37;
        int c = 67;
        int r = 8;
        float alpha = 2f;
        float[] x = Gpu.randomBf16(rnd, m * c, 1f);
        float[] loraA = Gpu.randomBf16(rnd, r * c, 0.3f);
        float[] loraB = Gpu.randomBf16(rnd, c * r, 0.3f);
        float[] base = Gpu.randomBf16(rnd, m * c, 1f);

        Tensor h = gpu.allocate(DType.BF16, m, r);
        gpu.linear().linearForward(h, Gpu.upload(gpu, DType.BF16, x, m, c), Gpu.upload(gpu, DType.F32, loraA, r, c),
                null);
        Tensor hRef = cpu.allocate(DType.F32, m, r);
        cpu.linear().linearForward(hRef, host(x, m, c), host(loraA, r, c), null);
        float[] hRounded = Gpu.download(gpu, h);
        assertThat(Gpu.relativeError(hRounded, hRef.toFloatArray())).isLessThan(1e-2);

        Tensor bDev = Gpu.upload(gpu, DType.F32, loraB, c, r);
        for (boolean accumulate : new boolean[] {false, true}) {
            Tensor out = Gpu.upload(gpu, DType.BF16, base, m, c);
            gpu.linear().linearForwardScaled(out, h, bDev, alpha, accumulate);
            // the second product starts from the GPU's bf16 h, so only its own rounding is measured
            Tensor outRef = host(base, m, c);
            cpu.linear().linearForwardScaled(outRef, host(hRounded, m, r), host(loraB, c, r), alpha, accumulate);
            assertThat(Gpu.relativeError(Gpu.download(gpu, out), outRef.toFloatArray()))
                    .as("accumulate=%s", accumulate).isLessThan(1e-2);
        }
    }

    /**
     * The residual forms, one GEMM each with C = the residual and D = out (beta = 1): {@code out = x·Wᵀ + b +
     * residual} and {@code out = alpha·x·Wᵀ + residual}, written over a poisoned out, with and without bias, with
     * an F32 (LoRA) weight for the scaled one; against the CPU twin (1e-2, as above), equal to the unfused form (a
     * fresh product, then addForward of the residual) within rounding (1e-2 overall, a few bf16 steps of the
     * operands per element), and the residual itself
     * left unchanged. Residual = out itself equals the accumulating form; a residual of the wrong shape is refused.
     */
    @Test
    void residualFormsEqualProductThenAdd() {
        int m = 41;
        int k = 75;
        int n = 58;
        float alpha = 1.5f;
        float[] x = Gpu.randomBf16(rnd, m * k, 1f);
        float[] w = Gpu.randomBf16(rnd, n * k, 0.2f);
        float[] bias = Gpu.randomBf16(rnd, n, 0.5f);
        float[] res = Gpu.randomBf16(rnd, m * n, 2f);
        Tensor xd = Gpu.upload(gpu, DType.BF16, x, m, k);
        Tensor wd = Gpu.upload(gpu, DType.BF16, w, n, k);
        Tensor wf = Gpu.upload(gpu, DType.F32, w, n, k);
        Tensor bd = Gpu.upload(gpu, DType.F32, bias, n);
        Tensor rd = Gpu.upload(gpu, DType.BF16, res, m, n);
        for (int form = 0; form < 3; form++) {
            Tensor bOrNull = form == 1 ? null : bd;
            Tensor fused = gpu.allocate(DType.BF16, m, n);
            gpu.fillUniform(fused, -9f, 9f, 5); // poison: every element must be written
            Tensor unfused = gpu.allocate(DType.BF16, m, n);
            Tensor ref = host(res, m, n);
            if (form < 2) {
                gpu.linear().linearForwardResidual(fused, xd, wd, bOrNull, rd);
                gpu.linear().linearForward(unfused, xd, wd, bOrNull);
                cpu.linear().linearForwardResidual(ref, host(x, m, k), host(w, n, k),
                        bOrNull == null ? null : host(bias, n), host(res, m, n));
            } else {
                gpu.linear().linearForwardScaledResidual(fused, xd, wf, alpha, rd);
                gpu.linear().linearForwardScaled(unfused, xd, wf, alpha, false);
                cpu.linear().linearForwardScaledResidual(ref, host(x, m, k), host(w, n, k), alpha, host(res, m, n));
            }
            float[] product = Gpu.download(gpu, unfused);
            gpu.activation().addForward(unfused, unfused, rd);
            float[] got = Gpu.download(gpu, fused);
            float[] two = Gpu.download(gpu, unfused);
            for (int i = 0; i < got.length; i++) {
                // Rounding only: the unfused form rounds the product to bf16 before the sum, and the two products
                // may run different autotuned cuBLASLt algorithms (summation order, split K); a few bf16 steps of
                // the operands' sizes. A residual left out or added twice is off by |residual| (up to 2 here).
                float tol = (Math.abs(product[i]) + Math.abs(res[i]) + Math.abs(two[i])) * 0x1p-6f;
                assertThat(Math.abs(got[i] - two[i])).as("form %d element %d: %s vs %s (product %s, residual %s)",
                        form, i, got[i], two[i], product[i], res[i]).isLessThanOrEqualTo(tol);
            }
            assertThat(Gpu.relativeError(got, two)).as("form %d", form).isLessThan(1e-2);
            assertThat(Gpu.relativeError(got, ref.toFloatArray())).as("form %d", form).isLessThan(1e-2);
            assertThat(Gpu.download(gpu, rd)).as("residual untouched").containsExactly(res);
        }

        // residual = out itself: the accumulating form (C = D, the same cuBLASLt plan: the same bits)
        Tensor inPlace = Gpu.upload(gpu, DType.BF16, res, m, n);
        gpu.linear().linearForwardResidual(inPlace, xd, wd, bd, inPlace);
        Tensor acc = Gpu.upload(gpu, DType.BF16, res, m, n);
        gpu.linear().linearForward(acc, xd, wd, bd, true);
        assertThat(Gpu.download(gpu, inPlace)).containsExactly(Gpu.download(gpu, acc));

        Tensor out = gpu.allocate(DType.BF16, m, n);
        assertThatThrownBy(() -> gpu.linear().linearForwardResidual(out, xd, wd, bd, gpu.allocate(DType.BF16, m, n
                + 1))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("residual");
    }

    /**
     * linearForward with accumulate: out (a bf16 prior, as a LoRA delta) + x·Wᵀ + b in one GEMM (beta = 1 with the
     * bias epilogue), with and without bias, against the CPU twin on the same prior; and equal to the two-pass
     * form (a fresh product, then the prior added by the pointwise kernel) within one bf16 rounding per element.
     */
    @Test
    void forwardAccumulatesOntoThePriorWithBias() {
        int m = 43;
        int k = 77;
        int n = 51;
        float[] x = Gpu.randomBf16(rnd, m * k, 1f);
        float[] w = Gpu.randomBf16(rnd, n * k, 0.2f);
        float[] bias = Gpu.randomBf16(rnd, n, 0.5f);
        float[] prior = Gpu.randomBf16(rnd, m * n, 1f);
        Tensor xd = Gpu.upload(gpu, DType.BF16, x, m, k);
        Tensor wd = Gpu.upload(gpu, DType.BF16, w, n, k);
        Tensor bd = Gpu.upload(gpu, DType.F32, bias, n);
        for (boolean withBias : new boolean[] {true, false}) {
            Tensor out = Gpu.upload(gpu, DType.BF16, prior, m, n);
            gpu.linear().linearForward(out, xd, wd, withBias ? bd : null, true);
            Tensor ref = host(prior, m, n);
            cpu.linear().linearForward(ref, host(x, m, k), host(w, n, k), withBias ? host(bias, n) : null, true);
            float[] got = Gpu.download(gpu, out);
            assertThat(Gpu.relativeError(got, ref.toFloatArray())).as("bias %s", withBias).isLessThan(1e-2);

            Tensor twoPass = gpu.allocate(DType.BF16, m, n);
            gpu.linear().linearForward(twoPass, xd, wd, withBias ? bd : null);
            gpu.activation().accumulate(twoPass, Gpu.upload(gpu, DType.BF16, prior, m, n));
            assertThat(Gpu.relativeError(got, Gpu.download(gpu, twoPass))).as("bias %s", withBias)
                    .isLessThan(1e-2);
        }
    }

    @Test
    void backwardInputOverwritesOrAccumulates() {
        int m = 41;
        int k = 75;
        int n = 33;
        float[] dOut = Gpu.randomBf16(rnd, m * n, 1f);
        float[] w = Gpu.randomBf16(rnd, n * k, 0.2f);
        float[] prior = Gpu.randomBf16(rnd, m * k, 1f);
        for (boolean accumulate : new boolean[] {false, true}) {
            float alpha = accumulate ? 0.5f : 1f;
            Tensor dInp = Gpu.upload(gpu, DType.BF16, prior, m, k);
            gpu.linear().linearBackwardInput(dInp, Gpu.upload(gpu, DType.BF16, dOut, m, n),
                    Gpu.upload(gpu, DType.BF16, w, n, k), alpha, accumulate);
            Tensor ref = host(prior, m, k);
            cpu.linear().linearBackwardInput(ref, host(dOut, m, n), host(w, n, k), alpha, accumulate);
            assertThat(Gpu.relativeError(Gpu.download(gpu, dInp), ref.toFloatArray()))
                    .as("accumulate=%s", accumulate).isLessThan(1e-2);
        }
    }

    @Test
    void backwardWeightAccumulatesF32GradientsOfWeightAndBias() {
        int m = 45;
        int k = 27;
        int n = 39;
        float alpha = 0.25f;
        float[] dOut = Gpu.randomBf16(rnd, m * n, 1f);
        float[] x = Gpu.randomBf16(rnd, m * k, 1f);
        float[] dW0 = Gpu.randomBf16(rnd, n * k, 1f);
        float[] dB0 = Gpu.randomBf16(rnd, n, 1f);

        Tensor dW = Gpu.upload(gpu, DType.F32, dW0, n, k);
        Tensor dB = Gpu.upload(gpu, DType.F32, dB0, n);
        gpu.linear().linearBackwardWeight(dW, dB, Gpu.upload(gpu, DType.BF16, dOut, m, n),
                Gpu.upload(gpu, DType.BF16, x, m, k), alpha);
        Tensor dWRef = host(dW0, n, k);
        Tensor dBRef = host(dB0, n);
        cpu.linear().linearBackwardWeight(dWRef, dBRef, host(dOut, m, n), host(x, m, k), alpha);

        assertThat(Gpu.relativeError(Gpu.download(gpu, dW), dWRef.toFloatArray())).isLessThan(1e-4);
        assertThat(Gpu.relativeError(Gpu.download(gpu, dB), dBRef.toFloatArray())).isLessThan(1e-4);
    }

    /**
     * The LoRA backward with its parameter products on the side stream against the CPU's sequence of the same
     * products: dInp and dXa (bf16) within 1e-2, dB within 1e-4 (exact bf16 inputs, f32 output), dA within 1e-2 (it
     * reads dXa, which the GPU rounds to bf16). A second call from the same start gives the same bits: the side
     * stream's work is joined before the op returns (a read waits only for the main stream).
     */
    @Test
    void loraBackwardWithSideStreamMatchesTheCpuSequence() {
        int[][] shapes = {{300, 96, 64, 8}, {4096, 2048, 2048, 8}, {17, 40, 24, 4}};
        for (int[] sh : shapes) {
            int m = sh[0];
            int n = sh[1];
            int k = sh[2];
            int r = sh[3];
            float scale = 2f;
            float[] dOut = Gpu.randomBf16(rnd, m * n, 1f);
            float[] x = Gpu.randomBf16(rnd, m * k, 1f);
            float[] xa = Gpu.randomBf16(rnd, m * r, 1f);
            float[] w = Gpu.randomBf16(rnd, n * k, 0.1f);
            float[] a = Gpu.randomBf16(rnd, r * k, 0.1f);
            float[] b = Gpu.randomBf16(rnd, n * r, 0.1f);
            float[] prior = Gpu.randomBf16(rnd, m * k, 1f);
            for (boolean accumulate : new boolean[] {false, true}) {
                Tensor dInp = Gpu.upload(gpu, DType.BF16, prior, m, k);
                Tensor dA = gpu.allocate(DType.F32, r, k);
                Tensor dB = gpu.allocate(DType.F32, n, r);
                Tensor dXa = gpu.allocate(DType.BF16, m, r);
                Tensor dOutG = Gpu.upload(gpu, DType.BF16, dOut, m, n);
                Tensor xG = Gpu.upload(gpu, DType.BF16, x, m, k);
                Tensor xaG = Gpu.upload(gpu, DType.BF16, xa, m, r);
                Tensor wG = Gpu.upload(gpu, DType.BF16, w, n, k);
                Tensor aG = Gpu.upload(gpu, DType.F32, a, r, k);
                Tensor bG = Gpu.upload(gpu, DType.F32, b, n, r);
                gpu.linear().loraLinearBackward(dInp, dOutG, wG, accumulate, dA, dB, dXa, xG, xaG, aG, bG, scale);
                float[] dA1 = Gpu.download(gpu, dA);
                float[] dB1 = Gpu.download(gpu, dB);

                Tensor dInpC = host(prior, m, k);
                Tensor dAC = host(new float[r * k], r, k);
                Tensor dBC = host(new float[n * r], n, r);
                Tensor dXaC = host(new float[m * r], m, r);
                cpu.linear().loraLinearBackward(dInpC, host(dOut, m, n), host(w, n, k), accumulate, dAC, dBC, dXaC,
                        host(x, m, k), host(xa, m, r), host(a, r, k), host(b, n, r), scale);
                String what = m + "x" + n + "x" + k + " r" + r + " accumulate=" + accumulate;
                assertThat(Gpu.relativeError(Gpu.download(gpu, dInp), dInpC.toFloatArray())).as("dInp " + what)
                        .isLessThan(1e-2);
                assertThat(Gpu.relativeError(Gpu.download(gpu, dXa), dXaC.toFloatArray())).as("dXa " + what)
                        .isLessThan(1e-2);
                assertThat(Gpu.relativeError(dB1, dBC.toFloatArray())).as("dB " + what).isLessThan(1e-4);
                assertThat(Gpu.relativeError(dA1, dAC.toFloatArray())).as("dA " + what).isLessThan(1e-2);

                // the same call again from the same start gives the same bits (everything joined on return)
                Tensor dInp2 = Gpu.upload(gpu, DType.BF16, prior, m, k);
                Tensor dA2 = gpu.allocate(DType.F32, r, k);
                Tensor dB2 = gpu.allocate(DType.F32, n, r);
                gpu.linear().loraLinearBackward(dInp2, dOutG, wG, accumulate, dA2, dB2, dXa, xG, xaG, aG, bG, scale);
                assertExact("dA again " + what, Gpu.download(gpu, dA2), dA1);
                assertExact("dB again " + what, Gpu.download(gpu, dB2), dB1);
                assertExact("dInp again " + what, Gpu.download(gpu, dInp2), Gpu.download(gpu, dInp));
            }
        }
    }

    @Test
    void wrongDtypesAreRejectedNamingTheOperand() {
        LinearOps lin = gpu.linear();
        Tensor x32 = gpu.allocate(DType.F32, 4, 6);
        Tensor w = gpu.allocate(DType.BF16, 5, 6);
        Tensor out = gpu.allocate(DType.BF16, 4, 5);
        assertThatThrownBy(() -> lin.linearForward(out, x32, w, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("linearForward (M, K) operand").hasMessageContaining("bf16");
        Tensor w16 = gpu.allocate(DType.F16, 5, 6);
        Tensor x = gpu.allocate(DType.BF16, 4, 6);
        assertThatThrownBy(() -> lin.linearForward(out, x, w16, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("linear weight: dtype f16");
    }

    private static Tensor host(float[] v, long... dims) {
        Tensor t = cpu.allocate(DType.F32, dims);
        t.copyFrom(v);
        return t;
    }
}
