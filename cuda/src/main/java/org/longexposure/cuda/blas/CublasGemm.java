package org.longexposure.cuda.blas;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.longexposure.cuda.CudaException;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaEvent;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.tensor.DType;

/**
 * Row-major GEMM on cuBLASLt: {@code D (M, N) = alpha·op(A)·op(B) + beta·D}, A and B bf16, D bf16 or f32, fp32
 * accumulation and scaling (CUBLAS_COMPUTE_32F), optionally {@code + bias} per column and ReLU, both fused into
 * cuBLASLt's epilogue. The row-major problem is handed over as the column-major {@code Dᵀ = op(B)ᵀ·op(A)ᵀ}
 * ({@link ColumnMajorGemm}). C is D (in place), so beta = 1 accumulates; or, through the overloads that take
 * {@code c}, C is another buffer of D's shape and leading dimension, {@code D = alpha·op(A)·op(B) + beta·C}
 * (a residual added in the epilogue: one pass that reads C and writes D).
 *
 * <p>Bias dtype: cublasLt.h documents the bias vector as having D's type, the only exceptions (BIAS_DATA_TYPE)
 * being integer and fp8 kernels; cuBLASLt 13 on an H200 indeed answers an f32 bias with a bf16 D with
 * CUBLAS_STATUS_INVALID_VALUE from the heuristic. So the bias must have D's dtype (bf16 bias for bf16 D, f32 for
 * f32); the bias is still added in fp32 inside the epilogue.
 *
 * <p>Strided batches ({@link #matmulStridedBatched}): {@code batch} products of one shape whose operands lie at
 * fixed element strides, in one cuBLASLt call (layout attributes BATCH_COUNT / STRIDED_BATCH_OFFSET, and
 * BIAS_BATCH_STRIDE for a bias per item).
 *
 * <p>Plans (matmul descriptor, the three layouts and the heuristic's best algorithm) are cached per problem
 * (transposes, sizes, leading dimensions, dtypes, epilogue, pointer alignments, batch and strides). The object owns
 * a workspace of {@link #DEFAULT_WORKSPACE_BYTES} on the device. Not thread-safe; all products go on the stream
 * passed in.
 */
public final class CublasGemm implements AutoCloseable {
    /** 32 MiB: what cuBLAS recommends for Hopper (its own default there). */
    public static final long DEFAULT_WORKSPACE_BYTES = 32L << 20;
    /** Candidates asked of the heuristic when autotuning. */
    static final int AUTOTUNE_CANDIDATES = 8;
    /** Timed runs per candidate (after one untimed run). */
    static final int AUTOTUNE_RUNS = 3;

    private final CudaContext ctx;
    private final CublasLt lt;
    private final MemorySegment handle;
    private final long workspace;
    private final long workspaceBytes;
    private final Map<PlanKey, Plan> plans = new HashMap<>();
    private final Arena planArena = Arena.ofShared();
    private final boolean autotune;
    private CudaEvent tuneStart;
    private CudaEvent tuneEnd;
    private long matmuls;
    private boolean closed;

    public CublasGemm(CudaContext ctx, CublasLt lt, long workspaceBytes) {
        this(ctx, lt, workspaceBytes, true);
    }

    /**
     * @param autotune when a shape is first seen, time up to {@link #AUTOTUNE_CANDIDATES} of the heuristic's
     *                 algorithms on the call's own operands (writing into a scratch output, so D is untouched) and
     *                 keep the fastest; false keeps the heuristic's first choice
     */
    public CublasGemm(CudaContext ctx, CublasLt lt, long workspaceBytes, boolean autotune) {
        this.ctx = ctx;
        this.lt = lt;
        this.autotune = autotune;
        this.handle = lt.create();
        this.workspaceBytes = workspaceBytes;
        this.workspace = workspaceBytes > 0 ? ctx.memAlloc(workspaceBytes) : 0;
    }

    /** Loads cuBLASLt (loader search path, then the context's library folders) with the default workspace. */
    public static CublasGemm open(CudaContext ctx) {
        return open(ctx, ctx.libDirs());
    }

    public static CublasGemm open(CudaContext ctx, List<Path> libDirs) {
        return open(ctx, libDirs, true);
    }

    public static CublasGemm open(CudaContext ctx, List<Path> libDirs, boolean autotune) {
        return new CublasGemm(ctx, CublasLt.load(libDirs), DEFAULT_WORKSPACE_BYTES, autotune);
    }

    public CublasLt library() {
        return lt;
    }

