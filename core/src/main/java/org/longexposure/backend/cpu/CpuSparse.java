package org.longexposure.backend.cpu;

import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.SparseOps;
import org.longexposure.tensor.Tensor;

/** The CPU's sparse op family: block-sparse attention and the neuron-block-sparse ReLU MLP. */
public final class CpuSparse implements SparseOps {
    private final CpuSparseAttention attention;
    private final CpuSparseMlp mlp;

    public CpuSparse(CpuThreads threads, CpuGemm gemm) {
        this.attention = new CpuSparseAttention(threads);
        this.mlp = new CpuSparseMlp(threads, gemm);
    }

    @Override
    public void blockSparseAttentionForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask,
                                            int numHeads, float scale, BlockLayout layout) {
        attention.blockSparseAttentionForward(out, lse, q, k, v, keyMask, numHeads, scale, layout);
    }

    @Override
    public void blockSparseAttentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse,
                                             Tensor q, Tensor k, Tensor v, Tensor keyMask, int numHeads, float scale,
                                             BlockLayout layout) {
        attention.blockSparseAttentionBackward(dQ, dK, dV, dOut, out, lse, q, k, v, keyMask, numHeads, scale,
                layout);
    }

    @Override
    public void sparseMlpForward(Tensor out, Tensor hidden, Tensor inp, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                                 Tensor residual, NeuronLayout layout) {
        mlp.sparseMlpForward(out, hidden, inp, w1, b1, w2, b2, residual, layout);
    }

    @Override
    public void sparseMlpBackward(Tensor dInp, Tensor dB1, Tensor dB2, Tensor dOut, Tensor hidden, Tensor w1,
                                  Tensor w2, NeuronLayout layout) {
        mlp.sparseMlpBackward(dInp, dB1, dB2, dOut, hidden, w1, w2, layout);
    }
}
