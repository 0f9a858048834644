package org.longexposure.cuda.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.longexposure.backend.Backend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Shared pieces of the op-family device tests (the backends come from {@link DeviceTestBase}): moving float and
 * int arrays in and out of tensors of either backend, an independent bf16 rounding oracle, and the error-bound
 * helpers the tests justify their tolerances with.
 */
final class DeviceTestSupport {
    /** The f32 unit roundoff 2^-24. */
    static final double U = 0x1.0p-24;
    /** Half a bf16 ulp relative to the value: the largest relative error of one rounding to bf16. */
    static final double BF16_HALF_ULP = 0x1.0p-8;

    private DeviceTestSupport() {
    }

    /** Round to nearest even to bf16, returned as the float it represents (NaN stays NaN). */
    static float bf16(float x) {
        if (Float.isNaN(x)) {
            return x;
        }
        int bits = Float.floatToRawIntBits(x);
        int rounded = (bits + 0x7FFF + ((bits >>> 16) & 1)) & 0xFFFF0000;
        return Float.intBitsToFloat(rounded);
    }

    static short bf16Bits(float x) {
        return (short) (Float.floatToRawIntBits(bf16(x)) >>> 16);
    }

    /** n uniform values in [lo, hi), already rounded to bf16 (so both backends see the same inputs). */
    static float[] randomBf16(SplittableRandom r, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = bf16((float) r.nextDouble(lo, hi));
        }
        return a;
    }

    static float[] randomF32(SplittableRandom r, int n, double lo, double hi) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextDouble(lo, hi);
        }
        return a;
    }

    /** A new tensor of {@code be} holding {@code values} in {@code dtype} (F32, BF16; bf16 rounded to nearest). */
    static Tensor tensor(Backend be, DType dtype, float[] values, long... dims) {
        Tensor t = be.allocate(dtype, dims);
        write(be, t, values);
        return t;
    }

    static Tensor ints(Backend be, int[] values, long... dims) {
        Tensor t = be.allocate(DType.I32, dims);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Math.max(1, t.byteSize())).asSlice(0, t.byteSize());
            MemorySegment.copy(values, 0, s, ValueLayout.JAVA_INT_UNALIGNED, 0, values.length);
            be.write(t, s);
        }
        return t;
    }

    static void write(Backend be, Tensor t, float[] values) {
        if (values.length != t.numel()) {
            throw new IllegalArgumentException(values.length + " values for " + t);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Math.max(1, t.byteSize())).asSlice(0, t.byteSize());
            for (int i = 0; i < values.length; i++) {
                switch (t.dtype()) {
                    case F32 -> s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, values[i]);
                    case BF16 -> s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, bf16Bits(values[i]));
                    default -> throw new IllegalArgumentException("unsupported test dtype " + t.dtype());
                }
            }
            be.write(t, s);
        }
    }



    /** The elements of {@code t} (F32 or BF16, on {@code be}) as floats. */
    static float[] floats(Backend be, Tensor t) {
        float[] out = new float[Math.toIntExact(t.numel())];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Math.max(1, t.byteSize())).asSlice(0, t.byteSize());
            be.read(t, s);
            for (int i = 0; i < out.length; i++) {
                out[i] = switch (t.dtype()) {
                    case F32 -> s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                    case BF16 -> Float.intBitsToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i) << 16);
                    default -> throw new IllegalArgumentException("unsupported test dtype " + t.dtype());
                };
            }
        }
        return out;
    }

    /** Every element rounded to bf16: what a bf16 output of an exactly matching computation must hold. */
    static float[] roundedBf16(float[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = bf16(a[i]);
        }
        return r;
    }

    /**
     * Asserts |gpu[i] − cpu[i]| ≤ 2^-8·(|cpu[i]| + δ[i]) + δ[i]: the GPU's bf16 output is the rounding of an fp32
     * value within δ of the CPU's f32 result (one rounding moves a value by at most half a bf16 ulp, 2^-8 of its
     * magnitude).
     */
    static void assertBf16Within(String what, float[] gpu, float[] cpu, double[] delta) {
        for (int i = 0; i < cpu.length; i++) {
            double tol = BF16_HALF_ULP * (Math.abs(cpu[i]) + delta[i]) + delta[i];
            double err = Math.abs((double) gpu[i] - cpu[i]);
            if (!(err <= tol)) {
                throw new AssertionError(what + ": element " + i + " gpu " + gpu[i] + " cpu " + cpu[i] + " differ by "
                        + err + " > tolerance " + tol);
            }
        }
    }

    /**
     * Asserts the arrays hold the same floats bit for bit (NaNs of any payload count as equal; −0 and +0 differ),
     * naming the first differing element. Linear time, unlike a generic collection diff.
     */
    static void assertExact(String what, float[] actual, float[] expected) {
        if (actual.length != expected.length) {
            throw new AssertionError(what + ": " + actual.length + " elements, expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(actual[i]) != Float.floatToIntBits(expected[i])) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    /** Asserts |gpu[i] − cpu[i]| ≤ tol[i] for every element. */
    static void assertWithin(String what, float[] gpu, float[] cpu, double[] tol) {
        for (int i = 0; i < cpu.length; i++) {
            double err = Math.abs((double) gpu[i] - cpu[i]);
            if (!(err <= tol[i])) {
                throw new AssertionError(what + ": element " + i + " gpu " + gpu[i] + " cpu " + cpu[i] + " differ by "
                        + err + " > tolerance " + tol[i]);
            }
        }
    }

    /** A 1-D view of n elements starting one element into a fresh (n + 1) tensor: a base that is not 16-byte aligned. */
    static Tensor misaligned(Backend be, DType dtype, float[] values) {
        Tensor whole = be.allocate(dtype, values.length + 1L);
        Tensor view = whole.slice(1, values.length);
        write(be, view, values);
        return view;
    }
}
