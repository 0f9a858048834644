package org.longexposure.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.function.IntConsumer;

/**
 * The CPU backend's worker threads: a ForkJoinPool owned by one backend instance (never the common pool) and
 * closed with it. {@link #parallelFor} splits an index range into at most {@code size()} contiguous chunks.
 */
public final class CpuThreads implements AutoCloseable {
    private final int size;
    private final ForkJoinPool pool;

    public CpuThreads(int size) {
        if (size < 1) {
            throw new IllegalArgumentException("thread count must be >= 1, got " + size);
        }
        this.size = size;
        this.pool = size == 1 ? null : new ForkJoinPool(size);
    }

    public int size() {
        return size;
    }

    /** Runs {@code body(i)} for i in [0, n), in parallel chunks; returns when all are done. */
    public void parallelFor(int n, IntConsumer body) {
        parallelChunks(n, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                body.accept(i);
            }
        });
    }

    /** Splits [0, n) into at most {@code size()} contiguous chunks and runs {@code body(lo, hi)} on each. */
    public void parallelChunks(int n, RangeBody body) {
        if (n <= 0) {
            return;
        }
        int chunks = Math.min(n, size);
        if (chunks == 1 || pool == null) {
            body.run(0, n);
            return;
        }
        List<ForkJoinTask<?>> tasks = new ArrayList<>(chunks);
        for (int c = 0; c < chunks; c++) {
            int lo = (int) ((long) n * c / chunks);
            int hi = (int) ((long) n * (c + 1) / chunks);
            tasks.add(pool.submit(() -> body.run(lo, hi)));
        }
        for (ForkJoinTask<?> t : tasks) {
            t.join();
        }
    }

    /** Runs {@code body(task)} for task in [0, tasks), letting idle threads steal tasks (uneven work). */
    public void parallelTasks(int tasks, IntConsumer body) {
        if (tasks <= 0) {
            return;
        }
        if (pool == null || tasks == 1) {
            for (int t = 0; t < tasks; t++) {
                body.accept(t);
            }
            return;
        }
        List<ForkJoinTask<?>> list = new ArrayList<>(tasks);
        for (int t = 0; t < tasks; t++) {
            int task = t;
            list.add(pool.submit(() -> body.accept(task)));
        }
        for (ForkJoinTask<?> f : list) {
            f.join();
        }
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }

    /** A body over an index range [lo, hi). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int lo, int hi);
    }
}
