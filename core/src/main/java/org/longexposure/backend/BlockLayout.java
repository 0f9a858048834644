package org.longexposure.backend;

import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Which (query-block, key-block) tiles of causal attention to compute, per head, shared by every sequence of the
 * micro-batch (the union over the batch that Long Exposure's predictor chooses). Compressed sparse rows over
 * the NH·nQB query-block rows, row {@code h·nQB + i}: key blocks {@code colIdx[rowPtr[r] .. rowPtr[r+1])}, strictly
 * ascending, each ≤ i (causal). Tiles are {@code blockSize × blockSize} tokens; the last block of a sequence may
 * be partial ({@code nQB = ceil(T / blockSize)}). Within the diagonal tile the element-level causal mask applies;
 * keys of unlisted tiles are masked out. Both tensors are I32 and live where the backend computes, so a layout
 * can be rebuilt on the device every step.
 *
 * @param blockSize BQ = BK, in tokens
 * @param numHeads  NH
 * @param seqLen    T
 * @param rowPtr    (NH·nQB + 1) I32
 * @param colIdx    (nnz) I32, nnz ≥ 1 (at least one tensor element even when empty)
 */
public record BlockLayout(int blockSize, int numHeads, int seqLen, Tensor rowPtr, Tensor colIdx) {
    public BlockLayout {
        if (blockSize < 1 || numHeads < 1 || seqLen < 1) {
            throw new IllegalArgumentException("block layout needs blockSize, numHeads, seqLen >= 1");
        }
        rowPtr.requireDType("BlockLayout rowPtr", DType.I32);
        colIdx.requireDType("BlockLayout colIdx", DType.I32);
        if (rowPtr.numel() != (long) numHeads * blocks(seqLen, blockSize) + 1) {
            throw new IllegalArgumentException("BlockLayout rowPtr: expected " + ((long) numHeads
                    * blocks(seqLen, blockSize) + 1) + " entries, got " + rowPtr.numel());
        }
    }

    /** nQB = nKB = ceil(T / blockSize). */
    public int numBlocks() {
        return blocks(seqLen, blockSize);
    }

    static int blocks(int t, int b) {
        return (t + b - 1) / b;
    }
}
