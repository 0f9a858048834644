package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import org.longexposure.tensor.DType;

/**
 * A strided view of a logical (rows, cols) matrix inside a host segment, for {@link CpuGemm}. Element (r, c) is at
 * element index {@code offset + r·rowStride + c·colStride}. Transposes are expressed by swapping strides.
 *
 * @param segment   host memory
 * @param dtype     F32, F16 or BF16 (converted to F32 while packing)
 * @param offset    element offset of (0, 0)
 * @param rowStride element distance between rows
 * @param colStride element distance between columns
 */
public record MatrixRef(MemorySegment segment, DType dtype, long offset, long rowStride, long colStride) {
    /** Row-major (rows, ld) matrix starting at element {@code offset}. */
    public static MatrixRef rowMajor(MemorySegment segment, DType dtype, long offset, long ld) {
        return new MatrixRef(segment, dtype, offset, ld, 1);
    }

    /** The transpose of this view. */
    public MatrixRef transpose() {
        return new MatrixRef(segment, dtype, offset, colStride, rowStride);
    }
}
