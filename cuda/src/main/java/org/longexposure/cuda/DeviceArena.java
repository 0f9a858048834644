package org.longexposure.cuda;

import java.util.ArrayList;
import java.util.List;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Tensor;

/**
 * Owns device allocations (cuMemAlloc_v2): every tensor or byte range it hands out lives until {@link #close()},
 * which waits for the stream and frees them newest first. New memory is zero-filled with cuMemsetD8Async on the
 * arena's stream, so work queued later on that stream sees zeros. Not thread-safe: one owner drives it.
 */
public final class DeviceArena implements AutoCloseable {
    private final CudaContext ctx;
    private final CudaStream stream;
    private final List<DeviceStorage> live = new ArrayList<>();
    private long liveBytes;
    private boolean closed;

    public DeviceArena(CudaContext ctx, CudaStream stream) {
        this.ctx = ctx;
        this.stream = stream;
    }

    /** A zero-filled device tensor, contiguous and row-major. */
    public Tensor allocate(DType dtype, long... dims) {
        Shape shape = Shape.of(dims);
        DeviceStorage s = allocateBytes(Math.multiplyExact(shape.numel(), (long) dtype.byteSize()));
        return new Tensor(dtype, shape, s, 0);
    }

    /** {@code bytes} zero-filled device bytes (256-byte aligned, as cuMemAlloc returns them). */
    public DeviceStorage allocateBytes(long bytes) {
        if (closed) {
            throw new IllegalStateException("device arena is closed");
        }
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation size " + bytes);
        }
        long address = ctx.memAlloc(Math.max(1, bytes));
        DeviceStorage s = new DeviceStorage(address, bytes);
        live.add(s);
        liveBytes += bytes;
        if (bytes > 0) {
            stream.memsetD8(address, (byte) 0, bytes);
        }
        return s;
    }

    /**
     * Frees one allocation before the arena closes (e.g. a scratch buffer being replaced by a larger one). Waits
     * for the stream first, so queued work that still reads it finishes.
     */
    public void release(DeviceStorage s) {
        int i = live.lastIndexOf(s);
        if (i < 0) {
            throw new IllegalArgumentException("device range " + s + " is not owned by this arena");
        }
        stream.sync();
        live.remove(i);
        liveBytes -= s.byteSize();
        ctx.memFree(s.address());
    }

    /** Bytes currently allocated through this arena. */
    public long liveBytes() {
        return liveBytes;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        stream.sync();
        for (int i = live.size() - 1; i >= 0; i--) {
            ctx.memFree(live.get(i).address());
        }
        live.clear();
        liveBytes = 0;
    }
}
