package org.longexposure.cuda.backend;

import java.util.Arrays;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Argument checks shared by the CUDA op classes (norm, activation, embedding, loss, optim): every op checks
 * operands on the host before queueing any work and fails with an IllegalArgumentException naming the op, the
 * operand and what was expected.
 */
final class OpChecks {
    private OpChecks() {
    }

    /** Fails unless {@code t} is a non-null device tensor of one of {@code dtypes}. */
    static Tensor require(String op, String name, Tensor t, DType... dtypes) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + name + " must not be null");
        }
        if (Arrays.stream(dtypes).noneMatch(d -> d == t.dtype())) {
            throw new IllegalArgumentException(op + ": " + name + " must be "
                    + (dtypes.length == 1 ? dtypes[0] : "one of " + Arrays.toString(dtypes)) + ", got " + t);
        }
        if (!(t.storage() instanceof DeviceStorage)) {
            throw new IllegalArgumentException(op + ": " + name + " " + t + " is not in device memory");
        }
        return t;
    }

    /** As {@link #require}, or nothing when {@code t} is null (an optional operand). */
    static void optional(String op, String name, Tensor t, DType d, long numel, String expected) {
        if (t != null) {
            require(op, name, t, d);
            numel(op, name, t, numel, expected);
        }
    }

    static void sameShape(String op, String name, Tensor t, String refName, Tensor ref) {
        if (!t.shape().equals(ref.shape())) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + " but " + refName
                    + " has shape " + ref.shape() + "; they must match");
        }
    }

    static void sameDType(String op, String name, Tensor t, String refName, Tensor ref) {
        if (t.dtype() != ref.dtype()) {
            throw new IllegalArgumentException(op + ": " + name + " is " + t.dtype() + " but " + refName + " is "
                    + ref.dtype() + "; they must match");
        }
    }

    static void numel(String op, String name, Tensor t, long n, String expected) {
        if (t.numel() != n) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + " but must hold " + n
                    + " elements: " + expected);
        }
    }

    /** The row length of a (…, C) tensor. */
    static int lastDim(String op, String name, Tensor t) {
        if (t.shape().rank() == 0) {
            throw new IllegalArgumentException(op + ": " + name + " must have at least one dimension, got "
                    + t.shape());
        }
        return toInt(op, "last dimension of " + name, t.shape().dim(-1));
    }

    static int toInt(String op, String what, long n) {
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(op + ": " + what + " = " + n + " exceeds " + Integer.MAX_VALUE);
        }
        return (int) n;
    }

    /** Blocks for a grid-stride loop over {@code work} items, {@code threads} per block, capped. */
    static int strideBlocks(long work, int threads, int cap) {
        long b = (work + threads - 1) / threads;
        return (int) Math.max(1, Math.min(b, cap));
    }
}
