package org.longexposure.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.SparseOps;
import org.longexposure.backend.cpu.FlashAttentionKernel.Dims;
import org.longexposure.backend.cpu.FlashAttentionKernel.Head;
import org.longexposure.backend.cpu.FlashAttentionKernel.KeyBlocks;
import org.longexposure.backend.cpu.FlashAttentionKernel.Segments;
import org.longexposure.tensor.Tensor;

/**
 * Block-sparse causal multi-head attention with a key padding mask on the CPU: the attention half of
 * {@link SparseOps} ({@code blockSparseAttentionForward/Backward}, same signatures and semantics), computed
 * flash-style over the tiles a {@link BlockLayout} lists (Long Exposure's dynamic-aware attention operator, section
 * 6.1 of the design note, with the online softmax its Triton kernels lack).
 *
 * <p>What: {@code out = softmax(scale·q·kᵀ + causal mask + padding mask + tile mask)·v} per head, where query i of
 * sequence b, in query block {@code I = i / BQ}, sees key j iff {@code j ≤ i}, {@code keyMask[b, j] != 0} and key
 * block {@code j / BK} is listed in layout row {@code h·nQB + I}. The layout is shared by all sequences of the call.
 * A query with no visible key (all its blocks unlisted, or only padding in them) gets out = 0, lse = −∞ and no
 * gradient. With the full layout (every causal tile) this is {@link CpuAttention}, bit for bit.
 *
 * <p>Shapes: q, k, v, out, dQ, dK, dV, dOut (B, T, C), C = NH·HS, head h = columns [h·HS, (h+1)·HS); keyMask
 * (B, T) I32; lse (B, NH, T); layout rowPtr (NH·nQB + 1) I32 and colIdx (≥ nnz) I32 in host memory.
 *
 * <p>Saved for backward: lse only; the backward recomputes the probabilities of the listed tiles from it.
 *
 * <p>Work: the loops are {@link FlashAttentionKernel}'s; a query tile visits only its block's listed key blocks,
 * so the score, softmax and gradient work is proportional to the number of listed tiles (plus O(T·HS) per head to
 * copy its keys). One task per (b, h) on the backend's threads; dK and dV accumulate inside the task, so results
 * are bit-identical for any thread count.
 *
 * <p>The layout is validated on entry (O(nnz)): a bad one is rejected with the head, the query block and the
 * offending value named, before any output is written.
 */
public final class CpuSparseAttention {
    private final CpuThreads threads;

    /** Runs one task per (b, h) on {@code threads}; the result does not depend on its size. */
    public CpuSparseAttention(CpuThreads threads) {
        this.threads = Objects.requireNonNull(threads, "threads");
    }

