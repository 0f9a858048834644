package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * {@link Backend#fillUniform} on the CPU: element i is {@code low + (high − low)·Dropout.uniform(seed, i)} in
 * float, rounded to nearest-even into the tensor's dtype; the same on 1 and 3 threads (a size above the parallel
 * threshold, not a multiple of the block size), and a view is filled by its own flat index.
 */
class FillUniformTest {
    private static final int N = 70_001;
    private static final float LOW = -0.75f;
    private static final float HIGH = 1.3f;
    private static final long SEED = 0x5EED_1234L;

    /** The contract, written out independently of the backend code. */
    private static float expected(long seed, long i) {
        return LOW + (HIGH - LOW) * Dropout.uniform(seed, i);
    }

    /** Round to nearest-even BF16 by comparing the two neighbours in double (independent of the bit trick). */
    private static short bf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        int lower = bits & 0xFFFF0000;
        int upper = lower + 0x10000;
        double dl = Math.abs((double) Float.intBitsToFloat(lower) - v);
        double du = Math.abs((double) Float.intBitsToFloat(upper) - v);
        if (dl < du || (dl == du && ((lower >>> 16) & 1) == 0)) {
            return (short) (lower >>> 16);
        }
        return (short) (upper >>> 16);
    }

    private static Tensor fill(int threads, DType dtype) {
        CpuBackend be = new CpuBackend(threads);
        Tensor t = be.allocate(dtype, N);
        be.fillUniform(t, LOW, HIGH, SEED);
        // copy out before the backend (and its arena) closes
        Tensor copy = Tensor.allocateHost(Arena.ofAuto(), dtype, N);
        be.read(t, copy.host());
        be.close();
        return copy;
    }

    @Test
    void f32FollowsTheFormulaOnAnyThreadCount() {
        Tensor one = fill(1, DType.F32);
        Tensor three = fill(3, DType.F32);
        assertThat(three.toFloatArray()).isEqualTo(one.toFloatArray());
        float min = Float.MAX_VALUE;
        float max = -Float.MAX_VALUE;
        double sum = 0;
        for (int i = 0; i < N; i++) {
            float v = one.getFloat(i);
            assertThat(v).as("element %d", i).isEqualTo(expected(SEED, i));
            min = Math.min(min, v);
            max = Math.max(max, v);
            sum += v;
        }
        assertThat(min).isGreaterThanOrEqualTo(LOW);
        assertThat(max).isLessThan(HIGH);
        // mean of N uniforms: (LOW+HIGH)/2 with standard error (HIGH-LOW)/sqrt(12·N) ≈ 0.0022; 5 sigma
        assertThat(sum / N).isCloseTo((LOW + HIGH) / 2.0, Offset.offset(0.011));
    }

    @Test
    void halfTypesAreTheFloatValueRoundedToNearestEven() {
        Tensor b = fill(3, DType.BF16);
        Tensor h = fill(3, DType.F16);
        Tensor d = fill(3, DType.F64);
        for (int i = 0; i < N; i++) {
            float v = expected(SEED, i);
            assertThat(b.host().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i)).as("bf16 %d", i).isEqualTo(bf16(v));
            assertThat(h.host().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i)).as("f16 %d", i)
                    .isEqualTo(Float.floatToFloat16(v));
            assertThat(d.host().getAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i)).isEqualTo((double) v);
        }
    }

    @Test
    void aViewIsFilledByItsOwnIndexAndTheRestIsUntouched() {
        try (CpuBackend be = new CpuBackend(2)) {
            Tensor t = be.allocate(DType.F32, 13, 7);
            be.fillUniform(t.slice(4, 5), LOW, HIGH, 99);
            float[] all = Tensors.toFloats(be, t);
            for (int i = 0; i < all.length; i++) {
                int inView = i - 4 * 7;
                float want = inView >= 0 && inView < 5 * 7 ? expected(99, inView) : 0f;
                assertThat(all[i]).as("element %d", i).isEqualTo(want);
            }
        }
    }
}
