package org.longexposure.cuda.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.longexposure.backend.OptimOps;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Optimizer updates and gradient-norm reductions on the GPU over F32 tensors (elements flat; kernels in
 * {@code optim.cu}; CPU twin {@link org.longexposure.backend.cpu.CpuOptim}).
 *
 * <p>AdamW follows {@code torch.optim.AdamW} in CpuOptim's order, with the same scalars (1 − lr·wd, 1 − β1,
 * 1 − β2, lr/(1−β1^t), sqrt(1−β2^t)) formed here in double and rounded once to float, and per-element float math
 * with every operation correctly rounded: the update is meant to match the CPU bit for bit.
 *
 * <p>{@link #sumOfSquares(List)} queues one partial-sum kernel per tensor into 256 fixed per-block double slots
 * (a device-independent layout), then one final tree into a device double, and synchronises once to read it:
 * the result depends only on the data and the list order.
 */
public final class CudaOptim implements OptimOps {
    private static final int THREADS = 256;
    private static final int MAX_BLOCKS = 8192;
    /** SUMSQ_BLOCKS and SUMSQ_THREADS of optim.cu: the kernels require exactly these. */
    private static final int SUMSQ_BLOCKS = 256;
    private static final int SUMSQ_THREADS = 256;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final CudaActivation pointwise;
    private final DeviceScratch scratch;

    public CudaOptim(CudaBackend backend, CudaActivation pointwise) {
        this.stream = backend.stream();
        this.kernels = backend.kernels();
        this.pointwise = pointwise;
        this.scratch = new DeviceScratch(backend.arena());
    }

    @Override
    public void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                            float eps, float weightDecay, long step) {
        String op = "adamwUpdate";
        OpChecks.require(op, "param", param, DType.F32);
        OpChecks.require(op, "grad", grad, DType.F32);
        OpChecks.require(op, "m", m, DType.F32);
        OpChecks.require(op, "v", v, DType.F32);
        OpChecks.sameShape(op, "grad", grad, "param", param);
        OpChecks.sameShape(op, "m", m, "param", param);
        OpChecks.sameShape(op, "v", v, "param", param);
        if (step < 1) {
            throw new IllegalArgumentException(op + ": step is 1-based, got " + step);
        }
        long n = param.numel();
        if (n == 0) {
            return;
        }
        float decay = (float) (1.0 - (double) lr * weightDecay);
        float oneMinusB1 = (float) (1.0 - beta1);
        float oneMinusB2 = (float) (1.0 - beta2);
        float stepSize = (float) (lr / (1.0 - StrictMath.pow(beta1, step)));
        float bc2Sqrt = (float) StrictMath.sqrt(1.0 - StrictMath.pow(beta2, step));
        int blocks = OpChecks.strideBlocks((n + 3) / 4, THREADS, MAX_BLOCKS);
        stream.launch(kernels.function("optim", "adamw_f32"), blocks, 1, 1, THREADS, 1, 1, 0,
                KernelArgs.of(param, grad, m, v, n, decay, beta1, beta2, oneMinusB1, oneMinusB2, stepSize,
                        bc2Sqrt, eps));
    }

    @Override
    public double sumOfSquares(Tensor grad) {
        return sumOfSquares(List.of(grad));
    }

    /** Σ g² over every tensor of the list, in double; one synchronisation for the whole list. */
    @Override
    public double sumOfSquares(List<Tensor> grads) {
        String op = "sumOfSquares";
        for (int i = 0; i < grads.size(); i++) {
            OpChecks.require(op, "grads[" + i + "]", grads.get(i), DType.F32);
        }
        // scratch: [0, 8) the total, then SUMSQ_BLOCKS partial doubles
        long base = scratch.address(8L * (SUMSQ_BLOCKS + 1));
        long total = base;
        long partials = base + 8;
        stream.memsetD8(partials, (byte) 0, 8L * SUMSQ_BLOCKS);
        for (Tensor g : grads) {
            if (g.numel() > 0) {
                stream.launch(kernels.function("optim", "sum_squares_partial_f32"), SUMSQ_BLOCKS, 1, 1,
                        SUMSQ_THREADS, 1, 1, 0, KernelArgs.of(partials, g, g.numel()));
            }
        }
        stream.launch(kernels.function("optim", "sum_squares_final"), 1, 1, 1, SUMSQ_BLOCKS, 1, 1, 0,
                KernelArgs.of(total, partials));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(ValueLayout.JAVA_DOUBLE);
            stream.copyDeviceToHost(host, total);
            stream.sync();
            return host.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }

    @Override
    public void scale(Tensor t, float factor) {
        OpChecks.require("scale", "t", t, DType.F32);
        pointwise.scale(t, factor);
    }

    @Override
    public void zero(Tensor t) {
        OpChecks.require("zero", "t", t, DType.F32);
        stream.memsetD8(CudaBackend.ptr(t), (byte) 0, t.byteSize());
    }
}
