package org.longexposure.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Host-side access to the elements of a backend's tensors, which may live in device memory: every byte moves
 * through {@link Backend#write} and {@link Backend#read}, staged in native memory that is freed before the call
 * returns. For small tensors and setup work (inputs, LoRA initialisation, checkpoints, adapters, reports), never
 * for per-element work in a hot loop.
 *
 * <p>Conversions: float arrays are rounded to nearest-even into F16/BF16 destinations; F16/BF16/F64 sources are
 * widened (F64 narrowed) to float exactly as {@link Tensor#getFloat} does.
 */
public final class Tensors {
    private Tensors() {
    }

    /**
     * The size check of {@link Backend#write} and {@link Backend#read}: the host segment must hold exactly the
     * tensor's bytes. {@code op} ("write" or "read") labels the error.
     */
    public static void requireSameBytes(String op, Tensor t, MemorySegment host) {
        if (host.byteSize() != t.byteSize()) {
            throw new IllegalArgumentException(op + ": tensor " + t + " has " + t.byteSize()
                    + " bytes but the host segment has " + host.byteSize());
        }
    }

    /** All elements of {@code t} (F32, F16, BF16 or F64, on {@code be}) as a new float array. */
    public static float[] toFloats(Backend be, Tensor t) {
        requireFloat("toFloats", t);
        try (Arena arena = Arena.ofConfined()) {
            return toHost(be, t, arena).toFloatArray();
        }
    }

    /** All elements of the F64 tensor {@code t} (on {@code be}) as a new double array. */
    public static double[] toDoubles(Backend be, Tensor t) {
        t.requireDType("toDoubles", DType.F64);
        try (Arena arena = Arena.ofConfined()) {
            return readBytes(be, t, arena).toArray(ValueLayout.JAVA_DOUBLE);
        }
    }

    /** All elements of the I32 tensor {@code t} (on {@code be}) as a new int array. */
    public static int[] toInts(Backend be, Tensor t) {
        t.requireDType("toInts", DType.I32);
        try (Arena arena = Arena.ofConfined()) {
            return readBytes(be, t, arena).toArray(ValueLayout.JAVA_INT);
        }
    }

    /** {@code t}'s bytes in a fresh staging segment of {@code arena} (8-byte aligned). */
    private static MemorySegment readBytes(Backend be, Tensor t, Arena arena) {
        MemorySegment seg = staging(arena, t.byteSize());
        be.read(t, seg);
        return seg;
    }

    /**
     * Copies {@code src} into {@code dst} (F32, F16, BF16 or F64, on {@code be}), rounding to nearest-even where
     * {@code dst} is narrower than float; lengths must match.
     */
    public static void copyFrom(Backend be, Tensor dst, float[] src) {
        requireFloat("copyFrom", dst);
        requireLength(dst, src.length);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = staging(arena, dst.byteSize());
            switch (dst.dtype()) {
                case F32 -> MemorySegment.copy(src, 0, seg, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, src.length);
                case F16 -> {
                    for (int i = 0; i < src.length; i++) {
                        seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16(src[i]));
                    }
                }
                case BF16 -> {
                    for (int i = 0; i < src.length; i++) {
                        seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, floatToBf16(src[i]));
                    }
                }
                case F64 -> {
                    for (int i = 0; i < src.length; i++) {
                        seg.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, src[i]);
                    }
                }
                default -> throw new IllegalStateException("unreachable: " + dst.dtype());
            }
            be.write(dst, seg);
        }
    }

    /** Copies {@code src} into the I32 tensor {@code dst} (on {@code be}); lengths must match. */
    public static void copyFrom(Backend be, Tensor dst, int[] src) {
        dst.requireDType("copyFrom", DType.I32);
        requireLength(dst, src.length);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = staging(arena, dst.byteSize());
            MemorySegment.copy(src, 0, seg, ValueLayout.JAVA_INT_UNALIGNED, 0, src.length);
            be.write(dst, seg);
        }
    }

    /** A host copy of {@code t} (same dtype and shape) whose lifetime is {@code arena}'s. */
    public static Tensor toHost(Backend be, Tensor t, Arena arena) {
        Tensor h = Tensor.allocateHost(arena, t.dtype(), t.shape().dims());
        be.read(t, h.host());
        return h;
    }

    /**
     * A new tensor of {@code be} with the dtype, shape and bytes of the host tensor {@code host} (a plain copy, no
     * conversion: compare {@link Backend#adoptWeight}).
     */
    public static Tensor upload(Backend be, Tensor host) {
        Tensor t = be.allocate(host.dtype(), host.shape().dims());
        be.write(t, host.host());
        return t;
    }

    /** {@code v} rounded to nearest-even BF16 (the top 16 bits of the float); NaN stays a quiet NaN. */
    public static short floatToBf16(float v) {
        if (Float.isNaN(v)) {
            return (short) 0x7FC0;
        }
        int bits = Float.floatToRawIntBits(v);
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    private static MemorySegment staging(Arena arena, long bytes) {
        return arena.allocate(Math.max(1, bytes), Tensor.HOST_ALIGNMENT).asSlice(0, bytes);
    }

    private static void requireFloat(String op, Tensor t) {
        if (!t.dtype().isFloat()) {
            throw new IllegalArgumentException(op + ": expected a float tensor (f32, f16, bf16, f64), got " + t);
        }
    }

    private static void requireLength(Tensor dst, int length) {
        if (length != dst.numel()) {
            throw new IllegalArgumentException("copyFrom: " + length + " values into " + dst.shape());
        }
    }
}
