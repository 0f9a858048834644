package org.longexposure.cuda.blas;

import static java.lang.foreign.ValueLayout.ADDRESS;
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
 * FFM bindings of cuBLASLt (libcublasLt.so.13): handles, matmul/layout/preference descriptors, the algorithm
 * heuristic and {@code cublasLtMatmul}. Constants are the values of cublasLt.h / library_types.h. Every
 * cublasStatus_t is checked: non-zero becomes a {@link CudaException} with the function, its notable arguments
 * and cuBLASLt's status name and text. {@link CublasGemm} is the front end the backend uses.
 */
public final class CublasLt {
    public static final String SONAME = "libcublasLt.so.13";

    // cudaDataType_t (library_types.h)
    public static final int CUDA_R_32F = 0;
    public static final int CUDA_R_16F = 2;
    public static final int CUDA_R_16BF = 14;
    // cublasComputeType_t
    public static final int CUBLAS_COMPUTE_32F = 68;
    // cublasOperation_t
    public static final int CUBLAS_OP_N = 0;
    public static final int CUBLAS_OP_T = 1;
    // cublasLtMatmulDescAttributes_t
    public static final int MATMUL_DESC_TRANSA = 3;
    public static final int MATMUL_DESC_TRANSB = 4;
    public static final int MATMUL_DESC_EPILOGUE = 7;
    public static final int MATMUL_DESC_BIAS_POINTER = 8;
    /** int64: elements between the bias vectors of consecutive batch items (0: one bias for all). */
    public static final int MATMUL_DESC_BIAS_BATCH_STRIDE = 10;
    public static final int MATMUL_DESC_BIAS_DATA_TYPE = 26;
    // cublasLtEpilogue_t
    /** int32: number of matrices of a strided batch (default 1). */
    public static final int MATRIX_LAYOUT_BATCH_COUNT = 5;
    /** int64: elements between consecutive matrices of a strided batch. */
    public static final int MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;

    public static final int EPILOGUE_DEFAULT = 1;
    public static final int EPILOGUE_RELU = 2;
    public static final int EPILOGUE_BIAS = 4;
    public static final int EPILOGUE_RELU_BIAS = 6;
    // cublasLtMatmulPreferenceAttributes_t
    public static final int PREF_MAX_WORKSPACE_BYTES = 1;
    public static final int PREF_MIN_ALIGNMENT_A_BYTES = 5;
    public static final int PREF_MIN_ALIGNMENT_B_BYTES = 6;
    public static final int PREF_MIN_ALIGNMENT_C_BYTES = 7;
    public static final int PREF_MIN_ALIGNMENT_D_BYTES = 8;
    /**
     * sizeof(cublasLtMatmulHeuristicResult_t): algo (uint64_t[8]) + workspaceSize (size_t) + state (int) +
     * wavesCount (float) + reserved (int[4]).
     */
    public static final long HEURISTIC_RESULT_BYTES = 64 + 8 + 4 + 4 + 16;
    /** Offset of workspaceSize inside a heuristic result. */
    public static final long HEURISTIC_WORKSPACE_OFFSET = 64;

    private final MethodHandle cublasLtCreate;
    private final MethodHandle cublasLtDestroy;
    private final MethodHandle cublasLtGetVersion;
    private final MethodHandle cublasLtGetStatusName;
    private final MethodHandle cublasLtGetStatusString;
    private final MethodHandle cublasLtMatmulDescCreate;
    private final MethodHandle cublasLtMatmulDescDestroy;
    private final MethodHandle cublasLtMatmulDescSetAttribute;
    private final MethodHandle cublasLtMatrixLayoutCreate;
    private final MethodHandle cublasLtMatrixLayoutDestroy;
    private final MethodHandle cublasLtMatrixLayoutSetAttribute;
    private final MethodHandle cublasLtMatmulPreferenceCreate;
    private final MethodHandle cublasLtMatmulPreferenceDestroy;
    private final MethodHandle cublasLtMatmulPreferenceSetAttribute;
    private final MethodHandle cublasLtMatmulAlgoGetHeuristic;
    private final MethodHandle cublasLtMatmul;

