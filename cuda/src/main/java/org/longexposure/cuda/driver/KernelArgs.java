package org.longexposure.cuda.driver;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.tensor.Tensor;

/**
 * The arguments of one kernel launch, in the kernel's parameter order. cuLaunchKernel takes {@code void**}: an
 * array whose entry i points at the value of parameter i; {@link #marshal} builds it (one 8-byte slot per value,
 * then the pointer array) in the caller's arena.
 *
 * <p>Java types map to C parameter types: {@code Long} = a pointer ({@code T*}) or {@code long long}/{@code size_t};
 * {@code Integer} = {@code int}; {@code Float} = {@code float}; {@code Double} = {@code double}; a device
 * {@link Tensor} = the pointer to its first element; a {@link DeviceStorage} = its base pointer. Anything else is
 * rejected here, before it can reach the device as garbage.
 */
public final class KernelArgs {
    /** The C type a value is passed as. */
    enum Kind { POINTER_OR_LONG, INT, FLOAT, DOUBLE }

    private final Kind[] kinds;
    private final long[] bits;

    private KernelArgs(Kind[] kinds, long[] bits) {
        this.kinds = kinds;
        this.bits = bits;
    }

    /** Arguments in parameter order; see the class comment for the accepted types. */
    public static KernelArgs of(Object... values) {
        Kind[] kinds = new Kind[values.length];
        long[] bits = new long[values.length];
        for (int i = 0; i < values.length; i++) {
            Object v = values[i];
            switch (v) {
                case Long l -> {
                    kinds[i] = Kind.POINTER_OR_LONG;
                    bits[i] = l;
                }
                case Integer n -> {
                    kinds[i] = Kind.INT;
                    bits[i] = n;
                }
                case Float f -> {
                    kinds[i] = Kind.FLOAT;
                    bits[i] = Float.floatToRawIntBits(f);
                }
                case Double d -> {
                    kinds[i] = Kind.DOUBLE;
                    bits[i] = Double.doubleToRawLongBits(d);
                }
                case Tensor t -> {
                    kinds[i] = Kind.POINTER_OR_LONG;
                    bits[i] = DeviceStorage.addressOf(t);
                }
                case DeviceStorage s -> {
                    kinds[i] = Kind.POINTER_OR_LONG;
                    bits[i] = s.address();
                }
                case null -> throw new IllegalArgumentException("kernel argument " + i + " is null");
                default -> throw new IllegalArgumentException("kernel argument " + i + " has unsupported type "
                        + v.getClass().getName() + " (use Long, Integer, Float, Double or a device Tensor)");
            }
        }
        return new KernelArgs(kinds, bits);
    }

    public int size() {
        return kinds.length;
    }

    /**
     * The {@code void**} array: {@code size()} pointers, entry i pointing at an 8-byte-aligned slot holding
     * value i in its C representation (little-endian, so a 4-byte value sits in the slot's first 4 bytes).
     */
    public MemorySegment marshal(Arena arena) {
        int n = kinds.length;
        MemorySegment slots = arena.allocate(8L * Math.max(1, n), 8);
        MemorySegment pointers = arena.allocate(ADDRESS.byteSize() * Math.max(1, n), ADDRESS.byteAlignment());
        for (int i = 0; i < n; i++) {
            long at = 8L * i;
            switch (kinds[i]) {
                case POINTER_OR_LONG -> slots.set(JAVA_LONG, at, bits[i]);
                case INT -> slots.set(JAVA_INT, at, (int) bits[i]);
                case FLOAT -> slots.set(JAVA_FLOAT, at, Float.intBitsToFloat((int) bits[i]));
                case DOUBLE -> slots.set(JAVA_DOUBLE, at, Double.longBitsToDouble(bits[i]));
            }
            pointers.setAtIndex(ADDRESS, i, slots.asSlice(at, 8));
        }
        return pointers;
    }

    /** "(0x7f00, 17, 1.5f, ...)": the values as passed, for launch error messages. */
    @Override
    public String toString() {
        String[] parts = new String[kinds.length];
        for (int i = 0; i < kinds.length; i++) {
            parts[i] = switch (kinds[i]) {
                case POINTER_OR_LONG -> bits[i] > 0xFFFFFFFFL ? "0x" + Long.toHexString(bits[i]) : Long.toString(bits[i]);
                case INT -> Integer.toString((int) bits[i]);
                case FLOAT -> Float.intBitsToFloat((int) bits[i]) + "f";
                case DOUBLE -> Double.toString(Double.longBitsToDouble(bits[i]));
            };
        }
        return "(" + String.join(", ", Arrays.asList(parts)) + ")";
    }
}
