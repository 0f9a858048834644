package org.longexposure.cuda;

import java.lang.foreign.MemorySegment;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaEvent;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.PinnedBuffer;

/**
 * Host↔device copies through two page-locked buffers of {@code chunkBytes}, used alternately: while the DMA
 * engine moves one chunk, the host fills (or drains) the other. Each buffer has an event recorded after its last
 * copy; a buffer is reused only once its event has completed. Uploads therefore return without waiting for the
 * copy (the caller's memory is no longer referenced); downloads return with the data in place. Buffers are
 * allocated on first use.
 */
public final class PinnedStaging implements AutoCloseable {
    /** Fills {@code chunk} with the bytes {@code [byteOffset, byteOffset + chunk.byteSize())} of an upload. */
    @FunctionalInterface
    public interface Filler {
        void fill(MemorySegment chunk, long byteOffset);
    }

    private final CudaContext ctx;
    private final CudaStream stream;
    private final long chunkBytes;
    private final PinnedBuffer[] buffers = new PinnedBuffer[2];
    private final CudaEvent[] done = new CudaEvent[2];
    private final boolean[] pending = new boolean[2];

    public PinnedStaging(CudaContext ctx, CudaStream stream, long chunkBytes) {
        this.ctx = ctx;
        this.stream = stream;
        this.chunkBytes = chunkBytes;
    }

    /** Copies {@code src} (any host segment, heap or native) to device address {@code dst}. */
    public void upload(long dst, MemorySegment src) {
        upload(dst, src.byteSize(), (chunk, off) -> MemorySegment.copy(src, off, chunk, 0, chunk.byteSize()));
    }

    /** Uploads {@code bytes} bytes produced chunk by chunk by {@code filler} (e.g. converting while copying). */
    public void upload(long dst, long bytes, Filler filler) {
        long off = 0;
        int i = 0;
        while (off < bytes) {
            long n = Math.min(chunkBytes, bytes - off);
            int slot = i & 1;
            MemorySegment buf = buffer(slot).segment().asSlice(0, n);
            awaitSlot(slot);
            filler.fill(buf, off);
            stream.copyHostToDevice(dst + off, buf);
            done[slot].record(stream);
            pending[slot] = true;
            off += n;
            i++;
        }
    }

    /** Copies {@code dst.byteSize()} bytes from device address {@code src} into {@code dst}; returns when done. */
    public void download(MemorySegment dst, long src) {
        long bytes = dst.byteSize();
        long prevOff = -1;
        long prevLen = 0;
        int i = 0;
        for (long off = 0; off < bytes; off += chunkBytes, i++) {
            long n = Math.min(chunkBytes, bytes - off);
            int slot = i & 1;
            awaitSlot(slot);
            stream.copyDeviceToHost(buffer(slot).segment().asSlice(0, n), src + off);
            done[slot].record(stream);
            pending[slot] = true;
            if (prevOff >= 0) {
                drain(1 - slot, dst, prevOff, prevLen);
            }
            prevOff = off;
            prevLen = n;
        }
        if (prevOff >= 0) {
            drain((i - 1) & 1, dst, prevOff, prevLen);
        }
    }

    private void drain(int slot, MemorySegment dst, long off, long len) {
        awaitSlot(slot);
        MemorySegment.copy(buffers[slot].segment(), 0, dst, off, len);
    }

    private void awaitSlot(int slot) {
        if (pending[slot]) {
            done[slot].sync();
            pending[slot] = false;
        }
    }

    private PinnedBuffer buffer(int slot) {
        if (buffers[slot] == null) {
            buffers[slot] = ctx.allocatePinned(chunkBytes);
            done[slot] = ctx.createEvent();
        }
        return buffers[slot];
    }

    @Override
    public void close() {
        for (int s = 0; s < 2; s++) {
            if (buffers[s] != null) {
                awaitSlot(s);
                done[s].close();
                buffers[s].close();
                buffers[s] = null;
            }
        }
    }
}
