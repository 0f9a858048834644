package org.longexposure.backend.cpu;

/**
 * Splits a flat range of elements into fixed blocks of {@link #BLOCK} elements and runs them on the threads
 * (inline when the range is small). The block boundaries depend only on the length, never on the thread count,
 * so a vector loop with a scalar tail inside each block computes every element the same way on any number of
 * threads.
 */
final class CpuPointwise {
    /** Elements per block: a multiple of every vector length, large enough to amortise a task. */
    static final int BLOCK = 1 << 14;
    /** Below this many elements the range runs on the calling thread. */
    static final long PARALLEL_MIN = 1 << 16;

    private CpuPointwise() {
    }

    /** A body over the element range [lo, hi). */
    @FunctionalInterface
    interface Range {
        void run(long lo, long hi);
    }

    static void run(CpuThreads threads, long n, Range body) {
        if (n <= 0) {
            return;
        }
        long blocks = (n + BLOCK - 1) / BLOCK;
        if (n < PARALLEL_MIN || threads.size() == 1 || blocks > Integer.MAX_VALUE) {
            for (long b = 0; b < blocks; b++) {
                body.run(b * BLOCK, Math.min(n, (b + 1) * BLOCK));
            }
            return;
        }
        threads.parallelFor((int) blocks, b -> body.run((long) b * BLOCK, Math.min(n, ((long) b + 1) * BLOCK)));
    }
}
