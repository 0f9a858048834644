package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.half;
import static org.longexposure.backend.HostTensors.i32;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.cpu.CpuEmbedding;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.reference.RefEmbedding;

/** CpuEmbedding against RefEmbedding: F32/F16/BF16 tables, accumulate, repeated ids, determinism. */
class EmbeddingOpsTest {
    @ParameterizedTest(name = "{0} N={1} V={2} C={3} accumulate={4}")
    @CsvSource({
        "F32, 1, 1, 1, false",
        "F32, 7, 1003, 13, true",
        "F16, 33, 50, 67, false",
        "BF16, 33, 50, 67, true",
        "F16, 7, 5, 770, true",
        "BF16, 300, 41, 131, false",
        "F32, 300, 41, 131, true",
    })
    void forwardAndBackwardMatchReference(DType dtype, int n, int v, int c, boolean accumulate) {
        Rng rng = new Rng(n * 31L + v * 7L + c);
        float[] table = rng.normalFloats(v * c);
        int[] ids = rng.ints(n, v);
        ids[n - 1] = ids[0];
        float[] base = rng.normalFloats(n * c);
        float[] dOut = rng.normalFloats(n * c);
        float[] dTablePrior = rng.normalFloats(v * c);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(2)) {
            CpuEmbedding ops = new CpuEmbedding(threads);
            Tensor tt = dtype == DType.F32 ? f32(arena, table, v, c) : half(arena, dtype, table, v, c);
            // the oracle sees exactly the values the table stores
            double[] stored = Rng.toDouble(tt.toFloatArray());
            Tensor idt = i32(arena, ids, n);
            Tensor out = accumulate ? f32(arena, base, n, c) : zeros(arena, n, c);
            ops.embeddingForward(out, idt, tt, accumulate);
            double[] ref = accumulate ? Rng.toDouble(base) : new double[n * c];
            RefEmbedding.forward(ref, ids, stored, accumulate, n, c);
            TensorAssert.assertClose("embedding", FORWARD, out.toFloatArray(), ref, n, c);

            Tensor dTable = f32(arena, dTablePrior, v, c);
            ops.embeddingBackward(dTable, f32(arena, dOut, n, c), idt);
            double[] dRef = Rng.toDouble(dTablePrior);
            RefEmbedding.backward(dRef, Rng.toDouble(dOut), ids, n, c);
            TensorAssert.assertClose("embedding", GRAD, dTable.toFloatArray(), dRef, v, c);
        }
    }

    @Test
    void idsMayCarryBatchAndTimeDimensions() {
        Rng rng = new Rng(3);
        float[] table = rng.normalFloats(11 * 5);
        int[] ids = rng.ints(2 * 3, 11);
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuEmbedding ops = new CpuEmbedding(threads);
            Tensor out = zeros(arena, 2, 3, 5);
            ops.embeddingForward(out, i32(arena, ids, 2, 3), f32(arena, table, 11, 5), false);
            double[] ref = new double[2 * 3 * 5];
            RefEmbedding.forward(ref, ids, Rng.toDouble(table), false, 6, 5);
            TensorAssert.assertClose("embedding", FORWARD, out.toFloatArray(), ref, 2, 3, 5);
        }
    }

    @Test
    void backwardIsBitIdenticalForAnyThreadCount() {
        int n = 400;
        int v = 23;
        int c = 771;
        Rng rng = new Rng(8);
        int[] ids = rng.ints(n, v);
        float[] dOut = rng.normalFloats(n * c);
        float[] prior = rng.normalFloats(v * c);
        float[] first = null;
        for (int t : new int[] {1, 2, 3}) {
            try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(t)) {
                Tensor dTable = f32(arena, prior, v, c);
                new CpuEmbedding(threads).embeddingBackward(dTable, f32(arena, dOut, n, c), i32(arena, ids, n));
                if (first == null) {
                    first = dTable.toFloatArray();
                } else {
                    TensorAssert.assertBitIdentical("dTable, threads " + t, first, dTable.toFloatArray());
                }
            }
        }
    }

    @Test
    void badIdsAndShapesAreRejected() {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuEmbedding ops = new CpuEmbedding(threads);
            Tensor table = zeros(arena, 4, 3);
            assertThatThrownBy(() -> ops.embeddingForward(zeros(arena, 2, 3), i32(arena, new int[] {1, 4}, 2), table,
                    false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ids[1] = 4");
            assertThatThrownBy(() -> ops.embeddingForward(zeros(arena, 2, 5), i32(arena, new int[] {1, 2}, 2), table,
                    false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out has shape [2, 5]");
            assertThatThrownBy(() -> ops.embeddingBackward(zeros(arena, 4, 3), zeros(arena, 3, 3),
                    i32(arena, new int[] {-1, 0, 0}, 3)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ids[0] = -1");
        }
    }
}