    /**
     * Block-sparse causal attention (overwrite): {@code out} and {@code lse} as in
     * {@link SparseOps#blockSparseAttentionForward}.
     *
     * @param out     (B, T, C) F32
     * @param lse     (B, NH, T) F32, saved: log Σ_j exp(scale·q_i·k_j) over the visible keys, −∞ for none
     * @param q       (B, T, C) F32
     * @param k       (B, T, C) F32
     * @param v       (B, T, C) F32
     * @param keyMask (B, T) I32, 1 for real tokens, 0 for padding
     * @param layout  NH heads, seqLen T, host I32 tensors
     */
    public void blockSparseAttentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                            int numHeads, float scale, BlockLayout layout) {
        String op = "blockSparseAttentionForward";
        Dims dims = Dims.of(op, q, numHeads);
        dims.requireBTC(op, "out", out);
        dims.requireBTC(op, "k", k);
        dims.requireBTC(op, "v", v);
        dims.requireLse(op, lse);
        dims.requireMask(op, keyMask);
        KeyBlocks blocks = keyBlocks(op, layout, dims);
        Segments s = new Segments(q.host(), k.host(), v.host(), out.host(), lse.host(), keyMask.host(),
                null, null, null, null);
        threads.parallelTasks(dims.B() * dims.NH(), task -> new Head(dims, s, blocks, task / dims.NH(),
                task % dims.NH(), scale).forward());
    }

    /**
     * dQ, dK, dV {@code =} (overwrite) the gradients of the forward above, visiting only the listed tiles.
     *
     * @param dQ   (B, T, C) F32
     * @param dK   (B, T, C) F32
     * @param dV   (B, T, C) F32
     * @param dOut (B, T, C) F32
     * @param out  (B, T, C) F32, the forward's output
     * @param lse  (B, NH, T) F32, the forward's saved log-sum-exp
     */
    public void blockSparseAttentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                                             Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads,
                                             float scale, BlockLayout layout) {
        String op = "blockSparseAttentionBackward";
        Dims dims = Dims.of(op, q, numHeads);
        dims.requireBTC(op, "dQ", dQ);
        dims.requireBTC(op, "dK", dK);
        dims.requireBTC(op, "dV", dV);
        dims.requireBTC(op, "dOut", dOut);
        dims.requireBTC(op, "out", out);
        dims.requireBTC(op, "k", k);
        dims.requireBTC(op, "v", v);
        dims.requireLse(op, lse);
        dims.requireMask(op, keyMask);
        KeyBlocks blocks = keyBlocks(op, layout, dims);
        Segments s = new Segments(q.host(), k.host(), v.host(), out.host(), lse.host(), keyMask.host(),
                dQ.host(), dK.host(), dV.host(), dOut.host());
        threads.parallelTasks(dims.B() * dims.NH(), task -> new Head(dims, s, blocks, task / dims.NH(),
                task % dims.NH(), scale).backward());
    }

    /**
     * The layout read into arrays and checked: NH and T match the call; rowPtr starts at 0, never decreases and
     * stays within colIdx; each row's key blocks are in [0, nQB), ≤ the row's query block (causal) and strictly
     * ascending.
     */
    static KeyBlocks keyBlocks(String op, BlockLayout layout, Dims dims) {
        Objects.requireNonNull(layout, op + " layout");
        if (layout.numHeads() != dims.NH() || layout.seqLen() != dims.T()) {
            throw new IllegalArgumentException(op + " layout: built for numHeads " + layout.numHeads()
                    + ", seqLen " + layout.seqLen() + ", but the call has numHeads " + dims.NH() + ", T "
                    + dims.T());
        }
        int nQB = layout.numBlocks();
        int[] rowPtr = ints(layout.rowPtr().host(), dims.NH() * nQB + 1);
        long colCap = layout.colIdx().numel();
        if (rowPtr[0] != 0) {
            throw new IllegalArgumentException(op + " layout: rowPtr[0] must be 0, got " + rowPtr[0]);
        }
        for (int row = 0; row < rowPtr.length - 1; row++) {
            if (rowPtr[row + 1] < rowPtr[row] || rowPtr[row + 1] > colCap) {
                throw new IllegalArgumentException(op + " layout: head " + row / nQB + ", query block " + row % nQB
                        + ": rowPtr[" + (row + 1) + "] = " + rowPtr[row + 1] + " outside [rowPtr[" + row + "] = "
                        + rowPtr[row] + ", colIdx size " + colCap + "]");
            }
        }
        int[] colIdx = ints(layout.colIdx().host(), rowPtr[rowPtr.length - 1]);
        for (int row = 0; row < rowPtr.length - 1; row++) {
            int h = row / nQB;
            int qb = row % nQB;
            for (int p = rowPtr[row]; p < rowPtr[row + 1]; p++) {
                int kb = colIdx[p];
                String where = op + " layout: head " + h + ", query block " + qb + ": key block colIdx[" + p
                        + "] = " + kb;
                if (kb < 0 || kb >= nQB) {
                    throw new IllegalArgumentException(where + " outside [0, " + nQB + ")");
                }
                if (kb > qb) {
                    throw new IllegalArgumentException(where + " is above the diagonal (causal layouts list key"
                            + " blocks <= " + qb + ")");
                }
                if (p > rowPtr[row] && kb <= colIdx[p - 1]) {
                    throw new IllegalArgumentException(where + " not strictly ascending after " + colIdx[p - 1]);
                }
            }
        }
        return new KeyBlocks(layout.blockSize(), nQB, rowPtr, colIdx);
    }

    private static int[] ints(MemorySegment seg, int n) {
        int[] a = new int[n];
        MemorySegment.copy(seg, ValueLayout.JAVA_INT_UNALIGNED, 0, a, 0, n);
        return a;
    }
}
