package org.longexposure.cuda.driver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A CUDA stream: work queued here runs in order. Copies and memsets are asynchronous; a host segment passed to a
 * copy must stay alive (and, for device-to-host, unread) until {@link #sync()}.
 */
public final class CudaStream implements AutoCloseable {
    private final CudaDriver driver;
    private final MemorySegment handle;
    private long launches;
    private boolean closed;

    CudaStream(CudaDriver driver, MemorySegment handle) {
        this.driver = driver;
        this.handle = handle;
    }

    /** The CUstream handle (for libraries such as cuBLASLt that take the stream). */
    public MemorySegment handle() {
        return handle;
    }

    /**
     * Launches {@code f} on grid (gx, gy, gz) of blocks (bx, by, bz) with {@code sharedBytes} dynamic shared
     * memory. The argument array is built in a confined arena that lives through the call: the driver copies the
     * argument values when the launch is queued.
     */
    public void launch(CudaFunction f, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes,
                       KernelArgs args) {
        launches++;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = args.marshal(a);
            driver.launchKernel(f.handle(), gx, gy, gz, bx, by, bz, sharedBytes, handle, params,
                    () -> f.name() + "<<<(" + gx + "," + gy + "," + gz + "), (" + bx + "," + by + "," + bz + "), "
                            + sharedBytes + ">>>" + args);
        }
    }

    /** Kernels launched through {@link #launch} on this stream so far (library kernels not included). */
    public long launchCount() {
        return launches;
    }

    /** Host → device, {@code src.byteSize()} bytes; {@code src} must be a native segment. */
    public void copyHostToDevice(long dstAddr, MemorySegment src) {
        requireNative(src, "copyHostToDevice source");
        driver.memcpyHtoDAsync(dstAddr, src, src.byteSize(), handle);
    }

    /** Device → host, {@code dst.byteSize()} bytes; call {@link #sync()} before reading {@code dst}. */
    public void copyDeviceToHost(MemorySegment dst, long srcAddr) {
        requireNative(dst, "copyDeviceToHost destination");
        driver.memcpyDtoHAsync(dst, srcAddr, dst.byteSize(), handle);
    }

    public void copyDeviceToDevice(long dst, long src, long bytes) {
        if (bytes > 0) {
            driver.memcpyDtoDAsync(dst, src, bytes, handle);
        }
    }

    public void memsetD8(long dst, byte value, long bytes) {
        if (bytes > 0) {
            driver.memsetD8Async(dst, value, bytes, handle);
        }
    }

    /** Sets {@code words} 32-bit words at {@code dst} (4-byte aligned) to {@code value}. */
    public void memsetD32(long dst, int value, long words) {
        if (words > 0) {
            driver.memsetD32Async(dst, value, words, handle);
        }
    }

    /**
     * Records what {@code work} queues on this stream into a graph instead of running it, and returns the graph
     * ready to launch (nothing has run yet). The capture is thread-local: a synchronising call made by
     * {@code work} fails it (with the driver's error), as does any other stream operation that cannot be captured;
     * the stream is left out of capture mode either way.
     */
    public CudaGraph capture(Runnable work) {
        driver.streamBeginCapture(handle, CudaDriver.CAPTURE_MODE_THREAD_LOCAL);
        try {
            work.run();
        } catch (RuntimeException | Error e) {
            try {
                driver.graphDestroy(driver.streamEndCapture(handle));
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        MemorySegment graph = driver.streamEndCapture(handle);
        try {
            return new CudaGraph(driver, graph, driver.graphInstantiate(graph));
        } catch (RuntimeException e) {
            driver.graphDestroy(graph);
            throw e;
        }
    }

    /** Queues {@code graph}'s work on this stream. */
    public void launch(CudaGraph graph) {
        driver.graphLaunch(graph.exec(), handle);
    }

    /** Work queued on this stream from now on waits for the work before {@code event}'s last record. */
    public void waitFor(CudaEvent event) {
        driver.streamWaitEvent(handle, event.handle());
    }

    /** Records {@code event} at the current end of this stream. */
    public void record(CudaEvent event) {
        driver.eventRecord(event.handle(), handle);
    }

    /** Blocks until all work queued on this stream has finished; errors from that work surface here. */
    public void sync() {
        driver.streamSynchronize(handle);
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            driver.streamDestroy(handle);
        }
    }

    private static void requireNative(MemorySegment s, String what) {
        if (!s.isNative()) {
            throw new IllegalArgumentException(what + " must be native (off-heap) memory, got a heap segment");
        }
    }
}
