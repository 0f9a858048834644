package org.longexposure.backend;

import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * A compute backend: allocation plus one accessor per op family. A backend owns its threads (CPU) or its device
 * context (GPU) and frees them on {@link #close()}; tensors it allocated live until then.
 */
public interface Backend extends AutoCloseable {
    /** Short name used on the command line, e.g. {@code cpu}. */
    String name();

    /** Allocates a zero-filled tensor owned by this backend. */
    Tensor allocate(DType dtype, long... dims);

    /** Waits until all queued work has finished (a no-op on synchronous backends). */
    void sync();

    LinearOps linear();

    AttentionOps attention();

    NormOps norm();

    ActivationOps activation();

    EmbeddingOps embedding();

    LossOps loss();

    OptimOps optim();

    SparseOps sparse();

    @Override
    void close();
}
