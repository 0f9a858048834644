package org.longexposure.cuda.driver;

import java.lang.foreign.MemorySegment;

/** A CUDA event: a marker recorded on a stream, for waiting and for GPU-side timing. */
public final class CudaEvent implements AutoCloseable {
    private final CudaDriver driver;
    private final MemorySegment handle;
    private boolean closed;

    CudaEvent(CudaDriver driver, MemorySegment handle) {
        this.driver = driver;
        this.handle = handle;
    }

    MemorySegment handle() {
        return handle;
    }

    /** Records this event on {@code stream}. */
    public void record(CudaStream stream) {
        stream.record(this);
    }

    /** Blocks until the work before the last record has finished. */
    public void sync() {
        driver.eventSynchronize(handle);
    }

    /** GPU time in milliseconds from {@code start}'s record to this event's record (both must have completed). */
    public float elapsedMillisSince(CudaEvent start) {
        return driver.eventElapsedTime(start.handle, handle);
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            driver.eventDestroy(handle);
        }
    }
}
