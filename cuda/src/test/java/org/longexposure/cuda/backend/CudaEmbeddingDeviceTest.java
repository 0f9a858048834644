package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.ints;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomF32;
import static org.longexposure.cuda.backend.DeviceTestSupport.roundedBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * CudaEmbedding against CpuEmbedding. Every result is exact: the gather copies bf16 rows, the accumulating
 * gather is one f32 addition rounded once to bf16 (the CPU's f32 sum, rounded), and the backward adds the rows
 * in the same order as the CPU in f32, so dTable must equal the CPU's bit for bit even with repeated ids.
 */
@Tag("gpu")
class CudaEmbeddingDeviceTest extends DeviceTestBase {

    /** N ids over V rows, with many repeats (V is small next to N) and both ends of the table. */
    private static int[] ids(SplittableRandom r, int n, int v) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(v);
        }
        ids[0] = v - 1;
        if (n > 1) {
            ids[n - 1] = 0;
        }
        return ids;
    }

    @ParameterizedTest
    @CsvSource({"1, 1, 1", "13, 7, 5", "1000, 200, 50", "13, 2051, 40", "1000, 768, 37", "3, 8192, 4"})
    void forwardIsAnExactGather(int n, int c, int v) {
        SplittableRandom r = new SplittableRandom(7L * n + c);
        float[] table = randomBf16(r, v * c, -1, 1);
        int[] id = ids(r, n, v);
        float[] base = randomBf16(r, n * c, -1, 1);

        Tensor tableC = tensor(cpu, DType.F32, table, v, c);
        Tensor idsC = ints(cpu, id, n);
        Tensor outC = tensor(cpu, DType.F32, base, n, c);
        cpu.embedding().embeddingForward(outC, idsC, tableC, true);
        float[] accumulated = roundedBf16(floats(cpu, outC));

        Tensor tableG = tensor(gpu, DType.BF16, table, v, c);
        Tensor idsG = ints(gpu, id, n);
        Tensor outG = gpu.allocate(DType.BF16, n, c);
        gpu.embedding().embeddingForward(outG, idsG, tableG, false);
        float[] gathered = new float[n * c];
        for (int i = 0; i < n; i++) {
            System.arraycopy(table, id[i] * c, gathered, i * c, c);
        }
        assertExact("gather n=" + n + " c=" + c, floats(gpu, outG), gathered);

        Tensor accG = tensor(gpu, DType.BF16, base, n, c);
        gpu.embedding().embeddingForward(accG, idsG, tableG, true);
        assertExact("accumulate n=" + n + " c=" + c, floats(gpu, accG), accumulated);
    }

    @Test
    void forwardAcceptsBatchShapedIds() {
        SplittableRandom r = new SplittableRandom(3);
        int b = 3;
        int t = 5;
        int c = 24;
        int v = 11;
        float[] table = randomBf16(r, v * c, -1, 1);
        int[] id = ids(r, b * t, v);
        Tensor out = gpu.allocate(DType.BF16, b, t, c);
        gpu.embedding().embeddingForward(out, ints(gpu, id, b, t), tensor(gpu, DType.BF16, table, v, c), false);
        float[] got = floats(gpu, out);
        for (int i = 0; i < b * t; i++) {
            for (int j = 0; j < c; j++) {
                assertThat(got[i * c + j]).isEqualTo(table[id[i] * c + j]);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 1, 1", "13, 7, 5", "1000, 200, 50", "13, 2051, 40", "1000, 768, 37"})
    void backwardMatchesCpuBitForBit(int n, int c, int v) {
        SplittableRandom r = new SplittableRandom(13L * n + c);
        float[] dy = randomBf16(r, n * c, -1, 1);
        float[] dTable0 = randomF32(r, v * c, -1, 1);
        int[] id = ids(r, n, v);

        Tensor dTableC = tensor(cpu, DType.F32, dTable0, v, c);
        cpu.embedding().embeddingBackward(dTableC, tensor(cpu, DType.F32, dy, n, c), ints(cpu, id, n));

        Tensor dTableG = tensor(gpu, DType.F32, dTable0, v, c);
        gpu.embedding().embeddingBackward(dTableG, tensor(gpu, DType.BF16, dy, n, c), ints(gpu, id, n));
        assertExact("dTable n=" + n + " c=" + c, floats(gpu, dTableG), floats(cpu, dTableC));
    }

    @Test
    void rejectsMismatchedShapes() {
        Tensor table = gpu.allocate(DType.BF16, 10, 8);
        Tensor ids = gpu.allocate(DType.I32, 4);
        assertThatThrownBy(() -> gpu.embedding().embeddingForward(gpu.allocate(DType.BF16, 4, 9), ids, table, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out has shape");
        assertThatThrownBy(() -> gpu.embedding().embeddingForward(gpu.allocate(DType.BF16, 4, 8),
                gpu.allocate(DType.F32, 4), table, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ids must be i32");
        assertThatThrownBy(() -> gpu.embedding().embeddingBackward(gpu.allocate(DType.BF16, 10, 8),
                gpu.allocate(DType.BF16, 4, 8), ids))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dTable must be f32");
    }
}
