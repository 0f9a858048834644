package org.longexposure.sparsity.mask;

import java.lang.foreign.ValueLayout;
import java.util.Objects;
import java.util.SplittableRandom;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Host-side builders of attention {@link BlockLayout}s (CSR over the NH·nQB query-block rows, key blocks ascending
 * and causal), for tests, benchmarks and the predictors' thresholding: the full causal layout, seeded random ones
 * (with the diagonal and the attention-sink column 0 optionally forced, as section 4.2 of the design note
 * recommends), and layouts from a boolean tile grid {@code keep[h][qb][kb]}. {@link #density} is the fraction of
 * the causal tiles a layout lists, nQB·(nQB+1)/2 per head, the measure the predictors' caps and reports use.
 *
 * <p>The tensors are allocated with {@code backend.allocate(DType.I32, ...)} and filled from host arrays through
 * {@link Backend#write}, so they may live on a device. {@link #toBooleans} and {@link #density} read a layout back:
 * the overloads without a backend read host tensors directly, those with one read through it. colIdx has at least
 * one element even when the layout lists no tile.
 */
public final class BlockLayouts {
    private BlockLayouts() {
    }

    /** Every causal tile of every head: row qb lists key blocks 0..qb. Equals dense causal attention. */
    public static BlockLayout full(int numHeads, int T, int blockSize, Backend backend) {
        int nQB = blocks("full", numHeads, T, blockSize);
        boolean[][][] keep = new boolean[numHeads][nQB][nQB];
        for (boolean[][] head : keep) {
            for (int qb = 0; qb < nQB; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    head[qb][kb] = true;
                }
            }
        }
        return fromBooleans(keep, T, blockSize, backend);
    }

    /**
     * A seeded random causal layout: per head, the forced tiles (the diagonal if {@code keepDiagonal}, key block 0
     * of every row if {@code keepFirstColumn}) plus a uniformly drawn subset of the other causal tiles, together
     * {@code max(forced, round(density · nQB·(nQB+1)/2))} tiles, so {@link #density} is {@code density} up to
     * rounding unless the forced tiles alone exceed it. Heads draw independently from one stream seeded by
     * {@code seed}: the same arguments give the same layout.
     *
     * @param density the fraction of causal tiles to list, in [0, 1]
     */
    public static BlockLayout random(int numHeads, int T, int blockSize, double density, long seed,
                                     boolean keepDiagonal, boolean keepFirstColumn, Backend backend) {
        int nQB = blocks("random", numHeads, T, blockSize);
        if (!(density >= 0 && density <= 1)) {
            throw new IllegalArgumentException("random block layout: density must be in [0, 1], got " + density);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        int causal = nQB * (nQB + 1) / 2;
        int target = (int) Math.round(density * causal);
        boolean[][][] keep = new boolean[numHeads][nQB][nQB];
        int[] free = new int[causal];   // the causal tiles not forced, as qb·nQB + kb
        for (boolean[][] head : keep) {
            int forced = 0;
            int nFree = 0;
            for (int qb = 0; qb < nQB; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    if ((keepDiagonal && kb == qb) || (keepFirstColumn && kb == 0)) {
                        head[qb][kb] = true;
                        forced++;
                    } else {
                        free[nFree++] = qb * nQB + kb;
                    }
                }
            }
            // Partial Fisher-Yates: the first `draw` entries of free become a uniform random subset.
            int draw = Math.min(nFree, Math.max(0, target - forced));
            for (int i = 0; i < draw; i++) {
                int j = i + rnd.nextInt(nFree - i);
                int tile = free[j];
                free[j] = free[i];
                free[i] = tile;
                head[tile / nQB][tile % nQB] = true;
            }
        }
        return fromBooleans(keep, T, blockSize, backend);
    }

    /**
     * The layout listing tile (qb, kb) of head h iff {@code keep[h][qb][kb]}; NH = keep.length.
     *
     * @param keep [NH][nQB][nQB] with nQB = ceil(T / blockSize); entries above the diagonal must be false
     */
    public static BlockLayout fromBooleans(boolean[][][] keep, int T, int blockSize, Backend backend) {
        Objects.requireNonNull(keep, "fromBooleans keep");
        Objects.requireNonNull(backend, "fromBooleans backend");
        int numHeads = keep.length;
        int nQB = blocks("fromBooleans", numHeads, T, blockSize);
        int[] rowPtr = new int[numHeads * nQB + 1];
        int nnz = 0;
        for (int h = 0; h < numHeads; h++) {
            if (keep[h] == null || keep[h].length != nQB) {
                throw new IllegalArgumentException("fromBooleans keep[" + h + "]: expected " + nQB
                        + " query-block rows (T = " + T + ", blockSize = " + blockSize + "), got "
                        + (keep[h] == null ? "null" : keep[h].length));
            }
            for (int qb = 0; qb < nQB; qb++) {
                boolean[] row = keep[h][qb];
                if (row == null || row.length != nQB) {
                    throw new IllegalArgumentException("fromBooleans keep[" + h + "][" + qb + "]: expected " + nQB
                            + " key blocks, got " + (row == null ? "null" : row.length));
                }
                for (int kb = 0; kb < nQB; kb++) {
                    if (row[kb] && kb > qb) {
                        throw new IllegalArgumentException("fromBooleans keep[" + h + "][" + qb + "][" + kb
                                + "] is set above the diagonal: causal layouts list key blocks <= " + qb);
                    }
                    nnz += row[kb] ? 1 : 0;
                }
                rowPtr[h * nQB + qb + 1] = nnz;
            }
        }
        int[] colIdx = new int[Math.max(1, nnz)];
        int p = 0;
        for (int h = 0; h < numHeads; h++) {
            for (int qb = 0; qb < nQB; qb++) {
                for (int kb = 0; kb <= qb; kb++) {
                    if (keep[h][qb][kb]) {
                        colIdx[p++] = kb;
                    }
                }
            }
        }
        Tensor tRowPtr = backend.allocate(DType.I32, rowPtr.length);
        Tensor tColIdx = backend.allocate(DType.I32, colIdx.length);
        Tensors.copyFrom(backend, tRowPtr, rowPtr);
        Tensors.copyFrom(backend, tColIdx, colIdx);
        return new BlockLayout(blockSize, numHeads, T, tRowPtr, tColIdx);
    }

    /** The tile grid {@code [NH][nQB][nQB]} a host layout lists: the inverse of {@link #fromBooleans}. */
    public static boolean[][][] toBooleans(BlockLayout layout) {
        return toBooleans(layout, hostInts(layout.rowPtr()), hostInts(layout.colIdx()));
    }

    /** {@link #toBooleans(BlockLayout)} of a layout allocated on {@code backend}, read through it. */
    public static boolean[][][] toBooleans(Backend backend, BlockLayout layout) {
        return toBooleans(layout, Tensors.toInts(backend, layout.rowPtr()), Tensors.toInts(backend, layout.colIdx()));
    }

    private static boolean[][][] toBooleans(BlockLayout layout, int[] rowPtr, int[] colIdx) {
        int nQB = layout.numBlocks();
        boolean[][][] keep = new boolean[layout.numHeads()][nQB][nQB];
        for (int row = 0; row < layout.numHeads() * nQB; row++) {
            for (int p = rowPtr[row]; p < rowPtr[row + 1]; p++) {
                keep[row / nQB][row % nQB][colIdx[p]] = true;
            }
        }
        return keep;
    }

    /** Listed tiles / causal tiles, NH·nQB·(nQB+1)/2; 1 for {@link #full}. Reads the host rowPtr. */
    public static double density(BlockLayout layout) {
        return density(layout, hostInts(layout.rowPtr()));
    }

    /** {@link #density(BlockLayout)} of a layout allocated on {@code backend}, read through it. */
    public static double density(Backend backend, BlockLayout layout) {
        return density(layout, Tensors.toInts(backend, layout.rowPtr()));
    }

    private static double density(BlockLayout layout, int[] rowPtr) {
        int nQB = layout.numBlocks();
        long nnz = rowPtr[rowPtr.length - 1] - rowPtr[0];
        return nnz / ((double) layout.numHeads() * nQB * (nQB + 1) / 2);
    }

    /** The elements of a host I32 tensor (fails naming the tensor when it is not in host memory). */
    private static int[] hostInts(Tensor t) {
        t.requireDType("block layout index", DType.I32);
        return t.host().toArray(ValueLayout.JAVA_INT_UNALIGNED);
    }

    private static int blocks(String what, int numHeads, int T, int blockSize) {
        if (numHeads < 1 || T < 1 || blockSize < 1) {
            throw new IllegalArgumentException(what + " block layout: numHeads, T and blockSize must be >= 1, got "
                    + numHeads + ", " + T + ", " + blockSize);
        }
        return (T + blockSize - 1) / blockSize;
    }
}
