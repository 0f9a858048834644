package org.longexposure.backend;

import java.lang.foreign.MemorySegment;
import java.util.function.IntConsumer;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * A compute backend: allocation plus one accessor per op family. A backend owns its threads (CPU) or its device
 * context (GPU) and frees them on {@link #close()}; tensors it allocated live until then.
 *
 * <p>Tensors a backend allocates may live in device memory: code outside the backend never reads or writes their
 * bytes directly ({@link Tensor#host()}, {@code getFloat}, {@code copyFrom}, ...) but goes through {@link #write}
 * and {@link #read} (or the {@link Tensors} helpers built on them).
 */
public interface Backend extends AutoCloseable {
    /** Short name used on the command line, e.g. {@code cpu}. */
    String name();

    /** Allocates a zero-filled tensor owned by this backend. */
    Tensor allocate(DType dtype, long... dims);

    /** Waits until all queued work has finished (a no-op on synchronous backends). */
    void sync();

    /**
     * The dtype of activations, activation gradients and logits on this backend (CPU: F32; CUDA: BF16). Saved
     * statistics (LayerNorm mean/rstd, log-sum-exps, per-row losses and weights) are F32 on every backend;
     * trainable parameters, their gradients and optimizer moments are F32; ids, positions and masks are I32.
     */
    DType activationDType();

    /**
     * Copies host bytes into {@code dst}, a tensor of this backend (or a view of one): {@code src} holds exactly
     * {@code dst.byteSize()} bytes in {@code dst}'s dtype, little-endian, row-major. {@code src} may be a native or
     * a heap segment, and the caller may free or reuse it as soon as this returns (an asynchronous backend copies
     * or waits before returning). Ordered after all work queued before it.
     *
     * @throws IllegalArgumentException if the sizes differ
     */
    void write(Tensor dst, MemorySegment src);

    /**
     * Copies the bytes of {@code src}, a tensor of this backend (or a view of one), into the host segment
     * {@code dst} of exactly {@code src.byteSize()} bytes. Synchronises: when this returns, all work queued before
     * it has finished and {@code dst} holds the data.
     *
     * @throws IllegalArgumentException if the sizes differ
     */
    void read(Tensor src, MemorySegment dst);

    /**
     * Takes over a frozen weight matrix or embedding table read from a checkpoint ({@code host}: a host tensor,
     * usually memory-mapped, F32/F16/BF16) and returns the tensor the ops should use. The CPU backend returns
     * {@code host} itself (read in place); a device backend uploads it, converting to its weight dtype (CUDA:
     * BF16). The result stays valid until the backend closes; {@code host} must stay mapped only as long as the
     * returned tensor may alias it (CPU: for the model's lifetime).
     *
     * @param name the weight's checkpoint name, for error messages
     */
    Tensor adoptWeight(Tensor host, String name);

    /**
     * Fills {@code t} (any float dtype) with counter-based uniform values: element {@code i} becomes
     * {@code low + (high - low) · u} with {@code u = }{@link Dropout#uniform}{@code (seed, i)}, evaluated in float
     * as written (a float subtraction, multiplication and addition, each rounded, no fused multiply-add) and then
     * rounded to nearest-even into {@code t}'s dtype. A pure function of (seed, index): the result does not depend
     * on threads or on the device. Used to build models with random weights (benchmarks, tests).
     */
    void fillUniform(Tensor t, float low, float high, long seed);

    /**
     * Runs {@code body(i)} for every i in [0, n) on this backend's host threads and returns when all are done: host
     * work between device calls that splits into independent items (the predictor refresh's per-head
     * factorisations). Each item must write only its own outputs, so the result does not depend on the threads.
     * Default: in order on the calling thread.
     */
    default void hostParallelFor(int n, IntConsumer body) {
        for (int i = 0; i < n; i++) {
            body.accept(i);
        }
    }

    LinearOps linear();

    AttentionOps attention();

    NormOps norm();

    ActivationOps activation();

    EmbeddingOps embedding();

    LossOps loss();

    OptimOps optim();

    SparseOps sparse();

    /** Applying fitted sparsity predictors on this backend (layouts built where the model runs). */
    PredictOps predict();

    @Override
    void close();
}
