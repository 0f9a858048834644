package org.longexposure.cuda;

import org.longexposure.tensor.Storage;
import org.longexposure.tensor.Tensor;

/**
 * Device memory: a CUdeviceptr and the number of bytes behind it. Owned by a {@link DeviceArena}; the record only
 * describes the range.
 */
public record DeviceStorage(long address, long byteSize) implements Storage {
    /** The device address of {@code t}'s first element; fails for tensors that do not live on the device. */
    public static long addressOf(Tensor t) {
        if (!(t.storage() instanceof DeviceStorage ds)) {
            throw new IllegalArgumentException("tensor " + t + " is not in device memory (storage "
                    + t.storage().getClass().getSimpleName() + ")");
        }
        return ds.address + t.byteOffset();
    }
}
