package org.longexposure.backend.cpu;

import java.util.Objects;
import org.longexposure.backend.AttentionOps;
import org.longexposure.backend.cpu.FlashAttentionKernel.Dims;
import org.longexposure.backend.cpu.FlashAttentionKernel.Head;
import org.longexposure.backend.cpu.FlashAttentionKernel.KeyBlocks;
import org.longexposure.backend.cpu.FlashAttentionKernel.Segments;
import org.longexposure.tensor.Tensor;

/**
 * Causal multi-head attention with a key padding mask on the CPU ({@link AttentionOps}), computed flash-style.
 *
 * <p>What: {@code out = softmax(scale·q·kᵀ + causal mask + padding mask)·v} per head, as Hugging Face's OPT
 * attention computes it (eager and sdpa paths); the backward follows the FlashAttention-2 recurrences (Dao 2023,
 * Algorithm 2). A query with no visible key (e.g. the first rows under left padding) gets out = 0, lse = −∞ and no
 * gradient; HF leaves such rows at arbitrary values, and no loss reads them.
 *
 * <p>Shapes: q, k, v, out, dQ, dK, dV, dOut (B, T, C), C = NH·HS, head h = columns [h·HS, (h+1)·HS); keyMask
 * (B, T) I32; lse (B, NH, T). Query i of sequence b sees key j iff j ≤ i and keyMask[b, j] != 0.
 *
 * <p>Saved for backward: lse only ({@code lse_i = log Σ_j exp(scale·q_i·k_j)} over visible keys); out is the
 * forward's output.
 *
 * <p>The loops (online softmax, recomputed P, vectorisation, memory) are {@link FlashAttentionKernel}'s, shared with
 * the block-sparse {@link CpuSparseAttention}: dense attention is its one-block layout (block size T). One task per
 * (b, h) on the backend's threads; results are bit-identical for any thread count. The tensors must be readable
 * from the pool's threads (a shared or global arena, not a confined one).
 */
public final class CpuAttention implements AttentionOps {
    private final CpuThreads threads;

    /** Runs one task per (b, h) on {@code threads}; the result does not depend on its size. */
    public CpuAttention(CpuThreads threads) {
        this.threads = Objects.requireNonNull(threads, "threads");
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                 int numHeads, float scale) {
        Dims dims = Dims.of("attentionForward", q, numHeads);
        dims.requireBTC("attentionForward", "out", out);
        dims.requireBTC("attentionForward", "k", k);
        dims.requireBTC("attentionForward", "v", v);
        dims.requireLse("attentionForward", lse);
        dims.requireMask("attentionForward", keyMask);
        Segments s = new Segments(q.host(), k.host(), v.host(), out.host(), lse.host(), keyMask.host(),
                null, null, null, null);
        KeyBlocks dense = KeyBlocks.dense(dims.T(), dims.NH());
        threads.parallelTasks(dims.B() * dims.NH(), task -> new Head(dims, s, dense, task / dims.NH(),
                task % dims.NH(), scale).forward());
    }

    @Override
    public void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                                  Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale) {
        Dims dims = Dims.of("attentionBackward", q, numHeads);
        dims.requireBTC("attentionBackward", "dQ", dQ);
        dims.requireBTC("attentionBackward", "dK", dK);
        dims.requireBTC("attentionBackward", "dV", dV);
        dims.requireBTC("attentionBackward", "dOut", dOut);
        dims.requireBTC("attentionBackward", "out", out);
        dims.requireBTC("attentionBackward", "k", k);
        dims.requireBTC("attentionBackward", "v", v);
        dims.requireLse("attentionBackward", lse);
        dims.requireMask("attentionBackward", keyMask);
        Segments s = new Segments(q.host(), k.host(), v.host(), out.host(), lse.host(), keyMask.host(),
                dQ.host(), dK.host(), dV.host(), dOut.host());
        KeyBlocks dense = KeyBlocks.dense(dims.T(), dims.NH());
        threads.parallelTasks(dims.B() * dims.NH(), task -> new Head(dims, s, dense, task / dims.NH(),
                task % dims.NH(), scale).backward());
    }
}
