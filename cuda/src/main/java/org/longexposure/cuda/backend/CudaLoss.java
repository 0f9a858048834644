package org.longexposure.cuda.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.longexposure.backend.LossOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Cross-entropy over the vocabulary on the GPU, as {@code torch.nn.functional.cross_entropy} with label smoothing
 * ε and per-row weights (kernels in {@code loss.cu}; CPU twin {@link org.longexposure.backend.cpu.CpuLoss}, same
 * formulas): logits (N, V) BF16 (any leading dims), losses, lse, weights (N) F32, targets (N) I32; lse is saved.
 *
 * <p>Forward: one block per row streams the BF16 row once (online max and sum in fp32, lse and the loss in
 * double), writes losses and lse, and the weighted row losses (N doubles, scratch) are added in a fixed order by
 * one single-block kernel into one device double, which is the only thing read back (one synchronisation). No
 * f32 copy of the logits is ever made. Rows with weight 0 give loss 0; their target is never read. A row with a
 * non-zero weight whose target lies outside [0, V) gets a NaN loss (targets live on the device, so they are not
 * checked on the host).
 *
 * <p>Backward: dLogits (BF16) = w·(softmax − ε/V − (1−ε)·onehot), written over the logits when dLogits is the same
 * tensor; rows with weight 0 get zeros.
 */
public final class CudaLoss implements LossOps {
    /** CE_THREADS, CE_BWD_THREADS, CE_BWD_CHUNK and CE_SUM_THREADS of loss.cu: the kernels require exactly these. */
    private static final int FORWARD_THREADS = 512;
    private static final int BACKWARD_THREADS = 256;
    private static final int BACKWARD_CHUNK = BACKWARD_THREADS * 8;
    private static final int SUM_THREADS = 1024;

    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final DeviceScratch scratch;
    private final Bf16Shadows shadows;

    public CudaLoss(CudaBackend backend) {
        this.shadows = backend.shadows();
        this.stream = backend.stream();
        this.kernels = backend.kernels();
        this.scratch = new DeviceScratch(backend.arena());
    }

    @Override
    public double crossEntropyForward(Tensor losses, Tensor lse, Tensor logits, Tensor targets, Tensor weights,
                                      float labelSmoothing) {
        String op = "crossEntropyForward";
        int v = checkLogits(op, logits);
        int n = OpShapes.toInt(op, "rows", logits.shape().rows());
        checkRowVector(op, "losses", losses, DType.F32, n, logits);
        checkRowVector(op, "lse", lse, DType.F32, n, logits);
        checkTargetsAndWeights(op, targets, weights, logits, n, labelSmoothing);
        shadows.wrote(losses);
        shadows.wrote(lse);
        if (n == 0) {
            return 0;
        }
        // scratch: [0, 8) the total, then N doubles of weighted row losses
        long base = scratch.address(8L * (n + 1));
        long total = base;
        long rowWeighted = base + 8;
        stream.launch(kernels.function("loss", "cross_entropy_forward_bf16"), n, 1, 1, FORWARD_THREADS, 1, 1, 0,
                KernelArgs.of(losses, lse, rowWeighted, logits, targets, weights, n, v, labelSmoothing));
        stream.launch(kernels.function("loss", "cross_entropy_total"), 1, 1, 1, SUM_THREADS, 1, 1, 0,
                KernelArgs.of(total, rowWeighted, n));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(ValueLayout.JAVA_DOUBLE);
            stream.copyDeviceToHost(host, total);
            stream.sync();
            return host.get(ValueLayout.JAVA_DOUBLE, 0);
        }
    }

    @Override
    public void crossEntropyBackward(Tensor dLogits, Tensor logits, Tensor lse, Tensor targets, Tensor weights,
                                     float labelSmoothing) {
        String op = "crossEntropyBackward";
        int v = checkLogits(op, logits);
        OpChecks.require(op, "dLogits", dLogits, DType.BF16);
        OpShapes.sameShape(op, "dLogits", dLogits, "logits", logits);
        int n = OpShapes.toInt(op, "rows", logits.shape().rows());
        checkRowVector(op, "lse", lse, DType.F32, n, logits);
        checkTargetsAndWeights(op, targets, weights, logits, n, labelSmoothing);
        if (n == 0) {
            return;
        }
        // the CPU's per-class constants, formed the same way
        float smoothPerClass = (float) ((double) labelSmoothing / v);
        float targetMass = 1f - labelSmoothing;
        int chunks = (v + BACKWARD_CHUNK - 1) / BACKWARD_CHUNK;
        stream.launch(kernels.function("loss", "cross_entropy_backward_bf16"), n, chunks, 1, BACKWARD_THREADS, 1,
                1, 0, KernelArgs.of(dLogits, logits, lse, targets, weights, n, v, smoothPerClass, targetMass));
    }

    private static int checkLogits(String op, Tensor logits) {
        OpChecks.require(op, "logits", logits, DType.BF16);
        return OpShapes.vocab(op, "logits", logits);
    }

    private static void checkRowVector(String op, String name, Tensor t, DType d, int n, Tensor logits) {
        OpChecks.require(op, name, t, d);
        OpShapes.numel(op, name, t, n, "(N) for logits of shape " + logits.shape());
    }

    private static void checkTargetsAndWeights(String op, Tensor targets, Tensor weights, Tensor logits, int n,
                                               float labelSmoothing) {
        checkRowVector(op, "targets", targets, DType.I32, n, logits);
        checkRowVector(op, "weights", weights, DType.F32, n, logits);
        if (!(labelSmoothing >= 0f && labelSmoothing <= 1f)) {
            throw new IllegalArgumentException(op + ": labelSmoothing must be in [0, 1], got " + labelSmoothing);
        }
    }
}
