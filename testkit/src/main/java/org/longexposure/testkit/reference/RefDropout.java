package org.longexposure.testkit.reference;

/**
 * Float64 twin of the backends' dropout: element i is kept iff u(seed, i) ≥ p, u being the top 24 bits of
 * SplitMix64's finaliser of {@code seed + (i + 1)·0x9E3779B97F4A7C15} over 2^24 (the contract written in core's
 * {@code backend.Dropout}, restated here so the oracle stays independent of the engine). Kept elements are
 * scaled by 1/(1 − p); the backward applies the same map to dOut.
 */
public final class RefDropout {
    private RefDropout() {
    }

    public static boolean keep(long seed, long index, double p) {
        long z = seed + (index + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 40) / (double) (1 << 24) >= p;
    }

    public static void forward(double[] out, double[] inp, double p, long seed) {
        for (int i = 0; i < inp.length; i++) {
            out[i] = keep(seed, i, p) ? inp[i] / (1 - p) : 0;
        }
    }

    public static void backward(double[] dInp, double[] dOut, double p, long seed) {
        forward(dInp, dOut, p, seed);
    }
}