    /**
     * Row-major {@code D (m, n) = alpha·op(A)·op(B) + beta·D} (+ bias per column, then ReLU), queued on {@code s}.
     *
     * @param a        device address of A: (m, k) row-major with leading dimension lda, or (k, m) when transA
     * @param b        device address of B: (k, n), or (n, k) when transB
     * @param d        device address of D (m, n), leading dimension ldd; read when beta != 0
     * @param dType    BF16 or F32
     * @param bias     device address of a packed (n) vector, or 0 for none
     * @param biasType the bias dtype, which must equal {@code dType} (ignored without bias)
     * @param relu     apply max(x, 0) after the bias
     */
    public void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b,
                       int ldb, float beta, long d, int ldd, DType dType, long bias, DType biasType, boolean relu,
                       CudaStream s) {
        matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, d, d, ldd, dType, bias, biasType, relu, s);
    }

    /**
     * {@link #matmul} with C apart from D: row-major {@code D (m, n) = alpha·op(A)·op(B) + beta·C} (+ bias, ReLU),
     * C (m, n) of D's dtype and leading dimension ldd. C may be D itself (then this is matmul) or a buffer that does
     * not overlap D; C is read only when beta != 0.
     */
    public void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b,
                       int ldb, float beta, long c, long d, int ldd, DType dType, long bias, DType biasType,
                       boolean relu, CudaStream s) {
        matmulStridedBatched(transA, transB, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, d, ldd, 0, 1, dType,
                bias, 0, biasType, relu, s);
    }

    /**
     * {@code batch} independent products of {@link #matmul}'s form in one cuBLASLt call (strided batch): item i
     * reads A at {@code a + i·strideA}, B at {@code b + i·strideB}, the bias at {@code bias + i·strideBias} and
     * writes D at {@code d + i·strideD} (strides in elements; strideBias 0 shares one bias). With batch 1 this is
     * matmul.
     */
    public void matmulStridedBatched(boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
                                     int lda, long strideA, long b, int ldb, long strideB, float beta, long d,
                                     int ldd, long strideD, int batch, DType dType, long bias, long strideBias,
                                     DType biasType, boolean relu, CudaStream s) {
        matmulStridedBatched(transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, d, d, ldd,
                strideD, batch, dType, bias, strideBias, biasType, relu, s);
    }

    /**
     * {@link #matmulStridedBatched} with C apart from D: item i reads C at {@code c + i·strideD} (C shares D's
     * layout) and writes {@code D_i = alpha·op(A_i)·op(B_i) + beta·C_i}. C is D itself or does not overlap it.
     */
    public void matmulStridedBatched(boolean transA, boolean transB, int m, int n, int k, float alpha, long a,
                                     int lda, long strideA, long b, int ldb, long strideB, float beta, long c, long d,
                                     int ldd, long strideD, int batch, DType dType, long bias, long strideBias,
                                     DType biasType, boolean relu, CudaStream s) {
        if (closed) {
            throw new IllegalStateException("CublasGemm is closed");
        }
        if (dType != DType.BF16 && dType != DType.F32) {
            throw new IllegalArgumentException("GEMM output dtype must be bf16 or f32, got " + dType);
        }
        if (bias != 0 && biasType != dType) {
            throw new IllegalArgumentException("GEMM bias dtype " + biasType + " differs from the output dtype "
                    + dType + ": cuBLASLt adds only a bias of the output's dtype");
        }
        if (batch < 1 || strideA < 0 || strideB < 0 || strideD < 0 || strideBias < 0) {
            throw new IllegalArgumentException("GEMM batch " + batch + " and strides A/B/D/bias " + strideA + "/"
                    + strideB + "/" + strideD + "/" + strideBias + " must be >= 1 and >= 0");
        }
        ColumnMajorGemm cm = ColumnMajorGemm.of(transA, transB, m, n, k, lda, ldb, ldd);
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            throw new IllegalArgumentException("GEMM with k = 0 (m=" + m + ", n=" + n + ") is not supported");
        }
        int epilogue = bias != 0 ? (relu ? CublasLt.EPILOGUE_RELU_BIAS : CublasLt.EPILOGUE_BIAS)
                : (relu ? CublasLt.EPILOGUE_RELU : CublasLt.EPILOGUE_DEFAULT);
        long outElem = dType == DType.F32 ? 4 : 2;
        boolean batched = batch > 1;
        // C and D share one layout and one alignment preference: the smaller of the two
        int alignCd = Math.min(alignment(d, batched ? strideD * outElem : 0),
                alignment(c, batched ? strideD * outElem : 0));
        PlanKey key = new PlanKey(transA, transB, m, n, k, lda, ldb, ldd, dType, bias != 0 ? biasType : null,
                epilogue, alignment(a, batched ? strideA * 2 : 0), alignment(b, batched ? strideB * 2 : 0), alignCd,
                batch, batched ? strideA : 0, batched ? strideB : 0, batched ? strideD : 0,
                batched && bias != 0 ? strideBias : 0);
        Plan plan = plans.get(key);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment alphaSeg = arena.allocateFrom(JAVA_FLOAT, alpha);
            MemorySegment betaSeg = arena.allocateFrom(JAVA_FLOAT, beta);
            if (plan == null) {
                plan = createPlan(key, cm, new Operands(a, b, bias, alphaSeg, betaSeg, s));
                plans.put(key, plan);
            }
            matmuls++;
            if (bias != 0) {
                lt.matmulDescSetPointer(plan.desc, CublasLt.MATMUL_DESC_BIAS_POINTER, bias);
            }
            Plan p = plan;
            lt.matmul(handle, plan.desc, alphaSeg, b, plan.first, a, plan.second, betaSeg, c, plan.out, d, plan.out,
                    plan.algo, workspace, workspaceBytes, s.handle(), () -> describe(p.key) + ", alpha " + alpha
                            + ", beta " + beta);
        }
    }

    /** cublasLtMatmul calls queued so far (each launches one kernel, or two when the algorithm splits K). */
    public long matmulCount() {
        return matmuls;
    }

    /** Number of cached plans (tests and diagnostics). */
    public int planCount() {
        return plans.size();
    }

    /** The first call's operands, for timing candidate algorithms. */
    private record Operands(long a, long b, long bias, MemorySegment alpha, MemorySegment beta, CudaStream s) {
    }

    private Plan createPlan(PlanKey key, ColumnMajorGemm cm, Operands ops) {
        List<Runnable> undo = new ArrayList<>();
        try {
            MemorySegment desc = lt.matmulDescCreate(CublasLt.CUBLAS_COMPUTE_32F, CublasLt.CUDA_R_32F);
            undo.add(() -> lt.matmulDescDestroy(desc));
            lt.matmulDescSetInt(desc, CublasLt.MATMUL_DESC_TRANSA, cm.opFirst());
            lt.matmulDescSetInt(desc, CublasLt.MATMUL_DESC_TRANSB, cm.opSecond());
            lt.matmulDescSetInt(desc, CublasLt.MATMUL_DESC_EPILOGUE, key.epilogue);
            MemorySegment first = lt.matrixLayoutCreate(CublasLt.CUDA_R_16BF, cm.firstRows(), cm.firstCols(),
                    cm.firstLd());
            undo.add(() -> lt.matrixLayoutDestroy(first));
            MemorySegment second = lt.matrixLayoutCreate(CublasLt.CUDA_R_16BF, cm.secondRows(), cm.secondCols(),
                    cm.secondLd());
            undo.add(() -> lt.matrixLayoutDestroy(second));
            MemorySegment out = lt.matrixLayoutCreate(cudaType(key.dType), cm.outRows(), cm.outCols(), cm.outLd());
            undo.add(() -> lt.matrixLayoutDestroy(out));
            if (key.batch > 1) {
                // first is the B buffer, second the A buffer (see ColumnMajorGemm)
                for (MemorySegment l : List.of(first, second, out)) {
                    lt.matrixLayoutSetInt(l, CublasLt.MATRIX_LAYOUT_BATCH_COUNT, key.batch);
                }
                lt.matrixLayoutSetLong(first, CublasLt.MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, key.strideB);
                lt.matrixLayoutSetLong(second, CublasLt.MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, key.strideA);
                lt.matrixLayoutSetLong(out, CublasLt.MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, key.strideD);
                if (key.biasType != null) {
                    lt.matmulDescSetLong(desc, CublasLt.MATMUL_DESC_BIAS_BATCH_STRIDE, key.strideBias);
                }
            }
            MemorySegment pref = lt.preferenceCreate();
            int requested = autotune ? AUTOTUNE_CANDIDATES : 1;
            MemorySegment results = planArena.allocate(CublasLt.HEURISTIC_RESULT_BYTES * requested, 8);
            int found;
            try {
                lt.preferenceSetLong(pref, CublasLt.PREF_MAX_WORKSPACE_BYTES, workspaceBytes);
                // first operand is the B buffer, second the A buffer (see ColumnMajorGemm)
                lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_A_BYTES, key.alignB);
                lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_B_BYTES, key.alignA);
                lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_C_BYTES, key.alignD);
                lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_D_BYTES, key.alignD);
                found = lt.algoGetHeuristic(handle, desc, first, second, out, out, pref, requested, results,
                        () -> describe(key));
            } finally {
                lt.preferenceDestroy(pref);
            }
            if (found == 0) {
                throw new CudaException("cuBLASLt has no algorithm for " + describe(key) + " within a "
                        + workspaceBytes + "-byte workspace");
            }
            int best = found > 1 ? fastest(key, cm, desc, first, second, out, results, found, ops) : 0;
            return new Plan(key, desc, first, second, out,
                    results.asSlice(best * CublasLt.HEURISTIC_RESULT_BYTES, 64));
        } catch (RuntimeException e) {
            for (int i = undo.size() - 1; i >= 0; i--) {
                undo.get(i).run();
            }
            throw e;
        }
    }

    /**
     * Times each of the {@code found} candidate algorithms on the call's operands with the output going to a
     * zero-filled scratch buffer of D's size (so D, which beta may read, is left as it was) and returns the index
     * of the fastest; candidates that fail to run are skipped. The scratch is freed after the stream drains.
     */
    private int fastest(PlanKey key, ColumnMajorGemm cm, MemorySegment desc, MemorySegment first,
                        MemorySegment second, MemorySegment out, MemorySegment results, int found, Operands ops) {
        long elem = key.dType == DType.F32 ? 4 : 2;
        long bytes = ((long) (key.batch - 1) * key.strideD + (long) cm.outLd() * cm.outCols()) * elem;
        long scratch = ctx.memAlloc(bytes);
        if (tuneStart == null) {
            tuneStart = ctx.createEvent();
            tuneEnd = ctx.createEvent();
        }
        int best = 0;
        float bestMs = Float.POSITIVE_INFINITY;
        try {
            ops.s.memsetD8(scratch, (byte) 0, bytes);
            if (ops.bias != 0) {
                lt.matmulDescSetPointer(desc, CublasLt.MATMUL_DESC_BIAS_POINTER, ops.bias);
            }
            for (int i = 0; i < found; i++) {
                MemorySegment algo = results.asSlice(i * CublasLt.HEURISTIC_RESULT_BYTES, 64);
                try {
                    for (int r = 0; r <= AUTOTUNE_RUNS; r++) {
                        if (r == 1) {
                            tuneStart.record(ops.s);
                        }
                        lt.matmul(handle, desc, ops.alpha, ops.b, first, ops.a, second, ops.beta, scratch, out,
                                scratch, out, algo, workspace, workspaceBytes, ops.s.handle(),
                                () -> "autotune candidate of " + describe(key));
                    }
                    tuneEnd.record(ops.s);
                    tuneEnd.sync();
                } catch (CudaException e) {
                    ops.s.sync();
                    continue;
                }
                float ms = tuneEnd.elapsedMillisSince(tuneStart);
                if (ms < bestMs) {
                    bestMs = ms;
                    best = i;
                }
            }
        } finally {
            ops.s.sync();
            ctx.memFree(scratch);
        }
        return best;
    }

    /** The problem in row-major words, for messages. */
    static String describe(PlanKey k) {
        return "row-major D(" + k.m + "x" + k.n + ") = op(A)·op(B) with K=" + k.k + ", transA=" + k.transA
                + ", transB=" + k.transB + ", lda=" + k.lda + ", ldb=" + k.ldb + ", ldd=" + k.ldd + ", A/B bf16, D "
                + k.dType + (k.biasType != null ? ", bias " + k.biasType : "") + ", epilogue " + k.epilogue
                + ", alignment A/B/D " + k.alignA + "/" + k.alignB + "/" + k.alignD + " bytes"
                + (k.batch > 1 ? ", batch " + k.batch + " with strides A/B/D/bias " + k.strideA + "/" + k.strideB
                + "/" + k.strideD + "/" + k.strideBias + " elements" : "");
    }

    /** The largest power of two (up to 256) dividing {@code address}: what cuBLASLt may assume about it. */
    static int alignment(long address) {
        if (address == 0) {
            return 256;
        }
        return (int) Math.min(256, Long.lowestOneBit(address));
    }

    /** The alignment every item of a strided batch shares: that of the base and of the stride in bytes. */
    static int alignment(long address, long strideBytes) {
        return Math.min(alignment(address), alignment(strideBytes));
    }

    static int cudaType(DType t) {
        return switch (t) {
            case F32 -> CublasLt.CUDA_R_32F;
            case BF16 -> CublasLt.CUDA_R_16BF;
            case F16 -> CublasLt.CUDA_R_16F;
            default -> throw new IllegalArgumentException("no cuBLASLt data type for " + t);
        };
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Plan p : plans.values()) {
            lt.matrixLayoutDestroy(p.out);
            lt.matrixLayoutDestroy(p.second);
            lt.matrixLayoutDestroy(p.first);
            lt.matmulDescDestroy(p.desc);
        }
        plans.clear();
        planArena.close();
        if (tuneStart != null) {
            tuneStart.close();
            tuneEnd.close();
        }
        if (workspace != 0) {
            ctx.memFree(workspace);
        }
        lt.destroy(handle);
    }

    record PlanKey(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb, int ldd, DType dType,
                   DType biasType, int epilogue, int alignA, int alignB, int alignD, int batch, long strideA,
                   long strideB, long strideD, long strideBias) {
    }

    private record Plan(PlanKey key, MemorySegment desc, MemorySegment first, MemorySegment second,
                        MemorySegment out, MemorySegment algo) {
    }
}
