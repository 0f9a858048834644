package org.longexposure.cuda.backend;

import static org.longexposure.cuda.backend.CudaBackend.ptr;

import org.longexposure.backend.LinearOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.backend.OpShapes.LinearDims;
import org.longexposure.cuda.blas.CublasGemm;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Linear layers on cuBLASLt, as {@code torch.nn.Linear}: {@code y = x·Wᵀ + b} with W (N, K), x (M, K), y (M, N),
 * M = rows of x (leading dimensions flattened). Dtypes on this backend:
 * <ul>
 *   <li>x, y, dOut, dInp: BF16 (activations); products accumulate in fp32 and round once into BF16.</li>
 *   <li>W: BF16 (frozen) or F32 (a trainable LoRA matrix, N·K small): an F32 weight is read through its BF16
 *       shadow ({@link Bf16Shadows}: rounded once, again only after the F32 value changes), so both GEMM operands
 *       are BF16.</li>
 *   <li>b: F32 (or BF16), added in the GEMM's fp32 epilogue. cuBLASLt takes only a bias of the output's dtype
 *       (see {@link CublasGemm}), so an F32 bias is read through its BF16 shadow likewise; the sum itself is still
 *       formed in fp32 and rounded once.</li>
 *   <li>accumulate (linearForward, linearForwardScaled, linearBackwardInput): beta = 1, the old output is read in
 *       the epilogue and the sum rounded once; no separate pass over the output.</li>
 *   <li>residual (linearForwardResidual, linearForwardScaledResidual): beta = 1 with cuBLASLt's C = the residual
 *       and D = out, so {@code x·Wᵀ + b + residual} is formed in fp32 and rounded once, in the pass that writes
 *       out.</li>
 *   <li>dWeight, dBias: F32, accumulated ({@code +=}): dWeight by the GEMM with beta = 1 into an F32 output,
 *       dBias by the deterministic column sum {@code column_sum_bf16}.</li>
 * </ul>
 * {@code linearForwardRelu} applies the ReLU in the same epilogue, after the bias, in fp32 (rounding commutes with
 * max(x, 0), so the values equal linearForward followed by the ReLU kernel). Nothing is saved for backward here:
 * the caller keeps x.
 */
final class CudaLinear implements LinearOps {
    private final CudaBackend backend;
    private final CublasGemm gemm;
    private final Bf16Shadows shadows;

    CudaLinear(CudaBackend backend) {
        this.backend = backend;
        this.gemm = backend.gemm();
        this.shadows = backend.shadows();
    }

    /** With {@code accumulate} the GEMM runs with beta = 1: out is read in the epilogue, out + x·Wᵀ + b rounded once. */
    @Override
    public void linearForward(Tensor out, Tensor inp, Tensor weight, Tensor bias, boolean accumulate) {
        forward(out, inp, weight, bias, false, accumulate ? out : null, "linearForward");
    }

    /** One GEMM with beta = 1 reading C = residual, writing D = out: x·Wᵀ + b + residual rounded once. */
    @Override
    public void linearForwardResidual(Tensor out, Tensor inp, Tensor weight, Tensor bias, Tensor residual) {
        forward(out, inp, weight, bias, false, residual, "linearForwardResidual");
    }

    /** As linearForward with cuBLASLt's RELU_BIAS (or RELU) epilogue: max(x, 0) in fp32 before the rounding. */
    @Override
    public void linearForwardRelu(Tensor out, Tensor inp, Tensor weight, Tensor bias) {
        forward(out, inp, weight, bias, true, null, "linearForwardRelu");
    }

    /** {@code out = x·Wᵀ + b (+ residual)}; residual null overwrites, residual = out accumulates in place. */
    private void forward(Tensor out, Tensor inp, Tensor weight, Tensor bias, boolean relu, Tensor residual,
                         String op) {
        LinearDims d = OpShapes.linear(op, out, inp, weight, DType.BF16);
        if (residual != null) {
            OpShapes.linearResidual(op, residual, d, DType.BF16);
        }
        long w = weightBf16(weight);
        long b = 0;
        if (bias != null) {
            bias.requireShape(op + " bias", d.n());
            b = switch (bias.dtype()) {
                case BF16 -> ptr(bias);
                case F32 -> shadows.of(bias);
                default -> throw new IllegalArgumentException(op + " bias: dtype " + bias.dtype()
                        + " not supported (f32 or bf16)");
            };
        }
        product(false, true, d.m(), d.n(), d.k(), 1f, ptr(inp), d.k(), w, d.k(), residual != null ? 1f : 0f,
                residual != null ? ptr(residual) : ptr(out), ptr(out), d.n(), b, DType.BF16, relu);
    }

