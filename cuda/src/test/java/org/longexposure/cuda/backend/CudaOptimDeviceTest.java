package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertWithin;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.misaligned;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomF32;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * CudaOptim against CpuOptim on F32 tensors. AdamW runs the CPU's scalar preparation and per-element operation
 * order with correctly rounded float operations, so it is expected to match bit for bit; the assertion allows
 * 1e-6 relative (plus 1e-30 absolute for values that cancel to ~0), which still fails on any formula or order
 * change beyond an ulp or two. Sums of squares add exact double products (a float squared fits in a double) in a
 * different order than the CPU: each side's error is below (number of additions)·2^-53 of the (positive) sum,
 * so they agree within 2·n·2^-53 relative. scale and zero are exact.
 */
@Tag("gpu")
class CudaOptimDeviceTest extends DeviceTestBase {
    private static final int[] SIZES = {1, 7, 200, 1000, 2051, 100_003};

    @Test
    void adamwMatchesCpuOverSeveralSteps() {
        SplittableRandom r = new SplittableRandom(41);
        for (int n : SIZES) {
            for (boolean aligned : new boolean[] {true, false}) {
                float[] p0 = randomF32(r, n, -0.1, 0.1);
                float[] m0 = randomF32(r, n, -0.01, 0.01);
                float[] v0 = randomF32(r, n, 0, 1e-4);
                Tensor pc = tensor(cpu, DType.F32, p0, n);
                Tensor mc = tensor(cpu, DType.F32, m0, n);
                Tensor vc = tensor(cpu, DType.F32, v0, n);
                Tensor pg = aligned ? tensor(gpu, DType.F32, p0, n) : misaligned(gpu, DType.F32, p0);
                Tensor mg = aligned ? tensor(gpu, DType.F32, m0, n) : misaligned(gpu, DType.F32, m0);
                Tensor vg = aligned ? tensor(gpu, DType.F32, v0, n) : misaligned(gpu, DType.F32, v0);
                for (long step = 1; step <= 12; step += step < 3 ? 1 : 9) {
                    float[] g = randomF32(r, n, -0.05, 0.05);
                    cpu.optim().adamwUpdate(pc, tensor(cpu, DType.F32, g, n), mc, vc, 1e-3f, 0.9f, 0.999f, 1e-8f,
                            0.01f, step);
                    Tensor gg = aligned ? tensor(gpu, DType.F32, g, n) : misaligned(gpu, DType.F32, g);
                    gpu.optim().adamwUpdate(pg, gg, mg, vg, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step);
                    String what = "n=" + n + " step=" + step + (aligned ? "" : " misaligned");
                    assertRelative("param " + what, floats(gpu, pg), floats(cpu, pc));
                    assertRelative("m " + what, floats(gpu, mg), floats(cpu, mc));
                    assertRelative("v " + what, floats(gpu, vg), floats(cpu, vc));
                }
            }
        }
    }

    private static void assertRelative(String what, float[] gpuValues, float[] cpuValues) {
        double[] tol = new double[cpuValues.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = 1e-6 * Math.abs(cpuValues[i]) + 1e-30;
        }
        assertWithin(what, gpuValues, cpuValues, tol);
    }

    @Test
    void sumOfSquaresMatchesCpuAndIsReproducible() {
        SplittableRandom r = new SplittableRandom(43);
        List<Tensor> gpuTensors = new ArrayList<>();
        double listExpect = 0;
        long total = 0;
        for (int n : SIZES) {
            float[] g = randomF32(r, n, -3, 3);
            double expect = cpu.optim().sumOfSquares(tensor(cpu, DType.F32, g, n));
            Tensor tg = n % 2 == 0 ? tensor(gpu, DType.F32, g, n) : misaligned(gpu, DType.F32, g);
            double got = gpu.optim().sumOfSquares(tg);
            assertThat(Math.abs(got - expect)).as("n=" + n + ": gpu " + got + " cpu " + expect)
                    .isLessThanOrEqualTo(2.0 * n * 0x1.0p-53 * expect);
            assertThat(gpu.optim().sumOfSquares(tg)).as("repeat n=" + n).isEqualTo(got);
            gpuTensors.add(tg);
            listExpect += expect;
            total += n;
        }
        double listGot = ((CudaOptim) gpu.optim()).sumOfSquares(gpuTensors);
        assertThat(Math.abs(listGot - listExpect)).as("list: gpu " + listGot + " cpu " + listExpect)
                .isLessThanOrEqualTo(2.0 * (total + SIZES.length) * 0x1.0p-53 * listExpect);
        assertThat(((CudaOptim) gpu.optim()).sumOfSquares(gpuTensors)).isEqualTo(listGot);
        assertThat(((CudaOptim) gpu.optim()).sumOfSquares(List.of())).isEqualTo(0.0);
    }

