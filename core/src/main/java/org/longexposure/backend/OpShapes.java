package org.longexposure.backend;

import java.util.Arrays;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The argument checks every backend's ops make alike, whatever memory their tensors live in: null and dtype,
 * equal shapes, element counts, the row length of a (…, C) tensor, int ranges, and the operand shapes of the linear,
 * embedding and loss families. Each fails with an IllegalArgumentException naming the op, the operand and what was
 * expected, before any work starts. What differs by backend stays with the backend: where a tensor must live (host
 * or device memory), alignment, and which dtypes its kernels take.
 */
public final class OpShapes {
    private OpShapes() {
    }

    /** The (M, N, K) of a linear product: y (M, N) = x (M, K) · Wᵀ with W (N, K), M the rows of x. */
    public record LinearDims(int m, int n, int k) {
    }

    /** Fails unless {@code t} is non-null and of one of {@code dtypes}; returns {@code t}. */
    public static Tensor dtype(String op, String name, Tensor t, DType... dtypes) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + name + " must not be null");
        }
        if (Arrays.stream(dtypes).noneMatch(d -> d == t.dtype())) {
            throw new IllegalArgumentException(op + ": " + name + " must be "
                    + (dtypes.length == 1 ? dtypes[0] : "one of " + Arrays.toString(dtypes)) + ", got " + t);
        }
        return t;
    }

    /** Fails unless {@code t} has the same shape as {@code ref}. */
    public static void sameShape(String op, String name, Tensor t, String refName, Tensor ref) {
        if (!t.shape().equals(ref.shape())) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + " but " + refName
                    + " has shape " + ref.shape() + "; they must match");
        }
    }

    /** Fails unless {@code t} holds exactly {@code n} elements, described by {@code expected}. */
    public static void numel(String op, String name, Tensor t, long n, String expected) {
        if (t.numel() != n) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + " but must hold " + n
                    + " elements: " + expected);
        }
    }

    /** The row length C of a (…, C) tensor: its last dimension. */
    public static int lastDim(String op, String name, Tensor t) {
        if (t.shape().rank() == 0) {
            throw new IllegalArgumentException(op + ": " + name + " must have at least one dimension, got "
                    + t.shape());
        }
        return toInt(op, "last dimension of " + name, t.shape().dim(-1));
    }

    /** {@code n} as an int, or an error naming what it counts. */
    public static int toInt(String op, String what, long n) {
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(op + ": " + what + " = " + n + " exceeds " + Integer.MAX_VALUE);
        }
        return (int) n;
    }

    /** Fails unless the size {@code v} named {@code name} is at least 1. */
    public static void positive(String op, String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException(op + ": " + name + " must be >= 1, got " + v);
        }
    }

    /**
     * The operands of {@link LinearOps}' products: W (N, K) 2-D, the (M, N) operand y (out or dOut) and the (M, K)
     * operand x (inp or dInp) with matching last dimensions and as many rows, both of the activation dtype
     * {@code act}. The dtypes W may have are the backend's to check.
     */
    public static LinearDims linear(String op, Tensor y, Tensor x, Tensor w, DType act) {
        if (w.shape().rank() != 2) {
            throw new IllegalArgumentException(op + ": weight must be 2-D (N, K), got " + w.shape());
        }
        int n = w.shape().idim(0);
        int k = w.shape().idim(1);
        if (y.shape().idim(-1) != n || x.shape().idim(-1) != k || y.shape().rows() != x.shape().rows()) {
            throw new IllegalArgumentException(op + ": shapes do not match: out/dOut " + y.shape() + ", inp/dInp "
                    + x.shape() + ", weight " + w.shape() + " (expected (M, N), (M, K), (N, K))");
        }
        y.requireDType(op + " (M, N) operand", act);
        x.requireDType(op + " (M, K) operand", act);
        return new LinearDims(Math.toIntExact(y.shape().rows()), n, k);
    }

    /**
     * The residual of {@link LinearOps#linearForwardResidual} / {@code linearForwardScaledResidual}: as many rows as
     * out and out's width N, of the activation dtype {@code act}.
     */
    public static void linearResidual(String op, Tensor residual, LinearDims d, DType act) {
        if (residual.shape().rows() != d.m() || residual.shape().idim(-1) != d.n()) {
            throw new IllegalArgumentException(op + ": residual " + residual.shape() + " does not match out (M, N) = ("
                    + d.m() + ", " + d.n() + ")");
        }
        residual.requireDType(op + " residual", act);
    }

    /**
     * The operands of {@link LinearOps#linearBackwardWeight}: dOut (M, N) of the activation dtype {@code act} and
     * inp (M, K) with as many rows; the shapes dWeight (N, K) and dBias (N) must have follow from them. The dtypes
     * inp may have are the backend's to check.
     */
    public static LinearDims linearBackwardWeight(Tensor dOut, Tensor inp, DType act) {
        int m = Math.toIntExact(dOut.shape().rows());
        int n = dOut.shape().idim(-1);
        int k = inp.shape().idim(-1);
        dOut.requireDType("linearBackwardWeight dOut", act);
        if (inp.shape().rows() != m) {
            throw new IllegalArgumentException("linearBackwardWeight: dOut " + dOut.shape() + " and inp "
                    + inp.shape() + " have different row counts");
        }
        return new LinearDims(m, n, k);
    }

    /** The vocabulary size V of (…, V) logits: their last dimension, which must be at least 1. */
    public static int vocab(String op, String name, Tensor logits) {
        int v = lastDim(op, name, logits);
        if (v < 1) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + logits.shape()
                    + "; the vocabulary (last) dimension must be >= 1");
        }
        return v;
    }

    /** Fails unless the embedding table {@code name} is (V, C). */
    public static void embeddingTable(String op, String name, Tensor table) {
        if (table.shape().rank() != 2) {
            throw new IllegalArgumentException(op + ": " + name + " must be (V, C), got shape " + table.shape());
        }
    }

    /** Fails unless {@code t} is (…, C) with N rows: one row of C per id, C from the table's (V, C). */
    public static void embeddingRows(String op, String name, Tensor t, Tensor ids, int n, int c) {
        if (t.shape().rank() == 0 || t.shape().dim(-1) != c || t.shape().rows() != n) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shape() + ", expected (N, C) = ["
                    + n + ", " + c + "] from ids " + ids.shape() + " and the table's (V, C)");
        }
    }
}
