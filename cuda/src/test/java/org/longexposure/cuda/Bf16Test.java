package org.longexposure.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import java.math.BigDecimal;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class Bf16Test {
    /** Oracle: the nearer of the two bf16 neighbours of f by exact decimal distance, ties to the even mantissa. */
    private static float nearestBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        float down = Float.intBitsToFloat(bits & 0xFFFF0000);
        float up = Float.intBitsToFloat((bits & 0xFFFF0000) + 0x10000);
        if (down == f) {
            return f;
        }
        if (!Float.isFinite(up)) {
            return Float.NaN;
        }
        BigDecimal x = new BigDecimal(f);
        int c = x.subtract(new BigDecimal(down)).abs().compareTo(new BigDecimal(up).subtract(x).abs());
        if (c != 0) {
            return c < 0 ? down : up;
        }
        return ((Float.floatToRawIntBits(down) >>> 16) & 1) == 0 ? down : up;
    }

    @Test
    void roundsToNearestEvenLikeTheOracle() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (int i = 0; i < 200_000; i++) {
            float f = Float.intBitsToFloat(rnd.nextInt() & 0x7F7FFFFF) * (rnd.nextBoolean() ? 1 : -1);
            if (!Float.isNaN(nearestBf16(f))) {
                assertThat(Bf16.round(f)).as("bits %08x", Float.floatToRawIntBits(f)).isEqualTo(nearestBf16(f));
            }
        }
        // exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7; the even neighbour is 1
        assertThat(Bf16.round(1f + 0x1p-8f)).isEqualTo(1f);
        assertThat(Bf16.round(1f + 3 * 0x1p-8f)).isEqualTo(1f + 2 * 0x1p-7f);
        assertThat(Bf16.round(Float.NaN)).isNaN();
        assertThat(Bf16.round(Float.intBitsToFloat(0x7F7F_FFFF))).isInfinite();
    }
}
