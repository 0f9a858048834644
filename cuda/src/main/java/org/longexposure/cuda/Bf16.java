package org.longexposure.cuda;

/**
 * bfloat16 conversions on the host: the upper 16 bits of an IEEE float. Rounding is to nearest even, as
 * {@code torch.Tensor.to(torch.bfloat16)} and the device's {@code __float2bfloat16_rn}; NaN stays a (quiet) NaN.
 */
public final class Bf16 {
    private Bf16() {
    }

    /** The bf16 bits nearest to {@code f} (ties to even). */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    public static float toFloat(short bf16) {
        return Float.intBitsToFloat((bf16 & 0xFFFF) << 16);
    }

    /** {@code f} rounded to the nearest bf16 value, as a float. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
