package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertBf16Within;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertWithin;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.ints;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * CudaLoss against CpuLoss on the same bf16-valued logits, with ignored rows (weight 0, target −100) and label
 * smoothing.
 *
 * <p>Forward bounds. CUDA documents __expf(x) to within (2 + ⌊1.173·|x|⌋) ulp; here |x| ≤ s, the row's logit
 * spread (max − min), so every exponential, and every rescale of a running sum by exp(m_old − m_new), carries a
 * relative error e ≤ (2 + 1.173·s)·2^-23. Each GPU thread adds about V/512 positive terms in f32 (relative error
 * ≤ (V/512)·u, u = 2^-24), may rescale its sum at most once per loop iteration (R times: V/4096 iterations on
 * the 8-wide path, V/512 on the scalar path), and the block merges 512 partials in 9 levels, each a 2-ulp expf,
 * a product and a sum (≤ 6·u). The CPU's float partials of 8 terms and its exp (≈ 2 ulp) add about 12·u. So the
 * two Σexp agree within (V/512 + 70)·u + (R + 1)·e relative, and lse = max + log Σ within that absolutely. Σz (for
 * smoothing) has the summation bound relative to Σ|z|, scaled by ε/V. Losses and lse are compared with those
 * bounds plus an f32 rounding of their magnitude; the total with the per-row bounds summed with their weights.
 *
 * <p>Backward bounds (the CPU's lse fed to both): each gradient is w·(exp(z − lse) − ε/V − [target]·(1−ε)) with
 * one __expf of argument a = z − lse (relative error (2 + 1.173·|a|)·2^-23) against the CPU's exp (≈ 2 ulp), a
 * few f32 roundings of terms below 1 + ε, then one bf16 rounding.
 */
@Tag("gpu")
class CudaLossDeviceTest extends DeviceTestBase {
    private static final double U = DeviceTestSupport.U;

    /** Targets in [0, V), with every third row (and row 1 when N > 1) ignored: weight 0 and target −100. */
    private record Labels(int[] targets, float[] weights) {
        static Labels of(SplittableRandom r, int n, int v) {
            int[] t = new int[n];
            float[] w = new float[n];
            int count = 0;
            for (int i = 0; i < n; i++) {
                boolean ignored = n > 1 && (i % 3 == 1);
                t[i] = ignored ? -100 : r.nextInt(v);
                count += ignored ? 0 : 1;
            }
            for (int i = 0; i < n; i++) {
                w[i] = t[i] < 0 ? 0f : 1f / count;
            }
            if (n > 2) {
                t[2] = v - 1;
            }
            return new Labels(t, w);
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 1, 0", "13, 7, 0", "13, 7, 0.1", "13, 50272, 0", "13, 50272, 0.1", "4, 2051, 0.1",
            "1000, 200, 0", "1000, 200, 0.2", "2, 128256, 0.1", "1, 262147, 0"})
    void forwardAndBackwardMatchCpu(int n, int v, float smoothing) {
        SplittableRandom r = new SplittableRandom(37L * n + v);
        float[] z = randomBf16(r, n * v, -8, 8);
        Labels labels = Labels.of(r, n, v);
        String what = "(n=" + n + ", v=" + v + ", eps=" + smoothing + ")";

        Tensor zc = tensor(cpu, DType.F32, z, n, v);
        Tensor lossC = cpu.allocate(DType.F32, n);
        Tensor lseC = cpu.allocate(DType.F32, n);
        Tensor tc = ints(cpu, labels.targets(), n);
        Tensor wc = tensor(cpu, DType.F32, labels.weights(), n);
        double totalC = cpu.loss().crossEntropyForward(lossC, lseC, zc, tc, wc, smoothing);

        Tensor zg = tensor(gpu, DType.BF16, z, n, v);
        Tensor lossG = gpu.allocate(DType.F32, n);
        Tensor lseG = gpu.allocate(DType.F32, n);
        Tensor tg = ints(gpu, labels.targets(), n);
        Tensor wg = tensor(gpu, DType.F32, labels.weights(), n);
        double totalG = gpu.loss().crossEntropyForward(lossG, lseG, zg, tg, wg, smoothing);

        float[] lse = floats(cpu, lseC);
        float[] loss = floats(cpu, lossC);
        float[] lossGpu = floats(gpu, lossG);
        double[] tolLse = new double[n];
        double[] tolLoss = new double[n];
        double tolTotal = 0;
        int rescales = v % 8 == 0 ? (v + 4095) / 4096 : (v + 511) / 512;
        for (int i = 0; i < n; i++) {
            double absZ = 0;
            double min = Double.POSITIVE_INFINITY;
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                absZ += Math.abs(z[i * v + j]);
                min = Math.min(min, z[i * v + j]);
                max = Math.max(max, z[i * v + j]);
            }
            double expRel = (2 + 1.173 * (max - min)) * 0x1.0p-23;
            double sumRel = (v / 512.0 + 70) * U + (rescales + 1) * expRel;
            tolLse[i] = sumRel + 2 * U * Math.abs(lse[i]);
            double smoothTerm = smoothing / (double) v * (v / 512.0 + 24) * U * absZ;
            tolLoss[i] = labels.weights()[i] == 0f ? 0 : tolLse[i] + smoothTerm + 2 * U * Math.abs(loss[i]);
            tolTotal += labels.weights()[i] * tolLoss[i];
        }
        assertWithin("lse " + what, floats(gpu, lseG), lse, tolLse);
        assertWithin("loss " + what, lossGpu, loss, tolLoss);
        for (int i = 0; i < n; i++) {
            if (labels.weights()[i] == 0f) {
                assertThat(lossGpu[i]).as("ignored row " + i + " " + what).isEqualTo(0f);
            }
        }
        assertThat(Math.abs(totalG - totalC)).as("total " + what + ": gpu " + totalG + " cpu " + totalC)
                .isLessThanOrEqualTo(tolTotal + 1e-12);
        // the total is a fixed-order reduction: the same bits on a second run
        assertThat(gpu.loss().crossEntropyForward(lossG, lseG, zg, tg, wg, smoothing)).isEqualTo(totalG);

        // backward, both from the CPU's lse; on the GPU once into a separate tensor and once in place
        Tensor dzC = cpu.allocate(DType.F32, n, v);
        cpu.loss().crossEntropyBackward(dzC, zc, lseC, tc, wc, smoothing);
        float[] expect = floats(cpu, dzC);
        Tensor lseShared = tensor(gpu, DType.F32, lse, n);
        Tensor dzG = gpu.allocate(DType.BF16, n, v);
        gpu.loss().crossEntropyBackward(dzG, zg, lseShared, tg, wg, smoothing);
        float[] got = floats(gpu, dzG);
        double[] delta = new double[n * v];
        for (int i = 0; i < n; i++) {
            float w = labels.weights()[i];
            for (int j = 0; j < v; j++) {
                double arg = Math.abs(z[i * v + j] - (double) lse[i]);
                double p = Math.exp(z[i * v + j] - (double) lse[i]);
                delta[i * v + j] = w * (p * (4 + 1.173 * arg) * 0x1.0p-23 + 4 * U * (1 + smoothing));
            }
        }
        assertBf16Within("dLogits " + what, got, expect, delta);
        for (int i = 0; i < n; i++) {
            if (labels.weights()[i] == 0f) {
                assertExact("dLogits of ignored row " + i + " " + what,
                        Arrays.copyOfRange(got, i * v, (i + 1) * v), new float[v]);
            }
        }
        gpu.loss().crossEntropyBackward(zg, zg, lseShared, tg, wg, smoothing);
        assertExact("in-place dLogits " + what, floats(gpu, zg), got);
    }

    @Test
    void rejectsWrongOperands() {
        Tensor z = gpu.allocate(DType.BF16, 3, 10);
        Tensor losses = gpu.allocate(DType.F32, 3);
        Tensor lse = gpu.allocate(DType.F32, 3);
        Tensor t = gpu.allocate(DType.I32, 3);
        Tensor w = gpu.allocate(DType.F32, 3);
        assertThatThrownBy(() -> gpu.loss().crossEntropyForward(losses, lse, gpu.allocate(DType.F32, 3, 10), t, w,
                0f)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("logits must be bf16");
        assertThatThrownBy(() -> gpu.loss().crossEntropyForward(losses, lse, z, gpu.allocate(DType.I32, 4), w, 0f))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("targets");
        assertThatThrownBy(() -> gpu.loss().crossEntropyForward(losses, lse, z, t, w, 1.5f))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("labelSmoothing");
        assertThatThrownBy(() -> gpu.loss().crossEntropyBackward(gpu.allocate(DType.BF16, 3, 11), z, lse, t, w, 0f))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dLogits has shape");
    }

    /** A weighted row whose target is out of range cannot fault the device: its loss (and the total) is NaN. */
    @Test
    void outOfRangeTargetPoisonsTheLoss() {
        int n = 2;
        int v = 16;
        SplittableRandom r = new SplittableRandom(9);
        Tensor z = tensor(gpu, DType.BF16, randomBf16(r, n * v, -1, 1), n, v);
        Tensor losses = gpu.allocate(DType.F32, n);
        double total = gpu.loss().crossEntropyForward(losses, gpu.allocate(DType.F32, n), z,
                ints(gpu, new int[] {3, v}, n), tensor(gpu, DType.F32, new float[] {0.5f, 0.5f}, n), 0f);
        assertThat(total).isNaN();
        float[] l = floats(gpu, losses);
        assertThat(l[0]).isFinite();
        assertThat(l[1]).isNaN();
    }
}
