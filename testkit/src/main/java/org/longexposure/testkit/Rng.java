package org.longexposure.testkit;

import java.util.SplittableRandom;

/**
 * Seeded random fills for tests. One instance per test case, built from an explicit seed, so a failure
 * reproduces from the seed printed in the test alone. The float fills are what an engine test feeds the engine;
 * {@link #toDouble(float[])} gives the oracle exactly the same values.
 */
public final class Rng {
    private final SplittableRandom random;

    public Rng(long seed) {
        this.random = new SplittableRandom(seed);
    }

    /** n samples of N(0, 1). */
    public double[] normal(int n) {
        return normal(n, 0, 1);
    }

    /** n samples of N(mean, std²). */
    public double[] normal(int n, double mean, double std) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = mean + std * random.nextGaussian();
        }
        return x;
    }

    /** n samples uniform in [lo, hi). */
    public double[] uniform(int n, double lo, double hi) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = lo + (hi - lo) * random.nextDouble();
        }
        return x;
    }

    /** n samples of N(0, 1) rounded to float. */
    public float[] normalFloats(int n) {
        return toFloat(normal(n));
    }

    /** n samples of N(mean, std²) rounded to float. */
    public float[] normalFloats(int n, double mean, double std) {
        return toFloat(normal(n, mean, std));
    }

    /** n samples uniform in [lo, hi) rounded to float. */
    public float[] uniformFloats(int n, double lo, double hi) {
        return toFloat(uniform(n, lo, hi));
    }

    /** n integers uniform in [0, bound). */
    public int[] ints(int n, int bound) {
        int[] x = new int[n];
        for (int i = 0; i < n; i++) {
            x[i] = random.nextInt(bound);
        }
        return x;
    }

    /** One integer uniform in [0, bound). */
    public int nextInt(int bound) {
        return random.nextInt(bound);
    }

    /** One double uniform in [0, 1). */
    public double nextDouble() {
        return random.nextDouble();
    }

    /** The values widened to double, exactly. */
    public static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    /** The values rounded to the nearest float. */
    public static float[] toFloat(double[] x) {
        float[] f = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            f[i] = (float) x[i];
        }
        return f;
    }
}
