package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.longexposure.backend.LinearOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.backend.OpShapes.LinearDims;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Linear layers on the CPU, as {@code torch.nn.Linear}: {@code y = x·Wᵀ + b} with W (N, K). Every product goes
 * through {@link CpuGemm}, which reads frozen F16/BF16 weights in place (converted while packing), so no F32
 * copy of a frozen weight ever exists. Nothing is saved for backward here: the caller keeps x.
 */
public final class CpuLinear implements LinearOps {
    private final CpuThreads threads;
    private final CpuGemm gemm;
    private final GemmCounters counters = new GemmCounters();

    public CpuLinear(CpuThreads threads, CpuGemm gemm) {
        this.threads = threads;
        this.gemm = gemm;
    }

    /** Totals of the products issued so far (for benchmarks). */
    public GemmCounters counters() {
        return counters;
    }

    /** Every product goes through here so that {@link #counters} sees it. */
    private void product(int m, int n, int k, float alpha, MatrixRef a, MatrixRef b, MemorySegment c, long ldc,
                         boolean accumulate) {
        long t0 = System.nanoTime();
        gemm.gemm(m, n, k, alpha, a, b, c, 0, ldc, accumulate);
        counters.add(m, n, k, System.nanoTime() - t0);
    }

    /**
     * Overwrite: out's rows start as the bias (or the GEMM overwrites). Accumulate: the bias is added into out's
     * rows first, then the product accumulates on top: out + b + x·Wᵀ.
     */
    @Override
    public void linearForward(Tensor out, Tensor inp, Tensor weight, Tensor bias, boolean accumulate) {
        LinearDims d = check(out, inp, weight, "linearForward");
        if (bias != null) {
            bias.requireShape("linearForward bias", d.n()).requireDType("linearForward bias", DType.F32);
            if (accumulate) {
                addRows(out.host(), bias.host(), d.m(), d.n());
            } else {
                broadcastRows(out.host(), bias.host(), d.m(), d.n());
            }
        }
        // out (M,N) (+)= inp (M,K) · Wᵀ (K,N): Wᵀ is W read with swapped strides.
        product(d.m(), d.n(), d.k(), 1f, rowMajor(inp, d.k()), weightTransposed(weight, d.k()), out.host(), d.n(),
                accumulate || bias != null);
    }

    /**
     * out's rows start as {@code residual + b} (each element read before it is written, so residual may be out
     * itself), then the product accumulates on top: residual + b + x·Wᵀ.
     */
    @Override
    public void linearForwardResidual(Tensor out, Tensor inp, Tensor weight, Tensor bias, Tensor residual) {
        if (residual == null) {
            linearForward(out, inp, weight, bias, false);
            return;
        }
        residualProduct("linearForwardResidual", out, inp, weight, bias, 1f, residual);
    }

    /** linearForward, then max(x, 0) over out in place (CpuActivation's ReLU formula). */
    @Override
    public void linearForwardRelu(Tensor out, Tensor inp, Tensor weight, Tensor bias) {
        linearForward(out, inp, weight, bias);
        MemorySegment y = out.host();
        CpuPointwise.run(threads, out.numel(), (lo, hi) -> {
            for (long i = lo; i < hi; i++) {
                y.setAtIndex(ValueLayout.JAVA_FLOAT, i, Math.max(y.getAtIndex(ValueLayout.JAVA_FLOAT, i), 0f));
            }
        });
    }

    @Override
    public void linearForwardScaled(Tensor out, Tensor inp, Tensor weight, float alpha, boolean accumulate) {
        LinearDims d = check(out, inp, weight, "linearForwardScaled");
        product(d.m(), d.n(), d.k(), alpha, rowMajor(inp, d.k()), weightTransposed(weight, d.k()), out.host(), d.n(),
                accumulate);
    }

    /** out's rows start as the residual, then {@code alpha · x·Wᵀ} accumulates on top. */
    @Override
    public void linearForwardScaledResidual(Tensor out, Tensor inp, Tensor weight, float alpha, Tensor residual) {
        if (residual == null) {
            linearForwardScaled(out, inp, weight, alpha, false);
            return;
        }
        residualProduct("linearForwardScaledResidual", out, inp, weight, null, alpha, residual);
    }

    /** out = residual (+ bias), then alpha · x·Wᵀ accumulated on top; residual may be out itself. */
    private void residualProduct(String op, Tensor out, Tensor inp, Tensor weight, Tensor bias, float alpha,
                                 Tensor residual) {
        LinearDims d = check(out, inp, weight, op);
        requireResidual(residual, d, op);
        MemorySegment b = null;
        if (bias != null) {
            b = bias.requireShape(op + " bias", d.n()).requireDType(op + " bias", DType.F32).host();
        }
        residualRows(out.host(), residual.host(), b, d.m(), d.n());
        product(d.m(), d.n(), d.k(), alpha, rowMajor(inp, d.k()), weightTransposed(weight, d.k()), out.host(), d.n(),
                true);
    }

