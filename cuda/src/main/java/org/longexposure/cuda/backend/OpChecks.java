package org.longexposure.cuda.backend;

import org.longexposure.backend.OpShapes;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The CUDA backend's part of the argument checks shared by its op classes (norm, activation, embedding, loss,
 * optim): its tensors must be in device memory. Every op checks operands on the host before queueing any work (the
 * backend-independent checks are {@link OpShapes}') and fails with an IllegalArgumentException naming the op, the
 * operand and what was expected.
 */
final class OpChecks {
    private OpChecks() {
    }

    /** Fails unless {@code t} is a non-null device tensor of one of {@code dtypes}. */
    static Tensor require(String op, String name, Tensor t, DType... dtypes) {
        OpShapes.dtype(op, name, t, dtypes);
        if (!(t.storage() instanceof DeviceStorage)) {
            throw new IllegalArgumentException(op + ": " + name + " " + t + " is not in device memory");
        }
        return t;
    }

    /** As {@link #require}, or nothing when {@code t} is null (an optional operand). */
    static void optional(String op, String name, Tensor t, DType d, long numel, String expected) {
        if (t != null) {
            require(op, name, t, d);
            OpShapes.numel(op, name, t, numel, expected);
        }
    }

    /** Blocks for a grid-stride loop over {@code work} items, {@code threads} per block, capped. */
    static int strideBlocks(long work, int threads, int cap) {
        long b = (work + threads - 1) / threads;
        return (int) Math.max(1, Math.min(b, cap));
    }
}
