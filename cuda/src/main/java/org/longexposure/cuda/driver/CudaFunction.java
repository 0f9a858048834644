package org.longexposure.cuda.driver;

import java.lang.foreign.MemorySegment;

/** A kernel in a loaded module; launched through {@link CudaStream#launch}. */
public final class CudaFunction {
    private final CudaDriver driver;
    private final MemorySegment handle;
    private final String name;

    CudaFunction(CudaDriver driver, MemorySegment handle, String name) {
        this.driver = driver;
        this.handle = handle;
        this.name = name;
    }

    /** Allows launches with up to {@code bytes} of dynamic shared memory (needed above 48 KiB). */
    public void setMaxDynamicSharedBytes(int bytes) {
        driver.funcSetAttribute(handle, CudaDriver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes, name);
    }

    MemorySegment handle() {
        return handle;
    }

    /** "module:symbol", for messages. */
    public String name() {
        return name;
    }
}
