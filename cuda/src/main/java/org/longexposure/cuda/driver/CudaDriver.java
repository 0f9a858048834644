package org.longexposure.cuda.driver;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;
import org.longexposure.cuda.CudaException;
import org.longexposure.cuda.NativeCalls;
import org.longexposure.cuda.NativeLibraries;

/**
 * Raw FFM bindings of the CUDA driver API in libcuda.so.1 (CUDA 13 ABI: the {@code _v2} symbols that cuda.h's
 * macros select, e.g. cuMemAlloc_v2, cuEventElapsedTime_v2, cuStreamDestroy_v2). One method handle per function;
 * every call goes through {@link #call}, which turns a non-zero CUresult into a {@link CudaException} naming the
 * function, its notable arguments, and the driver's error name and text.
 *
 * <p>Handles (CUcontext, CUstream, CUevent, CUmodule, CUfunction) are opaque pointers ({@link MemorySegment});
 * device addresses (CUdeviceptr) are {@code long}. The wrappers in this package are the API the rest of the
 * module uses.
 */
public final class CudaDriver {
    public static final String SONAME = "libcuda.so.1";

    static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    static final int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    static final int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    private final MethodHandle cuInit;
    private final MethodHandle cuDriverGetVersion;
    private final MethodHandle cuDeviceGet;
    private final MethodHandle cuDeviceGetCount;
    private final MethodHandle cuDeviceGetName;
    private final MethodHandle cuDeviceGetAttribute;
    private final MethodHandle cuDeviceTotalMem;
    private final MethodHandle cuDevicePrimaryCtxRetain;
    private final MethodHandle cuDevicePrimaryCtxRelease;
    private final MethodHandle cuCtxSetCurrent;
    private final MethodHandle cuCtxSynchronize;
    private final MethodHandle cuMemAlloc;
    private final MethodHandle cuMemFree;
    private final MethodHandle cuMemGetInfo;
    private final MethodHandle cuMemHostAlloc;
    private final MethodHandle cuMemFreeHost;
    private final MethodHandle cuMemcpyHtoDAsync;
    private final MethodHandle cuMemcpyDtoHAsync;
    private final MethodHandle cuMemcpyDtoDAsync;
    private final MethodHandle cuMemsetD8Async;
    private final MethodHandle cuMemsetD32Async;
    private final MethodHandle cuStreamCreate;
    private final MethodHandle cuStreamSynchronize;
    private final MethodHandle cuStreamDestroy;
    private final MethodHandle cuEventCreate;
    private final MethodHandle cuEventRecord;
    private final MethodHandle cuEventSynchronize;
    private final MethodHandle cuEventElapsedTime;
    private final MethodHandle cuEventDestroy;
    private final MethodHandle cuStreamWaitEvent;
    private final MethodHandle cuStreamBeginCapture;
    private final MethodHandle cuStreamEndCapture;
    private final MethodHandle cuGraphInstantiateWithFlags;
    private final MethodHandle cuGraphLaunch;
    private final MethodHandle cuGraphExecDestroy;
    private final MethodHandle cuGraphDestroy;
    private final MethodHandle cuModuleLoadData;
    private final MethodHandle cuModuleGetFunction;
    private final MethodHandle cuModuleUnload;
    private final MethodHandle cuFuncSetAttribute;
    private final MethodHandle cuLaunchKernel;
    private final MethodHandle cuGetErrorName;
    private final MethodHandle cuGetErrorString;

