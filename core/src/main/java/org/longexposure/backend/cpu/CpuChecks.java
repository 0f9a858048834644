package org.longexposure.backend.cpu;

import org.longexposure.backend.OpShapes;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The CPU backend's part of the argument checks: its tensors must be in host memory. Every op checks dtypes and
 * shapes on entry (the backend-independent checks are {@link OpShapes}') and fails with a message naming the
 * argument and both shapes, before any work starts.
 */
final class CpuChecks {
    private CpuChecks() {
    }

    /** Fails unless {@code t} is a non-null host tensor of dtype {@code d}. */
    static Tensor require(String op, String name, Tensor t, DType d) {
        OpShapes.dtype(op, name, t, d);
        if (!t.isHost()) {
            throw new IllegalArgumentException(op + ": " + name + " " + t + " is not in host memory");
        }
        return t;
    }
}
