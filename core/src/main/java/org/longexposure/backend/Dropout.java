package org.longexposure.backend;

/**
 * The dropout mask contract shared by every backend: element {@code i} of a dropout with seed {@code s} and drop
 * probability {@code p} is kept iff {@code u(s, i) >= p}, where {@code u} is the top 24 bits of SplitMix64's
 * finaliser applied to {@code s + (i + 1)·0x9E3779B97F4A7C15}, scaled to [0, 1). A pure function of (seed, index):
 * the backward regenerates the mask, and the result does not depend on threads or on the device.
 */
public final class Dropout {
    private Dropout() {
    }

    /** Uniform in [0, 1) for (seed, index), 24-bit resolution. */
    public static float uniform(long seed, long index) {
        long z = seed + (index + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 40) * 0x1.0p-24f;
    }

    public static boolean keep(long seed, long index, float p) {
        return uniform(seed, index) >= p;
    }
}
