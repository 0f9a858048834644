package org.longexposure.backend;

import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Which FFN neuron blocks a sparse MLP computes, per token block: compressed sparse rows over the
 * {@code nTB = ceil(N / tokenBlock)} token blocks of the flattened (B·T) rows; token block {@code r} computes
 * neuron blocks {@code blockIdx[rowPtr[r] .. rowPtr[r+1])}, strictly ascending, each block being neurons
 * {@code [j·BN, (j+1)·BN)} of fc1's output (rows of W1, columns of W2). One token block spanning all rows is the
 * classic micro-batch union. The compacted hidden state has width {@code maxBlocks·BN}: token block r writes its
 * j-th listed block into columns {@code [j·BN, (j+1)·BN)} and leaves the rest zero. I32 tensors, on the backend.
 *
 * @param neuronBlock BN
 * @param tokenBlock  rows per token block
 * @param rows        N = B·T
 * @param maxBlocks   the widest row's block count (the compacted width is maxBlocks·BN)
 * @param rowPtr      (nTB + 1) I32
 * @param blockIdx    (nnz) I32, nnz ≥ 1 (at least one tensor element even when empty)
 */
public record NeuronLayout(int neuronBlock, int tokenBlock, int rows, int maxBlocks, Tensor rowPtr,
                           Tensor blockIdx) {
    public NeuronLayout {
        if (neuronBlock < 1 || tokenBlock < 1 || rows < 1 || maxBlocks < 0) {
            throw new IllegalArgumentException("neuron layout needs neuronBlock, tokenBlock, rows >= 1");
        }
        rowPtr.requireDType("NeuronLayout rowPtr", DType.I32);
        blockIdx.requireDType("NeuronLayout blockIdx", DType.I32);
        if (rowPtr.numel() != numTokenBlocks(rows, tokenBlock) + 1) {
            throw new IllegalArgumentException("NeuronLayout rowPtr: expected " + (numTokenBlocks(rows, tokenBlock)
                    + 1) + " entries, got " + rowPtr.numel());
        }
    }

    public int numTokenBlocks() {
        return numTokenBlocks(rows, tokenBlock);
    }

    static int numTokenBlocks(int rows, int tokenBlock) {
        return (rows + tokenBlock - 1) / tokenBlock;
    }
}
