package org.longexposure.cuda.blas;

/**
 * How a row-major product maps onto cuBLASLt's column-major one. A row-major matrix X (r × c, leading dimension
 * ld) occupies exactly the bytes of the column-major matrix Xᵀ (c × r, same ld). So the row-major request
 * {@code D (M, N) = op(A) (M, K) · op(B) (K, N)} is the column-major product {@code Dᵀ (N, M) = op(B)ᵀ · op(A)ᵀ}:
 * the first cuBLASLt operand is the buffer of B, the second the buffer of A, the output has N rows and M columns,
 * and each transpose flag carries over unchanged (a row-major "no transpose" is already the transposed view).
 * A per-column bias of the row-major D is cuBLASLt's per-row bias of Dᵀ.
 *
 * <p>Layouts describe the stored buffers column-major: {@code first} is B as stored ((transB ? K : N) rows ×
 * (transB ? N : K) columns, ld = ldb), {@code second} is A as stored ((transA ? M : K) × (transA ? K : M), ld =
 * lda), {@code out} is D (N × M, ld = ldd).
 *
 * @param opFirst  cuBLAS operation applied to the first operand (the B buffer)
 * @param opSecond cuBLAS operation applied to the second operand (the A buffer)
 * @param m        rows of the column-major output (= row-major N)
 * @param n        columns of the column-major output (= row-major M)
 * @param k        inner dimension (= row-major K)
 */
public record ColumnMajorGemm(int opFirst, int opSecond, int m, int n, int k,
                              long firstRows, long firstCols, long firstLd,
                              long secondRows, long secondCols, long secondLd,
                              long outRows, long outCols, long outLd) {

    /**
     * The column-major problem for row-major {@code D (m, n) = op(A)·op(B)}; checks that every leading dimension
     * covers its stored row (lda ≥ (transA ? m : k), ldb ≥ (transB ? k : n), ldd ≥ n).
     */
    public static ColumnMajorGemm of(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb,
                                     int ldd) {
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("negative GEMM size m=" + m + " n=" + n + " k=" + k);
        }
        int aCols = transA ? m : k;
        int bCols = transB ? k : n;
        if (lda < Math.max(1, aCols) || ldb < Math.max(1, bCols) || ldd < Math.max(1, n)) {
            throw new IllegalArgumentException("GEMM leading dimensions too small for row-major operands: lda=" + lda
                    + " (need >= " + aCols + "), ldb=" + ldb + " (need >= " + bCols + "), ldd=" + ldd + " (need >= "
                    + n + ") for transA=" + transA + " transB=" + transB + " m=" + m + " n=" + n + " k=" + k);
        }
        int op = CublasLt.CUBLAS_OP_N;
        int opT = CublasLt.CUBLAS_OP_T;
        return new ColumnMajorGemm(transB ? opT : op, transA ? opT : op, n, m, k,
                bCols, transB ? n : k, ldb,
                aCols, transA ? k : m, lda,
                n, m, ldd);
    }
}
