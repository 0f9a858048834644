package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.longexposure.tensor.DType;

/**
 * General matrix product on the CPU: {@code C = alpha·A·B (+ C when accumulate)}, A logical (M, K), B logical
 * (K, N), C row-major F32 (M, N) with leading dimension ldc. Placeholder scalar implementation.
 */
public final class CpuGemm {
    private final CpuThreads threads;

    public CpuGemm(CpuThreads threads) {
        this.threads = threads;
    }

    public void gemm(int m, int n, int k, float alpha, MatrixRef a, MatrixRef b, MemorySegment c, long cOffset,
                     long ldc, boolean accumulate) {
        threads.parallelFor(m, i -> {
            for (int j = 0; j < n; j++) {
                float s = 0;
                for (int p = 0; p < k; p++) {
                    s += get(a, i, p) * get(b, p, j);
                }
                long ci = cOffset + i * ldc + j;
                float prev = accumulate ? c.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, ci) : 0f;
                c.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, ci, prev + alpha * s);
            }
        });
    }

    private static float get(MatrixRef r, long row, long col) {
        long i = r.offset() + row * r.rowStride() + col * r.colStride();
        return switch (r.dtype()) {
            case F32 -> r.segment().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            case F16 -> Float.float16ToFloat(r.segment().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
            case BF16 -> Float.intBitsToFloat(r.segment().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i) << 16);
            default -> throw new IllegalArgumentException("gemm operand dtype " + r.dtype());
        };
    }

    @SuppressWarnings("unused")
    private static boolean isFloat(DType d) {
        return d == DType.F32 || d == DType.F16 || d == DType.BF16;
    }
}
