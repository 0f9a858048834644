package org.longexposure.tensor;

import java.util.Arrays;

/** An immutable list of dimension sizes, outermost first (row-major). */
public final class Shape {
    private final long[] dims;
    private final long numel;

    private Shape(long[] dims) {
        long n = 1;
        for (long d : dims) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(dims));
            }
            n = Math.multiplyExact(n, d);
        }
        this.dims = dims;
        this.numel = n;
    }

    public static Shape of(long... dims) {
        return new Shape(dims.clone());
    }

    public int rank() {
        return dims.length;
    }

    public long dim(int i) {
        return dims[i < 0 ? dims.length + i : i];
    }

    /** Dimension {@code i} as an int (negative {@code i} counts from the end); fails if it does not fit. */
    public int idim(int i) {
        return Math.toIntExact(dim(i));
    }

    public long numel() {
        return numel;
    }

    public long[] dims() {
        return dims.clone();
    }

    /** Product of all dimensions but the last: the number of rows when the tensor is seen as a matrix. */
    public long rows() {
        long r = 1;
        for (int i = 0; i < dims.length - 1; i++) {
            r *= dims[i];
        }
        return r;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Shape s && Arrays.equals(dims, s.dims);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        return Arrays.toString(dims);
    }
}