    @Override
    public void linearForwardScaled(Tensor out, Tensor inp, Tensor weight, float alpha, boolean accumulate) {
        LinearDims d = OpShapes.linear("linearForwardScaled", out, inp, weight, DType.BF16);
        long w = weightBf16(weight);
        product(false, true, d.m(), d.n(), d.k(), alpha, ptr(inp), d.k(), w, d.k(), accumulate ? 1f : 0f, ptr(out),
                ptr(out), d.n(), 0, null, false);
    }

    /** One GEMM with beta = 1 reading C = residual, writing D = out: alpha·x·Wᵀ + residual rounded once. */
    @Override
    public void linearForwardScaledResidual(Tensor out, Tensor inp, Tensor weight, float alpha, Tensor residual) {
        String op = "linearForwardScaledResidual";
        LinearDims d = OpShapes.linear(op, out, inp, weight, DType.BF16);
        if (residual != null) {
            OpShapes.linearResidual(op, residual, d, DType.BF16);
        }
        long w = weightBf16(weight);
        product(false, true, d.m(), d.n(), d.k(), alpha, ptr(inp), d.k(), w, d.k(), residual != null ? 1f : 0f,
                residual != null ? ptr(residual) : ptr(out), ptr(out), d.n(), 0, null, false);
    }

    @Override
    public void linearBackwardInput(Tensor dInp, Tensor dOut, Tensor weight, float alpha, boolean accumulate) {
        LinearDims d = OpShapes.linear("linearBackwardInput", dOut, dInp, weight, DType.BF16);
        long w = weightBf16(weight);
        // dInp (M, K) (+)= alpha · dOut (M, N) · W (N, K)
        product(false, false, d.m(), d.k(), d.n(), alpha, ptr(dOut), d.n(), w, d.k(), accumulate ? 1f : 0f,
                ptr(dInp), ptr(dInp), d.k(), 0, null, false);
    }

    @Override
    public void linearBackwardWeight(Tensor dWeight, Tensor dBias, Tensor dOut, Tensor inp, float alpha) {
        LinearDims d = OpShapes.linearBackwardWeight(dOut, inp, DType.BF16);
        inp.requireDType("linearBackwardWeight inp", DType.BF16);
        int m = d.m();
        int n = d.n();
        int k = d.k();
        shadows.wrote(dWeight);
        shadows.wrote(dBias);
        if (dWeight != null) {
            dWeight.requireShape("linearBackwardWeight dWeight", n, k).requireDType("linearBackwardWeight dWeight",
                    DType.F32);
            if (m > 0) {
                // dW (N, K) += alpha · dOutᵀ (N, M) · inp (M, K), in F32
                gemm.matmul(true, false, n, k, m, alpha, ptr(dOut), n, ptr(inp), k, 1f, ptr(dWeight), k, DType.F32,
                        0, null, false, backend.stream());
            }
        }
        if (dBias != null) {
            dBias.requireShape("linearBackwardWeight dBias", n).requireDType("linearBackwardWeight dBias", DType.F32);
            if (m > 0 && n > 0) {
                CudaFunction f = backend.kernels().function("linear", "column_sum_bf16");
                backend.stream().launch(f, ceilDiv(n, 32), 1, 1, 32, 8, 1, 0,
                        KernelArgs.of(dBias, dOut, alpha, m, n));
            }
        }
    }

