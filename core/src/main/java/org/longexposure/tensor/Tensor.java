package org.longexposure.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A dtype, a shape and the storage holding the elements, contiguous and row-major. No math lives here:
 * operations are backend op families. Views ({@link #view}, {@link #slice}) share storage.
 */
public final class Tensor {
    /** Host allocations are aligned to a cache line, which also suits every vector width. */
    public static final long HOST_ALIGNMENT = 64;

    private final DType dtype;
    private final Shape shape;
    private final Storage storage;
    private final long byteOffset;

    public Tensor(DType dtype, Shape shape, Storage storage, long byteOffset) {
        long need = Math.multiplyExact(shape.numel(), (long) dtype.byteSize());
        if (byteOffset < 0 || byteOffset + need > storage.byteSize()) {
            throw new IllegalArgumentException("tensor " + dtype + shape + " at byte " + byteOffset
                    + " does not fit its storage of " + storage.byteSize() + " bytes");
        }
        this.dtype = dtype;
        this.shape = shape;
        this.storage = storage;
        this.byteOffset = byteOffset;
    }

    /** Allocates a zero-filled host tensor whose lifetime is {@code arena}'s. */
    public static Tensor allocateHost(Arena arena, DType dtype, long... dims) {
        Shape shape = Shape.of(dims);
        long bytes = Math.max(1, shape.numel() * dtype.byteSize());
        return new Tensor(dtype, shape, new HostStorage(arena.allocate(bytes, HOST_ALIGNMENT)), 0);
    }

    /** Wraps a host segment (e.g. a memory-mapped safetensors region) without copying. */
    public static Tensor wrapHost(MemorySegment segment, DType dtype, long... dims) {
        return new Tensor(dtype, Shape.of(dims), new HostStorage(segment), 0);
    }

    public DType dtype() {
        return dtype;
    }

    public Shape shape() {
        return shape;
    }

    public Storage storage() {
        return storage;
    }

    public long byteOffset() {
        return byteOffset;
    }

    public long numel() {
        return shape.numel();
    }

    public long byteSize() {
        return shape.numel() * dtype.byteSize();
    }

    public boolean isHost() {
        return storage instanceof HostStorage;
    }

    /** This tensor's bytes as a host segment slice; fails for device tensors. */
    public MemorySegment host() {
        if (!(storage instanceof HostStorage hs)) {
            throw new IllegalStateException("tensor " + this + " is not in host memory");
        }
        return hs.segment().asSlice(byteOffset, byteSize());
    }

    /** The same elements seen with another shape of the same element count. */
    public Tensor view(long... dims) {
        Shape s = Shape.of(dims);
        if (s.numel() != shape.numel()) {
            throw new IllegalArgumentException("cannot view " + shape + " as " + s);
        }
        return new Tensor(dtype, s, storage, byteOffset);
    }

    /** Rows {@code [start, start+count)} of dimension 0, sharing storage. */
    public Tensor slice(long start, long count) {
        if (shape.rank() == 0 || start < 0 || count < 0 || start + count > shape.dim(0)) {
            throw new IndexOutOfBoundsException("slice [" + start + ", " + (start + count) + ") of " + shape);
        }
        long[] d = shape.dims();
        long rowBytes = shape.numel() == 0 ? 0 : byteSize() / d[0];
        d[0] = count;
        return new Tensor(dtype, Shape.of(d), storage, byteOffset + start * rowBytes);
    }

    /** Fails with a message naming {@code what} unless this tensor has exactly {@code dims}. */
    public Tensor requireShape(String what, long... dims) {
        if (!shape.equals(Shape.of(dims))) {
            throw new IllegalArgumentException(what + ": expected shape " + Shape.of(dims) + ", got " + shape);
        }
        return this;
    }

    /** Fails with a message naming {@code what} unless this tensor has dtype {@code d}. */
    public Tensor requireDType(String what, DType d) {
        if (dtype != d) {
            throw new IllegalArgumentException(what + ": expected dtype " + d + ", got " + dtype);
        }
        return this;
    }

    // --- element access for host tensors (slow path: tests, small vectors, conversions)

    /** Element {@code i} (flat index) of a host float tensor (F32, F16, BF16 or F64), as a float. */
    public float getFloat(long i) {
        MemorySegment s = storageSegment();
        long at = byteAt(i);
        return switch (dtype) {
            case F32 -> s.get(ValueLayout.JAVA_FLOAT_UNALIGNED, at);
            case F16 -> Float.float16ToFloat(s.get(ValueLayout.JAVA_SHORT_UNALIGNED, at));
            case BF16 -> Float.intBitsToFloat(((int) s.get(ValueLayout.JAVA_SHORT_UNALIGNED, at)) << 16);
            case F64 -> (float) s.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, at);
            default -> throw new IllegalStateException("getFloat on " + dtype + " tensor");
        };
    }

    /** Sets element {@code i} of a host F32 tensor. */
    public void setFloat(long i, float v) {
        requireDType("setFloat", DType.F32);
        storageSegment().set(ValueLayout.JAVA_FLOAT_UNALIGNED, byteAt(i), v);
    }

    public int getInt(long i) {
        requireDType("getInt", DType.I32);
        return storageSegment().get(ValueLayout.JAVA_INT_UNALIGNED, byteAt(i));
    }

    public void setInt(long i, int v) {
        requireDType("setInt", DType.I32);
        storageSegment().set(ValueLayout.JAVA_INT_UNALIGNED, byteAt(i), v);
    }

    /**
     * The whole host segment behind this tensor: element access addresses it directly instead of slicing a view
     * per element (these accessors run in loops over whole weight matrices, e.g. in merge).
     */
    private MemorySegment storageSegment() {
        if (!(storage instanceof HostStorage hs)) {
            throw new IllegalStateException("tensor " + this + " is not in host memory");
        }
        return hs.segment();
    }

    /** Byte position of flat element {@code i} in the storage segment, checked against this view's bounds. */
    private long byteAt(long i) {
        if (i < 0 || i >= shape.numel()) {
            throw new IndexOutOfBoundsException("element " + i + " of tensor " + this);
        }
        return byteOffset + i * dtype.byteSize();
    }

    /** All elements of a host float tensor converted to a new float array (tests, small tensors). */
    public float[] toFloatArray() {
        float[] out = new float[Math.toIntExact(numel())];
        if (dtype == DType.F32) {
            MemorySegment.copy(host(), ValueLayout.JAVA_FLOAT_UNALIGNED, 0, out, 0, out.length);
        } else {
            for (int i = 0; i < out.length; i++) {
                out[i] = getFloat(i);
            }
        }
        return out;
    }

    /** Copies {@code src} into this host F32 tensor; lengths must match. */
    public Tensor copyFrom(float[] src) {
        requireDType("copyFrom", DType.F32);
        if (src.length != numel()) {
            throw new IllegalArgumentException("copyFrom: " + src.length + " values into " + shape);
        }
        MemorySegment.copy(src, 0, host(), ValueLayout.JAVA_FLOAT_UNALIGNED, 0, src.length);
        return this;
    }

    /** Copies {@code src} into this host I32 tensor; lengths must match. */
    public Tensor copyFrom(int[] src) {
        requireDType("copyFrom", DType.I32);
        if (src.length != numel()) {
            throw new IllegalArgumentException("copyFrom: " + src.length + " values into " + shape);
        }
        MemorySegment.copy(src, 0, host(), ValueLayout.JAVA_INT_UNALIGNED, 0, src.length);
        return this;
    }

    @Override
    public String toString() {
        return dtype + "" + shape;
    }
}
