package org.longexposure.cuda.backend;

import org.longexposure.backend.NormOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * LayerNorm over the last dimension on the GPU, as {@code torch.nn.LayerNorm} (kernels in {@code layernorm.cu};
 * CPU twin {@link org.longexposure.backend.cpu.CpuNorm}, same formulas). inp/out/dOut/dInp (M, C) BF16 (any
 * leading dims, flattened to rows), weight and bias (C) F32 or null, saved mean and rstd (M) F32. Statistics
 * and sums are fp32; each output element is rounded once to BF16 (an accumulating dInp adds the old value in
 * fp32 before that rounding).
 *
 * <p>The row kernels run one warp per row. dWeight/dBias (F32, optional, null in LoRA training) use a
 * deterministic two-kernel reduction over fixed row chunks with a scratch of 2·chunks·C floats, and are queued
 * before dInp is written, so dInp may be dOut's buffer when not accumulating.
 */
public final class CudaNorm implements NormOps {
    /** Warps (rows) per block of the row kernels: LN_WARPS in layernorm.cu. */
    private static final int ROW_WARPS = 4;
    private static final int PARAM_THREADS = 256;
    /** At most this many row chunks in the parameter-gradient partials (bounds the scratch to 2·128·C floats). */
    private static final int MAX_CHUNKS = 128;
    private static final int MIN_CHUNK_ROWS = 16;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final DeviceScratch partials;
    private final Bf16Shadows shadows;

    public CudaNorm(CudaBackend backend) {
        this.shadows = backend.shadows();
        this.stream = backend.stream();
        this.kernels = backend.kernels();
        this.partials = new DeviceScratch(backend.arena());
    }

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias,
                                 float eps) {
        String op = "layerNormForward";
        OpChecks.require(op, "inp", inp, DType.BF16);
        OpChecks.require(op, "out", out, DType.BF16);
        OpShapes.sameShape(op, "out", out, "inp", inp);
        int c = OpShapes.lastDim(op, "inp", inp);
        int m = OpShapes.toInt(op, "rows", inp.shape().rows());
        checkRowVector(op, "mean", mean, m, inp);
        checkRowVector(op, "rstd", rstd, m, inp);
        shadows.wrote(mean);
        shadows.wrote(rstd);
        OpChecks.optional(op, "weight", weight, DType.F32, c, "(C) for inp of shape " + inp.shape());
        OpChecks.optional(op, "bias", bias, DType.F32, c, "(C) for inp of shape " + inp.shape());
        if (c == 0 || m == 0) {
            return;
        }
        stream.launch(kernels.function("layernorm", "layernorm_forward_bf16"), rowBlocks(m), 1, 1,
                32 * ROW_WARPS, 1, 1, 0,
                KernelArgs.of(out, mean, rstd, inp, ptrOrNull(weight), ptrOrNull(bias), m, c, eps));
    }

    @Override
    public void layerNormBackward(Tensor dInp, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor inp, Tensor mean,
                                  Tensor rstd, Tensor weight, boolean accumulate) {
        String op = "layerNormBackward";
        OpChecks.require(op, "inp", inp, DType.BF16);
        OpChecks.require(op, "dOut", dOut, DType.BF16);
        OpChecks.require(op, "dInp", dInp, DType.BF16);
        OpShapes.sameShape(op, "dOut", dOut, "inp", inp);
        OpShapes.sameShape(op, "dInp", dInp, "inp", inp);
        int c = OpShapes.lastDim(op, "inp", inp);
        int m = OpShapes.toInt(op, "rows", inp.shape().rows());
        checkRowVector(op, "mean", mean, m, inp);
        checkRowVector(op, "rstd", rstd, m, inp);
        String param = "(C) for inp of shape " + inp.shape();
        OpChecks.optional(op, "weight", weight, DType.F32, c, param);
        OpChecks.optional(op, "dWeight", dWeight, DType.F32, c, param);
        OpChecks.optional(op, "dBias", dBias, DType.F32, c, param);
        shadows.wrote(dWeight);
        shadows.wrote(dBias);
        if (c == 0 || m == 0) {
            return;
        }
        if (dWeight != null || dBias != null) {
            int chunkRows = Math.max(MIN_CHUNK_ROWS, (m + MAX_CHUNKS - 1) / MAX_CHUNKS);
            int chunks = (m + chunkRows - 1) / chunkRows;
            long part = (long) chunks * c * Float.BYTES;
            long base = partials.address(2 * part);
            long partW = dWeight == null ? 0L : base;
            long partB = dBias == null ? 0L : base + part;
            int colBlocks = (c + PARAM_THREADS - 1) / PARAM_THREADS;
            stream.launch(kernels.function("layernorm", "layernorm_param_grad_partial"), colBlocks, chunks, 1,
                    PARAM_THREADS, 1, 1, 0, KernelArgs.of(partW, partB, dOut, inp, mean, rstd, m, c, chunkRows));
            stream.launch(kernels.function("layernorm", "layernorm_param_grad_reduce"), colBlocks, 1, 1,
                    PARAM_THREADS, 1, 1, 0,
                    KernelArgs.of(ptrOrNull(dWeight), ptrOrNull(dBias), partW, partB, chunks, c));
        }
        stream.launch(kernels.function("layernorm", "layernorm_backward_bf16"), rowBlocks(m), 1, 1,
                32 * ROW_WARPS, 1, 1, 0,
                KernelArgs.of(dInp, dOut, inp, mean, rstd, ptrOrNull(weight), m, c, accumulate ? 1 : 0));
    }

    private static int rowBlocks(int m) {
        return (m + ROW_WARPS - 1) / ROW_WARPS;
    }

    private static long ptrOrNull(Tensor t) {
        return t == null ? 0L : CudaBackend.ptr(t);
    }

    private static void checkRowVector(String op, String name, Tensor t, int m, Tensor inp) {
        OpChecks.require(op, name, t, DType.F32);
        OpShapes.numel(op, name, t, m, "(M) for inp of shape " + inp.shape());
    }
}
