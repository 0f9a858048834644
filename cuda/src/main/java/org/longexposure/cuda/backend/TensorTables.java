package org.longexposure.cuda.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.longexposure.cuda.DeviceStorage;

/**
 * Device copies of small tables of 64-bit words (tensor addresses and element counts) that the multi-tensor
 * kernels read, one per distinct content: a trainer passes the same parameter lists every step, so each table is
 * uploaded once and reused. At most {@link #MAX_TABLES} are kept (least recently used released first; the arena
 * waits for queued work before it frees one).
 */
final class TensorTables {
    static final int MAX_TABLES = 64;

    private final CudaBackend backend;
    private final Map<Key, DeviceStorage> tables = new LinkedHashMap<>(16, 0.75f, true);

    TensorTables(CudaBackend backend) {
        this.backend = backend;
    }

    /** The device address of a table holding {@code words} (uploaded on first sight of this content). */
    long address(long[] words) {
        Key key = new Key(words);
        DeviceStorage t = tables.get(key);
        if (t == null) {
            if (tables.size() >= MAX_TABLES) {
                Map.Entry<Key, DeviceStorage> eldest = tables.entrySet().iterator().next();
                backend.arena().release(eldest.getValue());
                tables.remove(eldest.getKey());
            }
            t = backend.arena().allocateBytes(8L * Math.max(1, words.length));
            try (Arena a = Arena.ofConfined()) {
                MemorySegment host = a.allocate(8L * words.length, 8);
                MemorySegment.copy(words, 0, host, ValueLayout.JAVA_LONG, 0, words.length);
                backend.upload(t.address(), host);
            }
            tables.put(key, t);
        }
        return t.address();
    }

    private record Key(long[] words) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && Arrays.equals(words, k.words);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(words);
        }
    }
}
