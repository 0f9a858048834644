package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.longexposure.backend.Dropout;
import org.longexposure.backend.Tensors;
import org.longexposure.tensor.Tensor;

/**
 * {@link org.longexposure.backend.Backend#fillUniform}: element i of t becomes {@code low + (high − low)·u(seed, i)}
 * with u from {@link Dropout#uniform}, computed in float, then rounded to nearest-even into t's dtype (F32, F16,
 * BF16; F64 receives the float value). Each element depends only on its index, so the fixed blocks of
 * {@link CpuPointwise} give the same tensor on any number of threads. Nothing is saved.
 */
final class CpuFill {
    private CpuFill() {
    }

    static void fillUniform(CpuThreads threads, Tensor t, float low, float high, long seed) {
        String op = "fillUniform";
        if (!t.dtype().isFloat()) {
            throw new IllegalArgumentException(op + ": t must be a float tensor (f32, f16, bf16, f64), got " + t);
        }
        if (!(Float.isFinite(low) && Float.isFinite(high))) {
            throw new IllegalArgumentException(op + ": bounds must be finite, got [" + low + ", " + high + ")");
        }
        MemorySegment s = t.host();
        float range = high - low;
        switch (t.dtype()) {
            case F32 -> CpuPointwise.run(threads, t.numel(), (lo, hi) -> {
                for (long i = lo; i < hi; i++) {
                    s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, value(low, range, seed, i));
                }
            });
            case F16 -> CpuPointwise.run(threads, t.numel(), (lo, hi) -> {
                for (long i = lo; i < hi; i++) {
                    s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                            Float.floatToFloat16(value(low, range, seed, i)));
                }
            });
            case BF16 -> CpuPointwise.run(threads, t.numel(), (lo, hi) -> {
                for (long i = lo; i < hi; i++) {
                    s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Tensors.floatToBf16(value(low, range, seed, i)));
                }
            });
            case F64 -> CpuPointwise.run(threads, t.numel(), (lo, hi) -> {
                for (long i = lo; i < hi; i++) {
                    s.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, value(low, range, seed, i));
                }
            });
            default -> throw new IllegalStateException("unreachable: " + t.dtype());
        }
    }

    /** low + range·u in float, each operation rounded (Java never fuses a multiply and an add). */
    private static float value(float low, float range, long seed, long i) {
        return low + range * Dropout.uniform(seed, i);
    }
}
