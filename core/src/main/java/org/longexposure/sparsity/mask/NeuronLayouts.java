package org.longexposure.sparsity.mask;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.longexposure.backend.Backend;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Host-side builders of {@link NeuronLayout}s, the neuron-block masks of the sparse MLP (design note 4.3-4.4 and
 * 6.2): which FFN neuron blocks each token block of the flattened (N = B·T) rows computes. The layout is compressed
 * sparse rows over the {@code nTB = ceil(N / tokenBlock)} token blocks: rowPtr (nTB + 1) I32 and blockIdx (nnz) I32,
 * strictly ascending per token block, allocated on the given backend. With {@code nb = ceil(H / BN)} neuron blocks;
 * when BN does not divide H the last block is partial (neurons {@code [(nb-1)·BN, H)}).
 *
 * <p>Builders: {@link #full} (every block: the sparse MLP then equals the dense one), {@link #random} (a seeded
 * uniform subset of fixed size per token block, for tests and benchmarks), {@link #fromBooleans} (an explicit
 * mask, e.g. a thresholded predictor output). {@link #density} reports the fraction of (row, neuron) pairs a
 * layout computes.
 */
public final class NeuronLayouts {
    private NeuronLayouts() {
    }

    /** Neuron blocks of an FFN of width {@code ffn} in blocks of {@code neuronBlock}: ceil(H / BN). */
    public static int blockCount(int ffn, int neuronBlock) {
        requirePositive("ffn", ffn);
        requirePositive("neuronBlock", neuronBlock);
        return (int) ((ffn + (long) neuronBlock - 1) / neuronBlock);
    }

    /** Every token block lists every neuron block: the dense MLP. */
    public static NeuronLayout full(int rows, int tokenBlock, int ffn, int neuronBlock, Backend backend) {
        int nTB = tokenBlocks(rows, tokenBlock);
        int nb = blockCount(ffn, neuronBlock);
        boolean[][] keep = new boolean[nTB][nb];
        for (boolean[] row : keep) {
            Arrays.fill(row, true);
        }
        return fromBooleans(keep, rows, tokenBlock, ffn, neuronBlock, backend);
    }

    /**
     * Each token block lists {@code k = round(density·nb)} distinct neuron blocks (at least 1 when density > 0),
     * drawn uniformly without replacement (partial Fisher-Yates with {@code SplittableRandom(seed)}, token blocks in
     * order), listed ascending. The same seed gives the same layout.
     *
     * @param density fraction of neuron blocks per token block, in [0, 1]
     */
    public static NeuronLayout random(int rows, int tokenBlock, int ffn, int neuronBlock, double density, long seed,
                                      Backend backend) {
        if (!(density >= 0 && density <= 1)) {
            throw new IllegalArgumentException("neuron layout density must be in [0, 1], got " + density);
        }
        int nTB = tokenBlocks(rows, tokenBlock);
        int nb = blockCount(ffn, neuronBlock);
        int k = (int) Math.min(nb, Math.round(density * nb));
        if (density > 0) {
            k = Math.max(k, 1);
        }
        SplittableRandom random = new SplittableRandom(seed);
        boolean[][] keep = new boolean[nTB][nb];
        int[] order = new int[nb];
        for (int r = 0; r < nTB; r++) {
            for (int j = 0; j < nb; j++) {
                order[j] = j;
            }
            for (int i = 0; i < k; i++) {
                int pick = i + random.nextInt(nb - i);
                int t = order[i];
                order[i] = order[pick];
                order[pick] = t;
                keep[r][order[i]] = true;
            }
        }
        return fromBooleans(keep, rows, tokenBlock, ffn, neuronBlock, backend);
    }

    /**
     * The layout of an explicit mask: token block r lists neuron block j iff {@code keep[r][j]}; maxBlocks is the
     * largest count of a row.
     *
     * @param keep (nTB, nb) with nTB = ceil(rows / tokenBlock), nb = ceil(ffn / neuronBlock)
     */
    public static NeuronLayout fromBooleans(boolean[][] keep, int rows, int tokenBlock, int ffn, int neuronBlock,
                                            Backend backend) {
        int nTB = tokenBlocks(rows, tokenBlock);
        int nb = blockCount(ffn, neuronBlock);
        if (keep == null || keep.length != nTB) {
            throw new IllegalArgumentException("neuron mask must have one row per token block: " + rows + " rows in"
                    + " blocks of " + tokenBlock + " give " + nTB + ", got " + (keep == null ? "null" : keep.length));
        }
        int[] rowPtr = new int[nTB + 1];
        int maxBlocks = 0;
        for (int r = 0; r < nTB; r++) {
            if (keep[r] == null || keep[r].length != nb) {
                throw new IllegalArgumentException("neuron mask row " + r + " must have one entry per neuron block: "
                        + "H = " + ffn + " in blocks of " + neuronBlock + " give " + nb + ", got "
                        + (keep[r] == null ? "null" : keep[r].length));
            }
            int count = 0;
            for (boolean b : keep[r]) {
                count += b ? 1 : 0;
            }
            rowPtr[r + 1] = rowPtr[r] + count;
            maxBlocks = Math.max(maxBlocks, count);
        }
        // At least one element even when empty: a zero-size tensor has no storage on some backends.
        int[] blockIdx = new int[Math.max(1, rowPtr[nTB])];
        for (int r = 0; r < nTB; r++) {
            int e = rowPtr[r];
            for (int j = 0; j < nb; j++) {
                if (keep[r][j]) {
                    blockIdx[e++] = j;
                }
            }
        }
        Tensor ptr = backend.allocate(DType.I32, nTB + 1);
        Tensor idx = backend.allocate(DType.I32, blockIdx.length);
        Tensors.copyFrom(backend, ptr, rowPtr);
        Tensors.copyFrom(backend, idx, blockIdx);
        return new NeuronLayout(neuronBlock, tokenBlock, rows, maxBlocks, ptr, idx);
    }

    /**
     * The fraction of (row, neuron) pairs of an (N, H) FFN activation the layout computes: {@code Σ_r m_r·nS_r /
     * (N·H)} with m_r the rows of token block r and nS_r its listed neurons (a partial last block counts its real
     * neurons). 1 for {@link #full}. Reads the layout's tensors directly, so they must be in host memory; see
     * {@link #density(Backend, NeuronLayout, int)} for a layout on any backend.
     */
    public static double density(NeuronLayout layout, int ffn) {
        requirePositive("ffn", ffn);
        if (!layout.rowPtr().isHost() || !layout.blockIdx().isHost()) {
            throw new IllegalArgumentException("neuron layout density needs the layout in host memory, got rowPtr "
                    + layout.rowPtr() + " and blockIdx " + layout.blockIdx() + " on a device");
        }
        return density(layout, ffn, layout.rowPtr().host().toArray(ValueLayout.JAVA_INT_UNALIGNED),
                layout.blockIdx().host().toArray(ValueLayout.JAVA_INT_UNALIGNED));
    }

    /** {@link #density(NeuronLayout, int)} of a layout allocated on {@code backend}, read through it. */
    public static double density(Backend backend, NeuronLayout layout, int ffn) {
        requirePositive("ffn", ffn);
        return density(layout, ffn, Tensors.toInts(backend, layout.rowPtr()), Tensors.toInts(backend,
                layout.blockIdx()));
    }

    private static double density(NeuronLayout layout, int ffn, int[] rowPtr, int[] blockIdx) {
        int bn = layout.neuronBlock();
        int nb = blockCount(ffn, bn);
        double pairs = 0;
        for (int r = 0; r < layout.numTokenBlocks(); r++) {
            int m = (int) Math.min(layout.tokenBlock(), layout.rows() - (long) r * layout.tokenBlock());
            long neurons = 0;
            for (int e = rowPtr[r]; e < rowPtr[r + 1]; e++) {
                int j = blockIdx[e];
                if (j < 0 || j >= nb) {
                    throw new IllegalArgumentException("neuron layout blockIdx[" + e + "] = " + j + " is out of range"
                            + " for H = " + ffn + " in blocks of " + bn + " (" + nb + " blocks)");
                }
                neurons += Math.min(bn, ffn - (long) j * bn);
            }
            pairs += (double) m * neurons;
        }
        return pairs / ((double) layout.rows() * ffn);
    }

    private static int tokenBlocks(int rows, int tokenBlock) {
        requirePositive("rows", rows);
        requirePositive("tokenBlock", tokenBlock);
        return (int) ((rows + (long) tokenBlock - 1) / tokenBlock);
    }

    private static void requirePositive(String name, int v) {
        if (v < 1) {
            throw new IllegalArgumentException("neuron layout " + name + " must be >= 1, got " + v);
        }
    }
}