    @Override
    public void linearBackwardInput(Tensor dInp, Tensor dOut, Tensor weight, float alpha, boolean accumulate) {
        LinearDims d = check(dOut, dInp, weight, "linearBackwardInput");
        // dInp (M,K) (+)= alpha · dOut (M,N) · W (N,K)
        product(d.m(), d.k(), d.n(), alpha, rowMajor(dOut, d.n()), rowMajor(weight, d.k()), dInp.host(), d.k(),
                accumulate);
    }

    @Override
    public void linearBackwardWeight(Tensor dWeight, Tensor dBias, Tensor dOut, Tensor inp, float alpha) {
        LinearDims d = OpShapes.linearBackwardWeight(dOut, inp, DType.F32);
        int m = d.m();
        int n = d.n();
        int k = d.k();
        if (dWeight != null) {
            dWeight.requireShape("linearBackwardWeight dWeight", n, k).requireDType("dWeight", DType.F32);
            // dW (N,K) += alpha · dOutᵀ (N,M) · inp (M,K)
            MatrixRef dOutT = new MatrixRef(dOut.host(), DType.F32, 0, 1, n);
            product(n, k, m, alpha, dOutT, rowMajor(inp, k), dWeight.host(), k, true);
        }
        if (dBias != null) {
            dBias.requireShape("linearBackwardWeight dBias", n).requireDType("dBias", DType.F32);
            columnSums(dBias.host(), dOut.host(), m, n, alpha);
        }
    }

    /** dBias[j] += alpha · Σ_i dOut[i, j], rows summed in order (deterministic), columns split across threads. */
    private void columnSums(MemorySegment dBias, MemorySegment dOut, int m, int n, float alpha) {
        threads.parallelChunks(n, (lo, hi) -> {
            float[] acc = new float[hi - lo];
            for (int i = 0; i < m; i++) {
                long row = (long) i * n;
                for (int j = lo; j < hi; j++) {
                    acc[j - lo] += dOut.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j);
                }
            }
            for (int j = lo; j < hi; j++) {
                float prev = dBias.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, j);
                dBias.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, j, prev + alpha * acc[j - lo]);
            }
        });
    }

    /** Fills every row of out (M, N) with bias (N), so the GEMM can accumulate on top. */
    private void broadcastRows(MemorySegment out, MemorySegment bias, int m, int n) {
        long rowBytes = (long) n * Float.BYTES;
        threads.parallelChunks(m, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                MemorySegment.copy(bias, 0, out, i * rowBytes, rowBytes);
            }
        });
    }

    /** out (M, N) = residual (M, N) + bias (N) per row (bias may be null); residual may be out itself. */
    private void residualRows(MemorySegment out, MemorySegment residual, MemorySegment bias, int m, int n) {
        threads.parallelChunks(m, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long row = (long) i * n;
                for (int j = 0; j < n; j++) {
                    float v = residual.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j);
                    if (bias != null) {
                        v += bias.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, j);
                    }
                    out.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j, v);
                }
            }
        });
    }

    private static void requireResidual(Tensor residual, LinearDims d, String op) {
        OpShapes.linearResidual(op, residual, d, DType.F32);
    }

    /** Adds bias (N) onto every row of out (M, N). */
    private void addRows(MemorySegment out, MemorySegment bias, int m, int n) {
        threads.parallelChunks(m, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                long row = (long) i * n;
                for (int j = 0; j < n; j++) {
                    float prev = out.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j);
                    out.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, row + j,
                            prev + bias.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, j));
                }
            }
        });
    }

    private static MatrixRef rowMajor(Tensor t, int ld) {
        return MatrixRef.rowMajor(t.host(), t.dtype(), 0, ld);
    }

    private static MatrixRef weightTransposed(Tensor w, int k) {
        return new MatrixRef(w.host(), w.dtype(), 0, 1, k);
    }

    /**
     * Checks y (M, N), x (M, K), W (N, K) ({@link OpShapes#linear}, F32 activations) and that W is a dtype
     * {@link CpuGemm} reads; returns (M, N, K).
     */
    private static LinearDims check(Tensor y, Tensor x, Tensor w, String op) {
        LinearDims d = OpShapes.linear(op, y, x, w, DType.F32);
        if (!(w.dtype() == DType.F32 || w.dtype() == DType.F16 || w.dtype() == DType.BF16)) {
            throw new IllegalArgumentException(op + ": weight dtype " + w.dtype() + " not supported (f32, f16, bf16)");
        }
        return d;
    }
}
