package org.longexposure.backend.cpu;

/**
 * Running totals of the matrix products one {@link CpuLinear} issued: calls, floating-point operations (2·M·N·K
 * each) and wall time inside the products. Owned by one backend and updated by the (single) calling thread, so a
 * benchmark can report the GFLOP/s the products of a whole training step reached.
 */
public final class GemmCounters {
    private long calls;
    private double flops;
    private long nanos;

    void add(long m, long n, long k, long elapsedNanos) {
        calls++;
        flops += 2.0 * m * n * k;
        nanos += elapsedNanos;
    }

    public long calls() {
        return calls;
    }

    public double flops() {
        return flops;
    }

    public double seconds() {
        return nanos / 1e9;
    }

    /** Achieved GFLOP/s over all recorded products. */
    public double gflops() {
        return nanos == 0 ? 0 : flops / nanos;
    }

    public void reset() {
        calls = 0;
        flops = 0;
        nanos = 0;
    }
}
