package org.longexposure.io.safetensors;

import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;

/**
 * One entry of a safetensors header: the tensor's name, dtype, shape, and where its bytes lie, as the byte range
 * {@code [begin, end)} relative to the start of the data section (the header's {@code data_offsets}). The bytes
 * are packed row-major, little-endian, {@code end - begin == shape.numel() * dtype.byteSize()}.
 */
public record TensorInfo(String name, DType dtype, Shape shape, long begin, long end) {

    /** The dimension sizes, outermost first (a copy). */
    public long[] dims() {
        return shape.dims();
    }

    public long numel() {
        return shape.numel();
    }

    /** Bytes the tensor occupies in the data section: {@code end - begin}. */
    public long byteSize() {
        return end - begin;
    }
}
