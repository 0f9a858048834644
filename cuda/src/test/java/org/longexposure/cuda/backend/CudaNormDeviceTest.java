package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.U;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertBf16Within;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertWithin;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomF32;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * CudaNorm against CpuNorm on the same bf16-valued inputs. The bounds follow from the two summations: each GPU
 * lane adds ⌈C/32⌉ terms sequentially in f32 and five butterfly steps combine the lanes, so a GPU row sum is off
 * by at most (⌈C/32⌉ + 5)·u·Σ|terms| (u = 2^-24); the CPU adds at most 8 terms per float lane before flushing to
 * double, at most 8·u·Σ|terms|. With a few roundings more, k = (⌈C/32⌉ + 16)·u bounds the difference of the two
 * sums relative to Σ|terms|. Those errors are propagated to mean, rstd and every output element (δ), and a bf16
 * output may additionally be off by half a bf16 ulp of the value (see {@link DeviceTestSupport#assertBf16Within}).
 */
@Tag("gpu")
class CudaNormDeviceTest extends DeviceTestBase {
    private static final float EPS = 1e-5f;

    /** Row sums' error bound factor for a row of c elements (see the class comment). */
    private static double sumFactor(int c) {
        return ((c + 31) / 32 + 16) * U;
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "13, 7", "1000, 200", "13, 2051", "7, 768", "3, 8192", "1000, 768", "2, 8195"})
    void forwardMatchesCpu(int m, int c) {
        SplittableRandom r = new SplittableRandom(31L * m + c);
        for (int affine = 0; affine < 4; affine++) {
            float[] x = new float[m * c];
            for (int i = 0; i < m; i++) {
                // a per-row offset exercises the mean subtraction
                float[] row = randomBf16(r, c, -2, 2);
                float off = (float) r.nextDouble(-3, 3);
                for (int j = 0; j < c; j++) {
                    x[i * c + j] = DeviceTestSupport.bf16(row[j] + off);
                }
            }
            float[] w = (affine & 1) != 0 ? randomF32(r, c, 0.5, 1.5) : null;
            float[] b = (affine & 2) != 0 ? randomF32(r, c, -0.5, 0.5) : null;

            Tensor xc = tensor(cpu, DType.F32, x, m, c);
            Tensor outC = cpu.allocate(DType.F32, m, c);
            Tensor meanC = cpu.allocate(DType.F32, m);
            Tensor rstdC = cpu.allocate(DType.F32, m);
            cpu.norm().layerNormForward(outC, meanC, rstdC, xc, w == null ? null : tensor(cpu, DType.F32, w, c),
                    b == null ? null : tensor(cpu, DType.F32, b, c), EPS);

            Tensor xg = tensor(gpu, DType.BF16, x, m, c);
            Tensor outG = gpu.allocate(DType.BF16, m, c);
            Tensor meanG = gpu.allocate(DType.F32, m);
            Tensor rstdG = gpu.allocate(DType.F32, m);
            gpu.norm().layerNormForward(outG, meanG, rstdG, xg, w == null ? null : tensor(gpu, DType.F32, w, c),
                    b == null ? null : tensor(gpu, DType.F32, b, c), EPS);

            float[] mu = floats(cpu, meanC);
            float[] rs = floats(cpu, rstdC);
            float[] muG = floats(gpu, meanG);
            float[] rsG = floats(gpu, rstdG);
            double k = sumFactor(c);
            double[] tolMean = new double[m];
            double[] tolRstd = new double[m];
            double[] delta = new double[m * c];
            float[] y = floats(cpu, outC);
            for (int i = 0; i < m; i++) {
                double absMean = 0;
                for (int j = 0; j < c; j++) {
                    absMean += Math.abs(x[i * c + j]);
                }
                absMean /= c;
                tolMean[i] = k * absMean + 2 * U * Math.abs(mu[i]);
                // var's sum has positive terms: relative error k; rstd = 1/sqrt(var + eps) halves it, plus roundings
                tolRstd[i] = (k + 4 * U) * rs[i];
                for (int j = 0; j < c; j++) {
                    double wj = w == null ? 1 : Math.abs(w[j]);
                    double bj = b == null ? 0 : Math.abs(b[j]);
                    double dx = Math.abs(x[i * c + j] - mu[i]);
                    delta[i * c + j] = wj * (dx * tolRstd[i] + rs[i] * tolMean[i])
                            + 4 * U * (dx * rs[i] * wj + bj);
                }
            }
            assertWithin("mean (m=" + m + ", c=" + c + ")", muG, mu, tolMean);
            assertWithin("rstd (m=" + m + ", c=" + c + ")", rsG, rs, tolRstd);
            assertBf16Within("out (m=" + m + ", c=" + c + ", affine=" + affine + ")", floats(gpu, outG), y, delta);
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 1", "13, 7", "1000, 200", "13, 2051", "7, 768", "3, 8192", "1000, 768"})
    void backwardMatchesCpu(int m, int c) {
        SplittableRandom r = new SplittableRandom(17L * m + c);
        for (int variant = 0; variant < 4; variant++) {
            boolean withWeight = (variant & 1) != 0;
            boolean accumulate = (variant & 2) != 0;
            float[] x = randomBf16(r, m * c, -2, 3);
            float[] dy = randomBf16(r, m * c, -1, 1);
            float[] old = randomBf16(r, m * c, -1, 1);
            float[] w = withWeight ? randomF32(r, c, 0.5, 1.5) : null;
            float[] dw0 = randomF32(r, c, -1, 1);
            float[] db0 = randomF32(r, c, -1, 1);

            // the CPU's saved statistics feed both backwards, so only the backward's own arithmetic differs
            Tensor xc = tensor(cpu, DType.F32, x, m, c);
            Tensor meanC = cpu.allocate(DType.F32, m);
            Tensor rstdC = cpu.allocate(DType.F32, m);
            cpu.norm().layerNormForward(cpu.allocate(DType.F32, m, c), meanC, rstdC, xc, null, null, EPS);
            float[] mu = floats(cpu, meanC);
            float[] rs = floats(cpu, rstdC);

            Tensor dInpC = tensor(cpu, DType.F32, old, m, c);
            Tensor dwC = tensor(cpu, DType.F32, dw0, c);
            Tensor dbC = tensor(cpu, DType.F32, db0, c);
            cpu.norm().layerNormBackward(dInpC, dwC, dbC, tensor(cpu, DType.F32, dy, m, c), xc, meanC, rstdC,
                    w == null ? null : tensor(cpu, DType.F32, w, c), accumulate);

            Tensor dInpG = tensor(gpu, DType.BF16, old, m, c);
            Tensor dwG = tensor(gpu, DType.F32, dw0, c);
            Tensor dbG = tensor(gpu, DType.F32, db0, c);
            gpu.norm().layerNormBackward(dInpG, dwG, dbG, tensor(gpu, DType.BF16, dy, m, c),
                    tensor(gpu, DType.BF16, x, m, c), tensor(gpu, DType.F32, mu, m), tensor(gpu, DType.F32, rs, m),
                    w == null ? null : tensor(gpu, DType.F32, w, c), accumulate);

            // dInp: the two row sums Σg and Σg·xhat carry the summation error; the rest is a few roundings
            double k = sumFactor(c);
            double[] delta = new double[m * c];
            for (int i = 0; i < m; i++) {
                double sAbsG = 0;
                double sAbsGX = 0;
                for (int j = 0; j < c; j++) {
                    double g = dy[i * c + j] * (w == null ? 1 : w[j]);
                    double xhat = (x[i * c + j] - mu[i]) * rs[i];
                    sAbsG += Math.abs(g);
                    sAbsGX += Math.abs(g * xhat);
                }
                for (int j = 0; j < c; j++) {
                    double g = dy[i * c + j] * (w == null ? 1 : w[j]);
                    double xhat = Math.abs((x[i * c + j] - mu[i]) * rs[i]);
                    delta[i * c + j] = rs[i] * (k * sAbsG / c + xhat * k * sAbsGX / c)
                            + 6 * U * rs[i] * (Math.abs(g) + sAbsG / c + xhat * sAbsGX / c)
                            + (accumulate ? 2 * U * Math.abs(old[i * c + j]) : 0);
                }
            }
            String what = "(m=" + m + ", c=" + c + ", weight=" + withWeight + ", accumulate=" + accumulate + ")";
            assertBf16Within("dInp " + what, floats(gpu, dInpG), floats(cpu, dInpC), delta);

            // dWeight/dBias: f32 partials over at most max(16, ceil(M/128)) rows on the GPU and 16 on the CPU,
            // both then added in double; the final rounding adds an ulp of the result
            int chunkRows = Math.max(16, (m + 127) / 128);
            double kp = (chunkRows + 16 + 2) * U;
            double[] tolW = new double[c];
            double[] tolB = new double[c];
            float[] dwCpu = floats(cpu, dwC);
            float[] dbCpu = floats(cpu, dbC);
            for (int j = 0; j < c; j++) {
                double sw = 0;
                double sb = 0;
                for (int i = 0; i < m; i++) {
                    sw += Math.abs(dy[i * c + j] * (x[i * c + j] - mu[i]) * rs[i]);
                    sb += Math.abs(dy[i * c + j]);
                }
                tolW[j] = kp * sw + 2 * U * (Math.abs(dw0[j]) + Math.abs(dwCpu[j]));
                tolB[j] = kp * sb + 2 * U * (Math.abs(db0[j]) + Math.abs(dbCpu[j]));
            }
            assertWithin("dWeight " + what, floats(gpu, dwG), dwCpu, tolW);
            assertWithin("dBias " + what, floats(gpu, dbG), dbCpu, tolB);
        }
    }

    /** dInp may be dOut's buffer when not accumulating: the same bits as into a separate buffer. */
    @Test
    void backwardInPlaceOverDOut() {
        int m = 13;
        int c = 2051;
        SplittableRandom r = new SplittableRandom(5);
        float[] x = randomBf16(r, m * c, -2, 2);
        float[] dy = randomBf16(r, m * c, -1, 1);
        float[] w = randomF32(r, c, 0.5, 1.5);
        Tensor xg = tensor(gpu, DType.BF16, x, m, c);
        Tensor mean = gpu.allocate(DType.F32, m);
        Tensor rstd = gpu.allocate(DType.F32, m);
        Tensor wg = tensor(gpu, DType.F32, w, c);
        gpu.norm().layerNormForward(gpu.allocate(DType.BF16, m, c), mean, rstd, xg, wg, null, EPS);
        Tensor separate = gpu.allocate(DType.BF16, m, c);
        gpu.norm().layerNormBackward(separate, null, null, tensor(gpu, DType.BF16, dy, m, c), xg, mean, rstd, wg,
                false);
        Tensor shared = tensor(gpu, DType.BF16, dy, m, c);
        gpu.norm().layerNormBackward(shared, null, null, shared, xg, mean, rstd, wg, false);
        assertExact("dInp over dOut", floats(gpu, shared), floats(gpu, separate));
    }

    @Test
    void rejectsWrongDTypesNamingTheOperand() {
        Tensor x = gpu.allocate(DType.F32, 3, 8);
        Tensor out = gpu.allocate(DType.BF16, 3, 8);
        Tensor mean = gpu.allocate(DType.F32, 3);
        Tensor rstd = gpu.allocate(DType.F32, 3);
        assertThatThrownBy(() -> gpu.norm().layerNormForward(out, mean, rstd, x, null, null, EPS))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("inp");
        Tensor xb = gpu.allocate(DType.BF16, 3, 8);
        assertThatThrownBy(() -> gpu.norm().layerNormForward(out, mean, gpu.allocate(DType.F32, 4), xb, null, null,
                EPS)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("rstd");
        assertThatThrownBy(() -> gpu.norm().layerNormForward(out, mean, rstd, xb,
                gpu.allocate(DType.BF16, 8), null, EPS))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("weight");
    }
}