    @Test
    void scaleAndZeroAreExact() {
        SplittableRandom r = new SplittableRandom(47);
        for (int n : SIZES) {
            float[] x = randomF32(r, n, -2, 2);
            float[] expect = new float[n];
            for (int i = 0; i < n; i++) {
                expect[i] = x[i] * 0.37f;
            }
            Tensor t = misaligned(gpu, DType.F32, x);
            gpu.optim().scale(t, 0.37f);
            assertExact("scale n=" + n, floats(gpu, t), expect);
            gpu.optim().zero(t);
            assertThat(floats(gpu, t)).as("zero n=" + n).containsOnly(0f);
        }
    }

    /**
     * The list forms (one launch over a table) against the one-tensor forms, bit for bit: AdamW over tensors of
     * awkward sizes, some misaligned (the scalar path), two steps so the cached table is reused; then scale and
     * zero over the same list.
     */
    @Test
    void listFormsEqualOneTensorForms() {
        SplittableRandom r = new SplittableRandom(53);
        List<Tensor> pa = new ArrayList<>();
        List<Tensor> ga = new ArrayList<>();
        List<Tensor> ma = new ArrayList<>();
        List<Tensor> va = new ArrayList<>();
        List<Tensor[]> single = new ArrayList<>();
        for (int n : SIZES) {
            float[] p = randomF32(r, n, -1, 1);
            float[] g = randomF32(r, n, -1, 1);
            float[] m = randomF32(r, n, -0.1f, 0.1f);
            float[] v = randomF32(r, n, 0, 0.01f);
            boolean odd = n % 2 == 1;
            pa.add(odd ? misaligned(gpu, DType.F32, p) : tensor(gpu, DType.F32, p, n));
            ga.add(tensor(gpu, DType.F32, g, n));
            ma.add(tensor(gpu, DType.F32, m, n));
            va.add(tensor(gpu, DType.F32, v, n));
            single.add(new Tensor[] {odd ? misaligned(gpu, DType.F32, p) : tensor(gpu, DType.F32, p, n),
                tensor(gpu, DType.F32, g, n), tensor(gpu, DType.F32, m, n), tensor(gpu, DType.F32, v, n)});
        }
        for (int step = 1; step <= 2; step++) {
            gpu.optim().adamwUpdate(pa, ga, ma, va, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step);
            for (Tensor[] t : single) {
                gpu.optim().adamwUpdate(t[0], t[1], t[2], t[3], 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step);
            }
        }
        for (int i = 0; i < SIZES.length; i++) {
            assertExact("param n=" + SIZES[i], floats(gpu, pa.get(i)), floats(gpu, single.get(i)[0]));
            assertExact("m n=" + SIZES[i], floats(gpu, ma.get(i)), floats(gpu, single.get(i)[2]));
            assertExact("v n=" + SIZES[i], floats(gpu, va.get(i)), floats(gpu, single.get(i)[3]));
        }
        gpu.optim().scale(pa, 0.37f);
        for (int i = 0; i < SIZES.length; i++) {
            gpu.optim().scale(single.get(i)[0], 0.37f);
            assertExact("scale n=" + SIZES[i], floats(gpu, pa.get(i)), floats(gpu, single.get(i)[0]));
        }
        gpu.optim().zero(pa);
        for (int i = 0; i < SIZES.length; i++) {
            assertThat(floats(gpu, pa.get(i))).as("zero n=" + SIZES[i]).containsOnly(0f);
        }
        assertThatThrownBy(() -> gpu.optim().adamwUpdate(pa, ga, ma, va.subList(0, 2), 1e-3f, 0.9f, 0.999f, 1e-8f,
                0f, 1)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("one length");
    }

    @Test
    void rejectsWrongOperands() {
        Tensor p = gpu.allocate(DType.F32, 10);
        assertThatThrownBy(() -> gpu.optim().adamwUpdate(p, gpu.allocate(DType.BF16, 10), p, p, 1e-3f, 0.9f,
                0.999f, 1e-8f, 0f, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("grad must be f32");
        assertThatThrownBy(() -> gpu.optim().adamwUpdate(p, p, gpu.allocate(DType.F32, 11), p, 1e-3f, 0.9f,
                0.999f, 1e-8f, 0f, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("m has shape");
        assertThatThrownBy(() -> gpu.optim().adamwUpdate(p, p, p, p, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("step is 1-based");
        assertThatThrownBy(() -> gpu.optim().sumOfSquares(gpu.allocate(DType.BF16, 4)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("grads[0] must be f32");
    }
}
