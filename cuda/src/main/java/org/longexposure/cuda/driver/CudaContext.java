package org.longexposure.cuda.driver;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import org.longexposure.cuda.CudaException;

/**
 * One GPU and its primary context (cuDevicePrimaryCtxRetain + cuCtxSetCurrent: CUDA 13 replaced cuCtxCreate by a
 * parameter-struct variant, and the primary context is what the runtime and cuBLASLt share anyway). The context
 * is made current on the opening thread; another thread that drives the device calls {@link #makeCurrent()}
 * first. {@link #close()} releases the primary context; streams, events, modules and allocations made through
 * this object must be closed before.
 */
public final class CudaContext implements AutoCloseable {
    private final CudaDriver driver;
    private final List<Path> libDirs;
    private final int ordinal;
    private final int device;
    private final MemorySegment context;
    private final int computeCapability;
    private final int multiprocessorCount;
    private final int maxSharedPerBlockOptin;
    private final String name;
    private boolean closed;

    private CudaContext(CudaDriver driver, List<Path> libDirs, int ordinal) {
        this.driver = driver;
        this.libDirs = List.copyOf(libDirs);
        this.ordinal = ordinal;
        driver.init();
        int count = driver.deviceCount();
        if (ordinal < 0 || ordinal >= count) {
            throw new CudaException("CUDA device ordinal " + ordinal + " out of range: the driver sees " + count
                    + " device(s)");
        }
        this.device = driver.device(ordinal);
        this.context = driver.primaryCtxRetain(device);
        driver.ctxSetCurrent(context);
        this.computeCapability = 10 * driver.deviceAttribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + driver.deviceAttribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessorCount = driver.deviceAttribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.maxSharedPerBlockOptin = driver.deviceAttribute(device,
                CudaDriver.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        this.name = driver.deviceName(device);
    }

    /**
     * Loads libcuda.so.1 (loader search path, then {@code libDirs}), initialises the driver and makes device
     * {@code deviceOrdinal}'s primary context current on this thread.
     */
    public static CudaContext open(int deviceOrdinal, List<Path> libDirs) {
        return new CudaContext(CudaDriver.load(libDirs), libDirs, deviceOrdinal);
    }

    public CudaDriver driver() {
        return driver;
    }

    /** The folders searched for CUDA libraries after the loader path (NVRTC and cuBLASLt use them too). */
    public List<Path> libDirs() {
        return libDirs;
    }

    public int ordinal() {
        return ordinal;
    }

    /** 10·major + minor, e.g. 90 for Hopper. */
    public int computeCapability() {
        return computeCapability;
    }

    public int multiprocessorCount() {
        return multiprocessorCount;
    }

    /** Largest dynamic shared memory a block may opt into (cuFuncSetAttribute), in bytes. */
    public int maxSharedMemoryPerBlockOptin() {
        return maxSharedPerBlockOptin;
    }

    public String name() {
        return name;
    }

    public long totalMemory() {
        return driver.deviceTotalMem(device);
    }

    /** {free, total} bytes on the device now. */
    public long[] memInfo() {
        return driver.memGetInfo();
    }

    public int driverVersion() {
        return driver.driverVersion();
    }

    /** Makes this context current on the calling thread. */
    public void makeCurrent() {
        driver.ctxSetCurrent(context);
    }

    /** Waits for all work in the context (every stream). */
    public void synchronize() {
        driver.ctxSynchronize();
    }

    public CudaStream createStream() {
        return new CudaStream(driver, driver.streamCreate(0));
    }

    /** An event with timing enabled (for {@link CudaEvent#elapsedMillis}). */
    public CudaEvent createEvent() {
        return new CudaEvent(driver, driver.eventCreate(0));
    }

    /** An event for ordering streams only (CU_EVENT_DISABLE_TIMING: cheaper to record and wait on). */
    public CudaEvent createSyncEvent() {
        return new CudaEvent(driver, driver.eventCreate(2));
    }

    /** Loads a cubin image; {@code name} labels errors (e.g. "layernorm.sm_90a.cubin"). */
    public CudaModule loadModule(byte[] image, String name) {
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment img = arena.allocate(image.length + 1L, 16);
            MemorySegment.copy(MemorySegment.ofArray(image), 0, img, 0, image.length);
            return new CudaModule(driver, driver.moduleLoadData(img, name), name);
        }
    }

    /** Raw device allocation; {@link org.longexposure.cuda.DeviceArena} is the owner most code wants. */
    public long memAlloc(long bytes) {
        return driver.memAlloc(bytes);
    }

    public void memFree(long address) {
        driver.memFree(address);
    }

    /** Page-locked host memory for fast asynchronous copies; close it to free. */
    public PinnedBuffer allocatePinned(long bytes) {
        return new PinnedBuffer(driver, driver.memHostAlloc(bytes));
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            driver.primaryCtxRelease(device);
        }
    }

    @Override
    public String toString() {
        return "cuda:" + ordinal + " (" + name + ", sm_" + computeCapability + ")";
    }
}
