package org.longexposure.cuda.backend;

import org.longexposure.backend.Activation;
import org.longexposure.backend.ActivationOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Pointwise ops on the GPU over same-shaped tensors (elements flat; kernels in {@code elementwise.cu}; CPU twin
 * {@link org.longexposure.backend.cpu.CpuActivation}, same formulas): activations and their backward on BF16,
 * residual add/accumulate and inverted dropout on BF16 or F32 (all operands one dtype), plus two helpers on the
 * same kernels: {@link #scale} and {@link #convert} (F32 ↔ BF16). Every F32 output is reported to
 * {@link Bf16Shadows}.
 * Math is fp32 and every output element is rounded once; dropout's mask is the bit-exact device port of
 * {@link org.longexposure.backend.Dropout}. Aliasing means passing the same tensor (same storage and offset):
 * every element is read by the thread that then writes it.
 */
public final class CudaActivation implements ActivationOps {
    private static final int THREADS = 256;
    /** Grid cap of the grid-stride loops: plenty of blocks per SM on any current GPU. */
    private static final int MAX_BLOCKS = 8192;
    /** Elements one thread moves per 16-byte access (bf16); f32 moves 4, the grid is sized for 8 either way. */
    private static final int PER_THREAD = 8;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final Bf16Shadows shadows;

    public CudaActivation(CudaBackend backend) {
        this.stream = backend.stream();
        this.kernels = backend.kernels();
        this.shadows = backend.shadows();
    }

    @Override
    public void activationForward(Tensor out, Tensor inp, Activation act) {
        String op = "activationForward";
        OpChecks.require(op, "inp", inp, DType.BF16);
        OpChecks.require(op, "out", out, DType.BF16);
        OpShapes.sameShape(op, "out", out, "inp", inp);
        String symbol = switch (requireAct(op, act)) {
            case RELU -> "relu_forward_bf16";
            case GELU -> "gelu_forward_bf16";
            case GELU_TANH -> "gelu_tanh_forward_bf16";
        };
        launch(symbol, inp.numel(), KernelArgs.of(out, inp, inp.numel()));
    }

    @Override
    public void activationBackward(Tensor dInp, Tensor dOut, Tensor inp, Activation act) {
        String op = "activationBackward";
        OpChecks.require(op, "inp", inp, DType.BF16);
        OpChecks.require(op, "dOut", dOut, DType.BF16);
        OpChecks.require(op, "dInp", dInp, DType.BF16);
        OpShapes.sameShape(op, "dOut", dOut, "inp", inp);
        OpShapes.sameShape(op, "dInp", dInp, "inp", inp);
        String symbol = switch (requireAct(op, act)) {
            case RELU -> "relu_backward_bf16";
            case GELU -> "gelu_backward_bf16";
            case GELU_TANH -> "gelu_tanh_backward_bf16";
        };
        launch(symbol, inp.numel(), KernelArgs.of(dInp, dOut, inp, inp.numel()));
    }

    @Override
    public void addForward(Tensor out, Tensor a, Tensor b) {
        String op = "addForward";
        OpChecks.require(op, "a", a, DType.BF16, DType.F32);
        OpChecks.require(op, "b", b, a.dtype());
        OpChecks.require(op, "out", out, a.dtype());
        OpShapes.sameShape(op, "b", b, "a", a);
        OpShapes.sameShape(op, "out", out, "a", a);
        shadows.wrote(out);
        launch(suffixed("add", a.dtype()), a.numel(), KernelArgs.of(out, a, b, a.numel()));
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        String op = "accumulate";
        OpChecks.require(op, "dst", dst, DType.BF16, DType.F32);
        OpChecks.require(op, "src", src, dst.dtype());
        OpShapes.sameShape(op, "src", src, "dst", dst);
        shadows.wrote(dst);
        launch(suffixed("add", dst.dtype()), dst.numel(), KernelArgs.of(dst, dst, src, dst.numel()));
    }

    @Override
    public void dropoutForward(Tensor out, Tensor inp, float p, long seed) {
        dropout("dropoutForward", out, "out", inp, "inp", p, seed);
    }

    @Override
    public void dropoutBackward(Tensor dInp, Tensor dOut, float p, long seed) {
        dropout("dropoutBackward", dInp, "dInp", dOut, "dOut", p, seed);
    }

    private void dropout(String op, Tensor out, String outName, Tensor inp, String inpName, float p, long seed) {
        OpChecks.require(op, inpName, inp, DType.BF16, DType.F32);
        OpChecks.require(op, outName, out, inp.dtype());
        OpShapes.sameShape(op, outName, out, inpName, inp);
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException(op + ": p must be in [0, 1), got " + p);
        }
        // the CPU's scale, formed the same way in float
        float scale = 1f / (1f - p);
        shadows.wrote(out);
        launch(suffixed("dropout", inp.dtype()), inp.numel(), KernelArgs.of(out, inp, inp.numel(), p, scale, seed));
    }

    /** {@code t *= factor} in place, BF16 (rounded once) or F32. */
    public void scale(Tensor t, float factor) {
        OpChecks.require("scale", "t", t, DType.BF16, DType.F32);
        shadows.wrote(t);
        launch(suffixed("scale", t.dtype()), t.numel(), KernelArgs.of(t, t.numel(), factor));
    }

    /**
     * {@code dst = src} converted between F32 and BF16 (round to nearest-even, or the exact widening); same
     * shape. Used for the BF16 working copies of F32 parameters.
     */
    public void convert(Tensor dst, Tensor src) {
        String op = "convert";
        OpChecks.require(op, "src", src, DType.BF16, DType.F32);
        OpChecks.require(op, "dst", dst, src.dtype() == DType.F32 ? DType.BF16 : DType.F32);
        OpShapes.sameShape(op, "dst", dst, "src", src);
        String symbol = src.dtype() == DType.F32 ? "convert_f32_to_bf16" : "convert_bf16_to_f32";
        shadows.wrote(dst);
        launch(symbol, src.numel(), KernelArgs.of(dst, src, src.numel()));
    }

    private void launch(String symbol, long n, KernelArgs args) {
        if (n == 0) {
            return;
        }
        int blocks = OpChecks.strideBlocks((n + PER_THREAD - 1) / PER_THREAD, THREADS, MAX_BLOCKS);
        stream.launch(kernels.function("elementwise", symbol), blocks, 1, 1, THREADS, 1, 1, 0, args);
    }

    private static String suffixed(String stem, DType d) {
        return stem + (d == DType.BF16 ? "_bf16" : "_f32");
    }

    private static Activation requireAct(String op, Activation act) {
        if (act == null) {
            throw new IllegalArgumentException(op + ": act must not be null");
        }
        return act;
    }
}
