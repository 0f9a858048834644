package org.longexposure.tensor;

import java.lang.foreign.MemorySegment;

/** Host memory: an off-heap segment (allocated in an arena, or a memory-mapped file region). */
public record HostStorage(MemorySegment segment) implements Storage {
    @Override
    public long byteSize() {
        return segment.byteSize();
    }
}
