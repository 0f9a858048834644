package org.longexposure.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/** Host tensors from Java arrays for op tests; lifetimes are the caller's arena. */
final class HostTensors {
    private HostTensors() {
    }

    static Tensor f32(Arena arena, float[] data, long... dims) {
        return Tensor.allocateHost(arena, DType.F32, dims).copyFrom(data);
    }

    static Tensor i32(Arena arena, int[] data, long... dims) {
        return Tensor.allocateHost(arena, DType.I32, dims).copyFrom(data);
    }

    static Tensor zeros(Arena arena, long... dims) {
        return Tensor.allocateHost(arena, DType.F32, dims);
    }

    /** A F16 or BF16 tensor holding {@code data} rounded to nearest-even in that format. */
    static Tensor half(Arena arena, DType dtype, float[] data, long... dims) {
        Tensor t = Tensor.allocateHost(arena, dtype, dims);
        for (int i = 0; i < data.length; i++) {
            short h = switch (dtype) {
                case F16 -> Float.floatToFloat16(data[i]);
                case BF16 -> {
                    int bits = Float.floatToRawIntBits(data[i]);
                    yield (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
                }
                default -> throw new IllegalArgumentException("not a 16-bit float type: " + dtype);
            };
            t.host().setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, h);
        }
        return t;
    }
}