    private CublasLt(SymbolLookup lib) {
        cublasLtCreate = bind(lib, "cublasLtCreate", JAVA_INT, ADDRESS);
        cublasLtDestroy = bind(lib, "cublasLtDestroy", JAVA_INT, ADDRESS);
        cublasLtGetVersion = bind(lib, "cublasLtGetVersion", JAVA_LONG);
        cublasLtGetStatusName = bind(lib, "cublasLtGetStatusName", ADDRESS, JAVA_INT);
        cublasLtGetStatusString = bind(lib, "cublasLtGetStatusString", ADDRESS, JAVA_INT);
        cublasLtMatmulDescCreate = bind(lib, "cublasLtMatmulDescCreate", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);
        cublasLtMatmulDescDestroy = bind(lib, "cublasLtMatmulDescDestroy", JAVA_INT, ADDRESS);
        cublasLtMatmulDescSetAttribute = bind(lib, "cublasLtMatmulDescSetAttribute", JAVA_INT, ADDRESS, JAVA_INT,
                ADDRESS, JAVA_LONG);
        cublasLtMatrixLayoutCreate = bind(lib, "cublasLtMatrixLayoutCreate", JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG,
                JAVA_LONG, JAVA_LONG);
        cublasLtMatrixLayoutDestroy = bind(lib, "cublasLtMatrixLayoutDestroy", JAVA_INT, ADDRESS);
        cublasLtMatrixLayoutSetAttribute = bind(lib, "cublasLtMatrixLayoutSetAttribute", JAVA_INT, ADDRESS,
                JAVA_INT, ADDRESS, JAVA_LONG);
        cublasLtMatmulPreferenceCreate = bind(lib, "cublasLtMatmulPreferenceCreate", JAVA_INT, ADDRESS);
        cublasLtMatmulPreferenceDestroy = bind(lib, "cublasLtMatmulPreferenceDestroy", JAVA_INT, ADDRESS);
        cublasLtMatmulPreferenceSetAttribute = bind(lib, "cublasLtMatmulPreferenceSetAttribute", JAVA_INT, ADDRESS,
                JAVA_INT, ADDRESS, JAVA_LONG);
        cublasLtMatmulAlgoGetHeuristic = bind(lib, "cublasLtMatmulAlgoGetHeuristic", JAVA_INT, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        cublasLtMatmul = bind(lib, "cublasLtMatmul", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
    }

    /** Loads libcublasLt.so.13 (loader search path, then {@code libDirs}). */
    public static CublasLt load(List<Path> libDirs) {
        return new CublasLt(NativeLibraries.find(SONAME, libDirs));
    }

    /** cuBLASLt's version as a number, e.g. 130100 for 13.1.0. */
    public long version() {
        try {
            return (long) cublasLtGetVersion.invokeExact();
        } catch (Throwable t) {
            throw new CudaException("cublasLtGetVersion: " + t, t);
        }
    }

    public MemorySegment create() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(ADDRESS);
            call("cublasLtCreate", () -> "", () -> (int) cublasLtCreate.invokeExact(h));
            return h.get(ADDRESS, 0);
        }
    }

    public void destroy(MemorySegment handle) {
        call("cublasLtDestroy", () -> "", () -> (int) cublasLtDestroy.invokeExact(handle));
    }

