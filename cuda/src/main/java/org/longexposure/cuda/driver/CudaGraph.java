package org.longexposure.cuda.driver;

import java.lang.foreign.MemorySegment;

/**
 * A captured and instantiated CUDA graph ({@link CudaStream#capture}): the kernels, copies and memsets one piece of
 * host code queued, replayed by {@link CudaStream#launch(CudaGraph)} with one call and the same arguments (device
 * addresses, grid sizes, scalars) as when it was captured.
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaDriver driver;
    private final MemorySegment graph;
    private final MemorySegment exec;
    private boolean closed;

    CudaGraph(CudaDriver driver, MemorySegment graph, MemorySegment exec) {
        this.driver = driver;
        this.graph = graph;
        this.exec = exec;
    }

    MemorySegment exec() {
        if (closed) {
            throw new IllegalStateException("graph is closed");
        }
        return exec;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            driver.graphExecDestroy(exec);
            driver.graphDestroy(graph);
        }
    }
}
