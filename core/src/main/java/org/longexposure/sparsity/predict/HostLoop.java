package org.longexposure.sparsity.predict;

import java.util.function.IntConsumer;

/**
 * How a predictor computation runs its independent host items (heads, row chunks): {@code run(n, body)} calls
 * {@code body(i)} for every i in [0, n) and returns when all are done, e.g. {@code Backend::hostParallelFor}. Each
 * item writes only its own outputs, so results do not depend on the loop.
 */
@FunctionalInterface
interface HostLoop {
    void run(int n, IntConsumer body);

    /** In order on the calling thread. */
    HostLoop SEQUENTIAL = (n, body) -> {
        for (int i = 0; i < n; i++) {
            body.accept(i);
        }
    };
}
