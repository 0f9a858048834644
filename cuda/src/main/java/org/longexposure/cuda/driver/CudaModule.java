package org.longexposure.cuda.driver;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

/** A loaded cubin (cuModuleLoadData); its kernels are looked up by their {@code extern "C"} names. */
public final class CudaModule implements AutoCloseable {
    private final CudaDriver driver;
    private final MemorySegment handle;
    private final String name;
    private final Map<String, CudaFunction> functions = new HashMap<>();
    private boolean closed;

    CudaModule(CudaDriver driver, MemorySegment handle, String name) {
        this.driver = driver;
        this.handle = handle;
        this.name = name;
    }

    /** The kernel {@code symbol}; looked up once, then cached. */
    public CudaFunction function(String symbol) {
        if (closed) {
            throw new IllegalStateException("module " + name + " is unloaded");
        }
        return functions.computeIfAbsent(symbol,
                s -> new CudaFunction(driver, driver.moduleGetFunction(handle, s), name + ":" + s));
    }

    public String name() {
        return name;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            functions.clear();
            driver.moduleUnload(handle);
        }
    }
}
