package org.longexposure.backend.cpu;

import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Argument checks shared by the CPU op classes: every op checks dtypes and shapes on entry and fails with a
 * message naming the argument and both shapes, before any work starts.
 */
final class CpuChecks {
    private CpuChecks() {
    }

    /** Fails unless {@code t} is a non-null host tensor of dtype {@code d}. */
    static Tensor require(String op, String name, Tensor t, DType d) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + name + " must not be null");
        }
        if (t.dtype() != d) {
            throw new IllegalArgumentException(op + ": " + name + " must be " + d + ", got " + t);
        }
        if (!t.isHost()) {
            throw new IllegalArgumentException(op + ": " + name + " " + t + " is not in host memory");
        }
        return t;
    }

    /** Fails unless {@code t} has the same shape as {@code ref}. */
    static void sameShape(String op, String name, Tensor t, String refName, Tensor ref) {
        if (!t.shape().equals(ref.shape())) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + " but " + refName
                    + " has shape " + ref.shape() + "; they must match");
        }
    }

    /** Fails unless {@code t} holds exactly {@code n} elements, described by {@code expected}. */
    static void numel(String op, String name, Tensor t, long n, String expected) {
        if (t.numel() != n) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + " but must hold " + n
                    + " elements: " + expected);
        }
    }

    /** The row length C of a (…, C) tensor: its last dimension. */
    static int lastDim(String op, String name, Tensor t) {
        if (t.shape().rank() == 0) {
            throw new IllegalArgumentException(op + ": " + name + " must have at least one dimension, got "
                    + t.shape());
        }
        return t.shape().idim(-1);
    }

    /** {@code n} as an int, or an error naming what it counts. */
    static int toInt(String op, String what, long n) {
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(op + ": " + what + " = " + n + " exceeds " + Integer.MAX_VALUE);
        }
        return (int) n;
    }
}