    /** Binds every function from {@code lib}; a missing symbol fails here, not at first use. */
    public CudaDriver(SymbolLookup lib) {
        cuInit = bind(lib, "cuInit", JAVA_INT);
        cuDriverGetVersion = bind(lib, "cuDriverGetVersion", ADDRESS);
        cuDeviceGet = bind(lib, "cuDeviceGet", ADDRESS, JAVA_INT);
        cuDeviceGetCount = bind(lib, "cuDeviceGetCount", ADDRESS);
        cuDeviceGetName = bind(lib, "cuDeviceGetName", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceGetAttribute = bind(lib, "cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceTotalMem = bind(lib, "cuDeviceTotalMem_v2", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRetain = bind(lib, "cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRelease = bind(lib, "cuDevicePrimaryCtxRelease_v2", JAVA_INT);
        cuCtxSetCurrent = bind(lib, "cuCtxSetCurrent", ADDRESS);
        cuCtxSynchronize = bind(lib, "cuCtxSynchronize");
        cuMemAlloc = bind(lib, "cuMemAlloc_v2", ADDRESS, JAVA_LONG);
        cuMemFree = bind(lib, "cuMemFree_v2", JAVA_LONG);
        cuMemGetInfo = bind(lib, "cuMemGetInfo_v2", ADDRESS, ADDRESS);
        cuMemHostAlloc = bind(lib, "cuMemHostAlloc", ADDRESS, JAVA_LONG, JAVA_INT);
        cuMemFreeHost = bind(lib, "cuMemFreeHost", ADDRESS);
        cuMemcpyHtoDAsync = bind(lib, "cuMemcpyHtoDAsync_v2", JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS);
        cuMemcpyDtoHAsync = bind(lib, "cuMemcpyDtoHAsync_v2", ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemcpyDtoDAsync = bind(lib, "cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemsetD8Async = bind(lib, "cuMemsetD8Async", JAVA_LONG, JAVA_BYTE, JAVA_LONG, ADDRESS);
        cuMemsetD32Async = bind(lib, "cuMemsetD32Async", JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS);
        cuStreamCreate = bind(lib, "cuStreamCreate", ADDRESS, JAVA_INT);
        cuStreamSynchronize = bind(lib, "cuStreamSynchronize", ADDRESS);
        cuStreamDestroy = bind(lib, "cuStreamDestroy_v2", ADDRESS);
        cuEventCreate = bind(lib, "cuEventCreate", ADDRESS, JAVA_INT);
        cuEventRecord = bind(lib, "cuEventRecord", ADDRESS, ADDRESS);
        cuEventSynchronize = bind(lib, "cuEventSynchronize", ADDRESS);
        cuEventElapsedTime = bind(lib, "cuEventElapsedTime_v2", ADDRESS, ADDRESS, ADDRESS);
        cuEventDestroy = bind(lib, "cuEventDestroy_v2", ADDRESS);
        cuStreamWaitEvent = bind(lib, "cuStreamWaitEvent", ADDRESS, ADDRESS, JAVA_INT);
        cuStreamBeginCapture = bind(lib, "cuStreamBeginCapture_v2", ADDRESS, JAVA_INT);
        cuStreamEndCapture = bind(lib, "cuStreamEndCapture", ADDRESS, ADDRESS);
        cuGraphInstantiateWithFlags = bind(lib, "cuGraphInstantiateWithFlags", ADDRESS, ADDRESS, JAVA_LONG);
        cuGraphLaunch = bind(lib, "cuGraphLaunch", ADDRESS, ADDRESS);
        cuGraphExecDestroy = bind(lib, "cuGraphExecDestroy", ADDRESS);
        cuGraphDestroy = bind(lib, "cuGraphDestroy", ADDRESS);
        cuModuleLoadData = bind(lib, "cuModuleLoadData", ADDRESS, ADDRESS);
        cuModuleGetFunction = bind(lib, "cuModuleGetFunction", ADDRESS, ADDRESS, ADDRESS);
        cuModuleUnload = bind(lib, "cuModuleUnload", ADDRESS);
        cuFuncSetAttribute = bind(lib, "cuFuncSetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuLaunchKernel = bind(lib, "cuLaunchKernel", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        cuGetErrorName = bind(lib, "cuGetErrorName", JAVA_INT, ADDRESS);
        cuGetErrorString = bind(lib, "cuGetErrorString", JAVA_INT, ADDRESS);
    }

    /** Loads libcuda.so.1 (loader path, then {@code libDirs}) and binds it. */
    public static CudaDriver load(List<Path> libDirs) {
        return new CudaDriver(NativeLibraries.find(SONAME, libDirs));
    }

    // --- initialisation and devices

    public void init() {
        call("cuInit", () -> "0", () -> (int) cuInit.invokeExact(0));
    }

    /** The driver's CUDA version as 1000·major + 10·minor (13000 for 13.0). */
    public int driverVersion() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            call("cuDriverGetVersion", () -> "", () -> (int) cuDriverGetVersion.invokeExact(v));
            return v.get(JAVA_INT, 0);
        }
    }

    public int deviceCount() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            call("cuDeviceGetCount", () -> "", () -> (int) cuDeviceGetCount.invokeExact(v));
            return v.get(JAVA_INT, 0);
        }
    }

    /** The CUdevice handle of device {@code ordinal}. */
    public int device(int ordinal) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            call("cuDeviceGet", () -> "ordinal " + ordinal, () -> (int) cuDeviceGet.invokeExact(v, ordinal));
            return v.get(JAVA_INT, 0);
        }
    }

    public String deviceName(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(256);
            call("cuDeviceGetName", () -> "device " + device,
                    () -> (int) cuDeviceGetName.invokeExact(buf, 256, device));
            return buf.getString(0);
        }
    }

    public int deviceAttribute(int device, int attribute) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            call("cuDeviceGetAttribute", () -> "attribute " + attribute + ", device " + device,
                    () -> (int) cuDeviceGetAttribute.invokeExact(v, attribute, device));
            return v.get(JAVA_INT, 0);
        }
    }

    public long deviceTotalMem(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            call("cuDeviceTotalMem_v2", () -> "device " + device,
                    () -> (int) cuDeviceTotalMem.invokeExact(v, device));
            return v.get(JAVA_LONG, 0);
        }
    }

    // --- contexts

    public MemorySegment primaryCtxRetain(int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuDevicePrimaryCtxRetain", () -> "device " + device,
                    () -> (int) cuDevicePrimaryCtxRetain.invokeExact(v, device));
            return v.get(ADDRESS, 0);
        }
    }

    public void primaryCtxRelease(int device) {
        call("cuDevicePrimaryCtxRelease_v2", () -> "device " + device,
                () -> (int) cuDevicePrimaryCtxRelease.invokeExact(device));
    }

    public void ctxSetCurrent(MemorySegment ctx) {
        call("cuCtxSetCurrent", () -> "", () -> (int) cuCtxSetCurrent.invokeExact(ctx));
    }

    public void ctxSynchronize() {
        call("cuCtxSynchronize", () -> "", () -> (int) cuCtxSynchronize.invokeExact());
    }

    // --- memory

    public long memAlloc(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            call("cuMemAlloc_v2", () -> bytes + " bytes", () -> (int) cuMemAlloc.invokeExact(v, bytes));
            return v.get(JAVA_LONG, 0);
        }
    }

    public void memFree(long address) {
        call("cuMemFree_v2", () -> hex(address), () -> (int) cuMemFree.invokeExact(address));
    }

    /** {free, total} bytes of the current context's device. */
    public long[] memGetInfo() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment free = a.allocate(JAVA_LONG);
            MemorySegment total = a.allocate(JAVA_LONG);
            call("cuMemGetInfo_v2", () -> "", () -> (int) cuMemGetInfo.invokeExact(free, total));
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        }
    }

    /** Page-locked host memory of {@code bytes} (flags 0: usable by the current context). */
    public MemorySegment memHostAlloc(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuMemHostAlloc", () -> bytes + " bytes", () -> (int) cuMemHostAlloc.invokeExact(v, bytes, 0));
            return v.get(ADDRESS, 0).reinterpret(bytes);
        }
    }

    public void memFreeHost(MemorySegment p) {
        call("cuMemFreeHost", () -> hex(p.address()), () -> (int) cuMemFreeHost.invokeExact(p));
    }

    public void memcpyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        call("cuMemcpyHtoDAsync_v2", () -> "dst " + hex(dst) + ", " + bytes + " bytes",
                () -> (int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream));
    }

    public void memcpyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        call("cuMemcpyDtoHAsync_v2", () -> "src " + hex(src) + ", " + bytes + " bytes",
                () -> (int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream));
    }

    public void memcpyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
        call("cuMemcpyDtoDAsync_v2", () -> "dst " + hex(dst) + ", src " + hex(src) + ", " + bytes + " bytes",
                () -> (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream));
    }

    public void memsetD8Async(long dst, byte value, long count, MemorySegment stream) {
        call("cuMemsetD8Async", () -> "dst " + hex(dst) + ", value " + (value & 0xFF) + ", " + count + " bytes",
                () -> (int) cuMemsetD8Async.invokeExact(dst, value, count, stream));
    }

    public void memsetD32Async(long dst, int value, long count, MemorySegment stream) {
        call("cuMemsetD32Async", () -> "dst " + hex(dst) + ", value " + hex(value) + ", " + count + " words",
                () -> (int) cuMemsetD32Async.invokeExact(dst, value, count, stream));
    }

    // --- streams and events

    public MemorySegment streamCreate(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuStreamCreate", () -> "flags " + flags, () -> (int) cuStreamCreate.invokeExact(v, flags));
            return v.get(ADDRESS, 0);
        }
    }

    public void streamSynchronize(MemorySegment stream) {
        call("cuStreamSynchronize", () -> "", () -> (int) cuStreamSynchronize.invokeExact(stream));
    }

    public void streamDestroy(MemorySegment stream) {
        call("cuStreamDestroy_v2", () -> "", () -> (int) cuStreamDestroy.invokeExact(stream));
    }

    public MemorySegment eventCreate(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuEventCreate", () -> "flags " + flags, () -> (int) cuEventCreate.invokeExact(v, flags));
            return v.get(ADDRESS, 0);
        }
    }

    public void eventRecord(MemorySegment event, MemorySegment stream) {
        call("cuEventRecord", () -> "", () -> (int) cuEventRecord.invokeExact(event, stream));
    }

    /** Work queued on {@code stream} after this call waits for the work before {@code event}'s last record. */
    public void streamWaitEvent(MemorySegment stream, MemorySegment event) {
        call("cuStreamWaitEvent", () -> "", () -> (int) cuStreamWaitEvent.invokeExact(stream, event, 0));
    }

    public void eventSynchronize(MemorySegment event) {
        call("cuEventSynchronize", () -> "", () -> (int) cuEventSynchronize.invokeExact(event));
    }

    /** Milliseconds between two recorded events (about 0.5 µs resolution). */
    public float eventElapsedTime(MemorySegment start, MemorySegment end) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_FLOAT);
            call("cuEventElapsedTime_v2", () -> "", () -> (int) cuEventElapsedTime.invokeExact(v, start, end));
            return v.get(JAVA_FLOAT, 0);
        }
    }

    public void eventDestroy(MemorySegment event) {
        call("cuEventDestroy_v2", () -> "", () -> (int) cuEventDestroy.invokeExact(event));
    }

    // --- stream capture and graphs

    /** CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: this thread's unsafe calls (a synchronisation) fail the capture. */
    public static final int CAPTURE_MODE_THREAD_LOCAL = 1;

    public void streamBeginCapture(MemorySegment stream, int mode) {
        call("cuStreamBeginCapture_v2", () -> "mode " + mode,
                () -> (int) cuStreamBeginCapture.invokeExact(stream, mode));
    }

    /** Ends the capture and returns the CUgraph holding the captured work. */
    public MemorySegment streamEndCapture(MemorySegment stream) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuStreamEndCapture", () -> "", () -> (int) cuStreamEndCapture.invokeExact(stream, v));
            return v.get(ADDRESS, 0);
        }
    }

    public MemorySegment graphInstantiate(MemorySegment graph) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuGraphInstantiateWithFlags", () -> "",
                    () -> (int) cuGraphInstantiateWithFlags.invokeExact(v, graph, 0L));
            return v.get(ADDRESS, 0);
        }
    }

    public void graphLaunch(MemorySegment exec, MemorySegment stream) {
        call("cuGraphLaunch", () -> "", () -> (int) cuGraphLaunch.invokeExact(exec, stream));
    }

    public void graphExecDestroy(MemorySegment exec) {
        call("cuGraphExecDestroy", () -> "", () -> (int) cuGraphExecDestroy.invokeExact(exec));
    }

    public void graphDestroy(MemorySegment graph) {
        call("cuGraphDestroy", () -> "", () -> (int) cuGraphDestroy.invokeExact(graph));
    }

    // --- modules and launches

    /** Loads a cubin (or PTX) image; {@code name} only labels errors. */
    public MemorySegment moduleLoadData(MemorySegment image, String name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            call("cuModuleLoadData", () -> name + ", " + image.byteSize() + " bytes",
                    () -> (int) cuModuleLoadData.invokeExact(v, image));
            return v.get(ADDRESS, 0);
        }
    }

    public MemorySegment moduleGetFunction(MemorySegment module, String symbol) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            MemorySegment cname = a.allocateFrom(symbol);
            call("cuModuleGetFunction", () -> symbol, () -> (int) cuModuleGetFunction.invokeExact(v, module, cname));
            return v.get(ADDRESS, 0);
        }
    }

    public void moduleUnload(MemorySegment module) {
        call("cuModuleUnload", () -> "", () -> (int) cuModuleUnload.invokeExact(module));
    }

    public void funcSetAttribute(MemorySegment function, int attribute, int value, String name) {
        call("cuFuncSetAttribute", () -> name + ", attribute " + attribute + ", value " + value,
                () -> (int) cuFuncSetAttribute.invokeExact(function, attribute, value));
    }

    /**
     * cuLaunchKernel with a {@code void**} parameter array; {@code describe} supplies the launch's text
     * (kernel name, grid, block, arguments) for the error message only.
     */
    public void launchKernel(MemorySegment function, int gx, int gy, int gz, int bx, int by, int bz,
                             int sharedBytes, MemorySegment stream, MemorySegment params, Supplier<String> describe) {
        call("cuLaunchKernel", describe, () -> (int) cuLaunchKernel.invokeExact(function, gx, gy, gz, bx, by, bz,
                sharedBytes, stream, params, MemorySegment.NULL));
    }

    // --- errors

    /** "CUDA_ERROR_X (text)" for a CUresult, or the bare number when the driver does not know it. */
    public String describe(int result) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            String name = "CUresult " + result;
            String text = "unknown error";
            if ((int) cuGetErrorName.invokeExact(result, p) == 0) {
                name = NativeCalls.cString(p.get(ADDRESS, 0));
            }
            if ((int) cuGetErrorString.invokeExact(result, p) == 0) {
                text = NativeCalls.cString(p.get(ADDRESS, 0));
            }
            return name + " (" + text + ")";
        } catch (Throwable t) {
            return "CUresult " + result;
        }
    }

    /** Runs {@code c}; a non-zero CUresult becomes "function(args): CUDA_ERROR_X (text)". */
    private void call(String function, Supplier<String> args, NativeCalls.StatusCall c) {
        NativeCalls.check(function, args, c, this::describe);
    }

    private static MethodHandle bind(SymbolLookup lib, String name, MemoryLayout... args) {
        return NativeCalls.bind(lib, SONAME + ": the driver is older than CUDA 13", name, JAVA_INT, args);
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
