package org.longexposure.cuda.backend;

import org.longexposure.cuda.DeviceArena;
import org.longexposure.cuda.DeviceStorage;

/**
 * A grow-only device work buffer of one op class (reduction partials, per-row losses, one-double results), owned
 * by the backend's arena. Growing releases the old range (the arena waits for the stream first, so queued work
 * that still reads it completes) and allocates a larger one; contents are not preserved.
 */
final class DeviceScratch {
    private final DeviceArena arena;
    private DeviceStorage storage;

    DeviceScratch(DeviceArena arena) {
        this.arena = arena;
    }

    /** The address of at least {@code bytes} bytes (256-byte aligned), valid until the next call. */
    long address(long bytes) {
        if (storage == null || storage.byteSize() < bytes) {
            if (storage != null) {
                arena.release(storage);
            }
            long size = Math.max(bytes, storage == null ? 4096 : storage.byteSize() * 2);
            storage = arena.allocateBytes(size);
        }
        return storage.address();
    }
}
