package org.longexposure.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.function.IntFunction;
import java.util.function.Supplier;

/**
 * The plumbing every FFM binding of a CUDA library (CudaDriver, Nvrtc, CublasLt) shares: a downcall handle per
 * exported C function, and the check of the int status each call returns (CUresult, nvrtcResult,
 * cublasStatus_t; 0 is success), which turns a failure into a {@link CudaException}
 * {@code function(args): NAME (text)} with the library's own description of the code.
 */
public final class NativeCalls {
    private static final Linker LINKER = Linker.nativeLinker();

    private NativeCalls() {
    }

    /** A native call returning a status code. */
    @FunctionalInterface
    public interface StatusCall {
        int invoke() throws Throwable;
    }

    /**
     * Runs {@code call}; a non-zero status becomes {@code function(args): describe(status)}, a checked exception
     * thrown by the downcall {@code function(args): exception}. {@code args} is evaluated only on failure.
     */
    public static void check(String function, Supplier<String> args, StatusCall call, IntFunction<String> describe) {
        int status;
        try {
            status = call.invoke();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException(function + "(" + args.get() + "): " + t, t);
        }
        if (status != 0) {
            throw new CudaException(function + "(" + args.get() + "): " + describe.apply(status), status);
        }
    }

    /**
     * The downcall handle of C function {@code name} in {@code lib}; a missing symbol is a {@link CudaException}
     * "symbol NAME not found in {@code where}" ({@code where}: the library, and why the symbol could be missing).
     */
    public static MethodHandle bind(SymbolLookup lib, String where, String name, MemoryLayout result,
                                    MemoryLayout... args) {
        MemorySegment symbol = lib.find(name).orElseThrow(
                () -> new CudaException("symbol " + name + " not found in " + where));
        return LINKER.downcallHandle(symbol, FunctionDescriptor.of(result, args));
    }

    /** The NUL-terminated UTF-8 string at the native address {@code p} (a zero-length segment from a downcall). */
    public static String cString(MemorySegment p) {
        return p.reinterpret(Long.MAX_VALUE).getString(0);
    }
}