    /**
     * LoRA's backward with its parameter products on the side stream: after {@link CudaBackend#fork()} the side
     * stream queues {@code dB += s·dYᵀ·xa}, {@code dXa = s·dY·B} and {@code dA += dXaᵀ·x} (on the side's cuBLASLt,
     * which has its own workspace) while the main stream queues the frozen {@code dInp (+)= dY·W}; after
     * {@link CudaBackend#join()} the main stream adds {@code dXa·A}. The skinny products use few CTAs; beside the
     * frozen product they run in its tail and between launches instead of after it. The bf16 shadows of A and B
     * are brought up to date on the main stream before the fork.
     */
    @Override
    public void loraLinearBackward(Tensor dInp, Tensor dOut, Tensor weight, boolean accumulate, Tensor dA,
                                   Tensor dB, Tensor dXa, Tensor inp, Tensor xa, Tensor a, Tensor b, float scale) {
        String op = "loraLinearBackward";
        LinearDims d = OpShapes.linear(op, dOut, dInp, weight, DType.BF16);   // M, N, K
        LinearDims low = OpShapes.linear(op, xa, inp, a, DType.BF16);        // M, R, K
        OpShapes.linear(op, dOut, dXa, b, DType.BF16);                        // M, N, R
        if (low.m() != d.m() || low.k() != d.k()) {
            throw new IllegalArgumentException(op + ": inp " + inp.shape() + " does not match dInp " + dInp.shape());
        }
        int m = d.m();
        int n = d.n();
        int k = d.k();
        int r = low.n();
        dA.requireShape(op + " dA", r, k).requireDType(op + " dA", DType.F32);
        dB.requireShape(op + " dB", n, r).requireDType(op + " dB", DType.F32);
        long w = weightBf16(weight);
        long aS = weightBf16(a);
        long bS = weightBf16(b);
        shadows.wrote(dA);
        shadows.wrote(dB);
        if (m == 0) {
            return;
        }
        CudaStream side = backend.sideStream();
        CublasGemm sideGemm = backend.sideGemm();
        backend.fork();
        // dB (N, R) += s · dYᵀ (N, M) · xa (M, R), F32
        sideGemm.matmul(true, false, n, r, m, scale, ptr(dOut), n, ptr(xa), r, 1f, ptr(dB), r, DType.F32, 0, null,
                false, side);
        // dXa (M, R) = s · dY (M, N) · B (N, R)
        sideGemm.matmul(false, false, m, r, n, scale, ptr(dOut), n, bS, r, 0f, ptr(dXa), ptr(dXa), r, DType.BF16, 0,
                null, false, side);
        // dA (R, K) += dXaᵀ (R, M) · x (M, K), F32
        sideGemm.matmul(true, false, r, k, m, 1f, ptr(dXa), r, ptr(inp), k, 1f, ptr(dA), k, DType.F32, 0, null,
                false, side);
        // main: dInp (M, K) (+)= dY (M, N) · W (N, K), beside the products above
        product(false, false, m, k, n, 1f, ptr(dOut), n, w, k, accumulate ? 1f : 0f, ptr(dInp), ptr(dInp), k, 0,
                null, false);
        backend.join();
        // dInp += dXa (M, R) · A (R, K)
        product(false, false, m, k, r, 1f, ptr(dXa), r, aS, k, 1f, ptr(dInp), ptr(dInp), k, 0, null, false);
    }

    /** Row-major {@code D = alpha·op(A)·op(B) + beta·C (+ bias, ReLU)}, C (m, n) at c with D's layout. */
    private void product(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b,
                         int ldb, float beta, long c, long d, int ldd, long bias, DType biasType, boolean relu) {
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            // an empty inner dimension: the product is zero, only beta and the bias act
            if (beta == 0f) {
                backend.stream().memsetD8(d, (byte) 0, (long) m * ldd * 2);
            } else if (c != d) {
                backend.stream().copyDeviceToDevice(d, c, (long) m * ldd * 2);
            }
            if (bias != 0) {
                throw new IllegalArgumentException("linear with K = 0 and a bias is not supported on cuda");
            }
            return;
        }
        gemm.matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, d, ldd, DType.BF16, bias, biasType,
                relu, backend.stream());
    }

    /** Device address of W as BF16: W itself, or the bf16 shadow of an F32 (trainable) weight. */
    private long weightBf16(Tensor weight) {
        return switch (weight.dtype()) {
            case BF16 -> ptr(weight);
            case F32 -> shadows.of(weight);
            default -> throw new IllegalArgumentException("linear weight: dtype " + weight.dtype()
                    + " not supported on cuda (bf16, or f32 for trainable weights)");
        };
    }

    private static int ceilDiv(long a, int b) {
        return Math.toIntExact((a + b - 1) / b);
    }
}
