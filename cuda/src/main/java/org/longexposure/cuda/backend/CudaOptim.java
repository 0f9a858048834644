package org.longexposure.cuda.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.longexposure.backend.OpShapes;
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
 * <p>{@link #sumOfSquares(List)} queues one partial-sum kernel over the whole list into 256 fixed per-block double
 * slots (a device-independent layout; each tensor added onto the slots in list order, as one launch per tensor
 * would), then one final tree into a device double, and synchronises once to read it: the result depends only on
 * the data and the list order.
 *
 * <p>The list forms of AdamW, scale and zero are one launch each over a device table of the tensors' addresses
 * and sizes ({@link TensorTables}: built once per distinct list and cached, since a trainer passes the same
 * parameters every step).
 *
 * <p>Every op here writes F32 tensors and reports them to {@link Bf16Shadows}; the list form of AdamW also writes
 * the bf16 shadow of each parameter that has one (a LoRA matrix a GEMM reads), so the next forward reads the
 * updated value without a separate rounding launch.
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
    private final TensorTables tables;
    private final Bf16Shadows shadows;

    public CudaOptim(CudaBackend backend, CudaActivation pointwise) {
        this.tables = new TensorTables(backend);
        this.shadows = backend.shadows();
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
        OpShapes.sameShape(op, "grad", grad, "param", param);
        OpShapes.sameShape(op, "m", m, "param", param);
        OpShapes.sameShape(op, "v", v, "param", param);
        if (step < 1) {
            throw new IllegalArgumentException(op + ": step is 1-based, got " + step);
        }
        long n = param.numel();
        if (n == 0) {
            return;
        }
        shadows.wrote(param);
        shadows.wrote(m);
        shadows.wrote(v);
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

    /**
     * The whole list in one launch ({@code adamw_f32_multi}, grid (blocks, tensors)) from a cached device table
     * of (param, grad, m, v, n, bf16 shadow of param or 0); each element's update is the one-tensor kernel's, bit
     * for bit, and a parameter with a shadow gets bf16(p) written there too.
     */
    @Override
    public void adamwUpdate(List<Tensor> params, List<Tensor> grads, List<Tensor> m, List<Tensor> v, float lr,
                            float beta1, float beta2, float eps, float weightDecay, long step) {
        String op = "adamwUpdate";
        if (grads.size() != params.size() || m.size() != params.size() || v.size() != params.size()) {
            throw new IllegalArgumentException(op + ": lists of params, grads, m, v must have one length, got "
                    + params.size() + ", " + grads.size() + ", " + m.size() + ", " + v.size());
        }
        if (step < 1) {
            throw new IllegalArgumentException(op + ": step is 1-based, got " + step);
        }
        long[] entries = new long[6 * params.size()];
        long most = 0;
        for (int i = 0; i < params.size(); i++) {
            Tensor p = params.get(i);
            OpChecks.require(op, "params[" + i + "]", p, DType.F32);
            OpChecks.require(op, "grads[" + i + "]", grads.get(i), DType.F32);
            OpChecks.require(op, "m[" + i + "]", m.get(i), DType.F32);
            OpChecks.require(op, "v[" + i + "]", v.get(i), DType.F32);
            OpShapes.sameShape(op, "grads[" + i + "]", grads.get(i), "params[" + i + "]", p);
            OpShapes.sameShape(op, "m[" + i + "]", m.get(i), "params[" + i + "]", p);
            OpShapes.sameShape(op, "v[" + i + "]", v.get(i), "params[" + i + "]", p);
            entries[6 * i] = CudaBackend.ptr(p);
            entries[6 * i + 1] = CudaBackend.ptr(grads.get(i));
            entries[6 * i + 2] = CudaBackend.ptr(m.get(i));
            entries[6 * i + 3] = CudaBackend.ptr(v.get(i));
            entries[6 * i + 4] = p.numel();
            most = Math.max(most, p.numel());
        }
        if (most == 0) {
            return;
        }
        for (int i = 0; i < params.size(); i++) {
            shadows.wrote(m.get(i));
            shadows.wrote(v.get(i));
        }
        for (int i = 0; i < params.size(); i++) {
            // after all moments: a moment overlapping some parameter must not leave that parameter's shadow valid
            entries[6 * i + 5] = params.get(i).numel() == 0 ? 0 : shadows.refreshedByKernel(params.get(i));
        }
        float decay = (float) (1.0 - (double) lr * weightDecay);
        float oneMinusB1 = (float) (1.0 - beta1);
        float oneMinusB2 = (float) (1.0 - beta2);
        float stepSize = (float) (lr / (1.0 - StrictMath.pow(beta1, step)));
        float bc2Sqrt = (float) StrictMath.sqrt(1.0 - StrictMath.pow(beta2, step));
        int blocks = OpChecks.strideBlocks((most + 3) / 4, THREADS, MAX_BLOCKS);
        stream.launch(kernels.function("optim", "adamw_f32_multi"), blocks, params.size(), 1, THREADS, 1, 1, 0,
                KernelArgs.of(tables.address(entries), decay, beta1, beta2, oneMinusB1, oneMinusB2, stepSize,
                        bc2Sqrt, eps));
    }

    @Override
    public void scale(List<Tensor> ts, float factor) {
        spans("scale", ts, "scale_f32_multi", factor);
    }

    @Override
    public void zero(List<Tensor> ts) {
        spans("zero", ts, "zero_f32_multi", null);
    }

    /** One launch of {@code symbol} over a cached (data, n) table of the F32 tensors; grid (blocks, tensors). */
    private void spans(String op, List<Tensor> ts, String symbol, Float factor) {
        long[] entries = new long[2 * ts.size()];
        long most = 0;
        for (int i = 0; i < ts.size(); i++) {
            Tensor t = OpChecks.require(op, "ts[" + i + "]", ts.get(i), DType.F32);
            shadows.wrote(t);
            entries[2 * i] = CudaBackend.ptr(t);
            entries[2 * i + 1] = t.numel();
            most = Math.max(most, t.numel());
        }
        if (most == 0) {
            return;
        }
        int blocks = OpChecks.strideBlocks(most, THREADS, MAX_BLOCKS);
        long table = tables.address(entries);
        stream.launch(kernels.function("optim", symbol), blocks, ts.size(), 1, THREADS, 1, 1, 0,
                factor == null ? KernelArgs.of(table) : KernelArgs.of(table, factor.floatValue()));
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
        long[] entries = new long[2 * grads.size()];
        for (int i = 0; i < grads.size(); i++) {
            entries[2 * i] = CudaBackend.ptr(grads.get(i));
            entries[2 * i + 1] = grads.get(i).numel();
        }
        if (grads.isEmpty()) {
            stream.memsetD8(partials, (byte) 0, 8L * SUMSQ_BLOCKS);
        } else {
            // one pass over the whole list, each tensor added onto the slots in list order
            stream.launch(kernels.function("optim", "sum_squares_partial_f32_multi"), SUMSQ_BLOCKS, 1, 1,
                    SUMSQ_THREADS, 1, 1, 0, KernelArgs.of(partials, tables.address(entries), grads.size()));
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
        pointwise.scale(t, factor); // reports t to the shadows
    }

    @Override
    public void zero(Tensor t) {
        OpChecks.require("zero", "t", t, DType.F32);
        shadows.wrote(t);
        stream.memsetD8(CudaBackend.ptr(t), (byte) 0, t.byteSize());
    }
}
