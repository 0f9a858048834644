package org.longexposure.cuda.driver;

import java.lang.foreign.MemorySegment;

/**
 * Page-locked host memory (cuMemHostAlloc): the staging buffer for host↔device copies, which then run as true
 * asynchronous DMA at full bus speed instead of through the driver's pageable bounce buffer.
 */
public final class PinnedBuffer implements AutoCloseable {
    private final CudaDriver driver;
    private final MemorySegment segment;
    private boolean closed;

    PinnedBuffer(CudaDriver driver, MemorySegment segment) {
        this.driver = driver;
        this.segment = segment;
    }

    /** The buffer's bytes; invalid after {@link #close()}. */
    public MemorySegment segment() {
        return segment;
    }

    public long byteSize() {
        return segment.byteSize();
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            driver.memFreeHost(segment);
        }
    }
}