    public MemorySegment matmulDescCreate(int computeType, int scaleType) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment d = a.allocate(ADDRESS);
            call("cublasLtMatmulDescCreate", () -> "compute " + computeType + ", scale " + scaleType,
                    () -> (int) cublasLtMatmulDescCreate.invokeExact(d, computeType, scaleType));
            return d.get(ADDRESS, 0);
        }
    }

    public void matmulDescDestroy(MemorySegment desc) {
        call("cublasLtMatmulDescDestroy", () -> "", () -> (int) cublasLtMatmulDescDestroy.invokeExact(desc));
    }

    /** Sets an int32 attribute (transposes, epilogue, bias data type). */
    public void matmulDescSetInt(MemorySegment desc, int attribute, int value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_INT, value);
            call("cublasLtMatmulDescSetAttribute", () -> "attribute " + attribute + " = " + value,
                    () -> (int) cublasLtMatmulDescSetAttribute.invokeExact(desc, attribute, v, 4L));
        }
    }

    /** Sets an int64 attribute (bias batch stride). */
    public void matmulDescSetLong(MemorySegment desc, int attribute, long value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_LONG, value);
            call("cublasLtMatmulDescSetAttribute", () -> "attribute " + attribute + " = " + value,
                    () -> (int) cublasLtMatmulDescSetAttribute.invokeExact(desc, attribute, v, 8L));
        }
    }

    /** Sets a pointer attribute (bias pointer), given as a device address. */
    public void matmulDescSetPointer(MemorySegment desc, int attribute, long address) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_LONG, address);
            call("cublasLtMatmulDescSetAttribute", () -> "attribute " + attribute + " = 0x" + Long.toHexString(address),
                    () -> (int) cublasLtMatmulDescSetAttribute.invokeExact(desc, attribute, v, 8L));
        }
    }

    /** A column-major layout of {@code rows × cols} elements of {@code dataType} with leading dimension {@code ld}. */
    public MemorySegment matrixLayoutCreate(int dataType, long rows, long cols, long ld) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment l = a.allocate(ADDRESS);
            call("cublasLtMatrixLayoutCreate", () -> "type " + dataType + ", " + rows + "x" + cols + ", ld " + ld,
                    () -> (int) cublasLtMatrixLayoutCreate.invokeExact(l, dataType, rows, cols, ld));
            return l.get(ADDRESS, 0);
        }
    }

    /** Sets an int32 layout attribute (batch count). */
    public void matrixLayoutSetInt(MemorySegment layout, int attribute, int value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_INT, value);
            call("cublasLtMatrixLayoutSetAttribute", () -> "attribute " + attribute + " = " + value,
                    () -> (int) cublasLtMatrixLayoutSetAttribute.invokeExact(layout, attribute, v, 4L));
        }
    }

    /** Sets an int64 layout attribute (strided batch offset). */
    public void matrixLayoutSetLong(MemorySegment layout, int attribute, long value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_LONG, value);
            call("cublasLtMatrixLayoutSetAttribute", () -> "attribute " + attribute + " = " + value,
                    () -> (int) cublasLtMatrixLayoutSetAttribute.invokeExact(layout, attribute, v, 8L));
        }
    }

    public void matrixLayoutDestroy(MemorySegment layout) {
        call("cublasLtMatrixLayoutDestroy", () -> "", () -> (int) cublasLtMatrixLayoutDestroy.invokeExact(layout));
    }

    public MemorySegment preferenceCreate() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            call("cublasLtMatmulPreferenceCreate", () -> "", () -> (int) cublasLtMatmulPreferenceCreate.invokeExact(p));
            return p.get(ADDRESS, 0);
        }
    }

    public void preferenceDestroy(MemorySegment pref) {
        call("cublasLtMatmulPreferenceDestroy", () -> "",
                () -> (int) cublasLtMatmulPreferenceDestroy.invokeExact(pref));
    }

    /** Sets a uint64 preference (max workspace bytes). */
    public void preferenceSetLong(MemorySegment pref, int attribute, long value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_LONG, value);
            call("cublasLtMatmulPreferenceSetAttribute", () -> "attribute " + attribute + " = " + value,
                    () -> (int) cublasLtMatmulPreferenceSetAttribute.invokeExact(pref, attribute, v, 8L));
        }
    }

    /** Sets a uint32 preference (minimum alignments). */
    public void preferenceSetInt(MemorySegment pref, int attribute, int value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_INT, value);
            call("cublasLtMatmulPreferenceSetAttribute", () -> "attribute " + attribute + " = " + value,
                    () -> (int) cublasLtMatmulPreferenceSetAttribute.invokeExact(pref, attribute, v, 4L));
        }
    }

    /**
     * Fills {@code results} (room for {@code requested} heuristic results) with the best algorithms for the
     * problem, best first; returns how many were found (0 when none fits).
     */
    public int algoGetHeuristic(MemorySegment handle, MemorySegment desc, MemorySegment aLayout,
                                MemorySegment bLayout, MemorySegment cLayout, MemorySegment dLayout,
                                MemorySegment pref, int requested, MemorySegment results, Supplier<String> what) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment count = a.allocate(JAVA_INT);
            call("cublasLtMatmulAlgoGetHeuristic", what, () -> (int) cublasLtMatmulAlgoGetHeuristic.invokeExact(
                    handle, desc, aLayout, bLayout, cLayout, dLayout, pref, requested, results, count));
            return count.get(JAVA_INT, 0);
        }
    }

    /** D = alpha·op(A)·op(B) + beta·C, with host alpha/beta pointers and device matrices, queued on {@code stream}. */
    public void matmul(MemorySegment handle, MemorySegment desc, MemorySegment alpha, long a, MemorySegment aLayout,
                       long b, MemorySegment bLayout, MemorySegment beta, long c, MemorySegment cLayout, long d,
                       MemorySegment dLayout, MemorySegment algo, long workspace, long workspaceBytes,
                       MemorySegment stream, Supplier<String> what) {
        MemorySegment pa = MemorySegment.ofAddress(a);
        MemorySegment pb = MemorySegment.ofAddress(b);
        MemorySegment pc = MemorySegment.ofAddress(c);
        MemorySegment pd = MemorySegment.ofAddress(d);
        MemorySegment pw = MemorySegment.ofAddress(workspace);
        call("cublasLtMatmul", what, () -> (int) cublasLtMatmul.invokeExact(handle, desc, alpha, pa, aLayout, pb,
                bLayout, beta, pc, cLayout, pd, dLayout, algo, pw, workspaceBytes, stream));
    }

    /** "CUBLAS_STATUS_X (text)" for a cublasStatus_t. */
    public String describe(int status) {
        try {
            String name = NativeCalls.cString((MemorySegment) cublasLtGetStatusName.invokeExact(status));
            String text = NativeCalls.cString((MemorySegment) cublasLtGetStatusString.invokeExact(status));
            return name + " (" + text + ")";
        } catch (Throwable t) {
            return "cublasStatus_t " + status;
        }
    }

    private void call(String function, Supplier<String> args, NativeCalls.StatusCall c) {
        NativeCalls.check(function, args, c, this::describe);
    }

    private static MethodHandle bind(SymbolLookup lib, String name, MemoryLayout result, MemoryLayout... args) {
        return NativeCalls.bind(lib, SONAME, name, result, args);
    }
}
