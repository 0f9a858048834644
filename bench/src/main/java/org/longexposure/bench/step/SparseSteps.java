package org.longexposure.bench.step;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;
import org.longexposure.model.opt.OptModel;
import org.longexposure.sparsity.predict.Predictors;

/**
 * The sparse step of {@link CudaStepBench}: random predictors of the model's shapes run on the backend in every
 * forward (pooling, projections, tile masses, selections: their time is inside the step), and budgets impose the
 * densities, since random weights have no sparsity of their own to expose. Coverage is 1, so each attention row keeps
 * its budget's tiles of largest predicted mass and each MLP its budget's neuron blocks of largest predicted
 * activity, chosen anew for every micro-batch. One token block spans the micro-batch (B·T rows): the classic union.
 *
 * <p>The plan is wrapped to remember each layer's last layouts; after the timed steps {@link #report} reads their
 * sizes back (rowPtr's last entry) to record the densities the steps really ran, not the ones asked for.
 */
final class SparseSteps implements SparsityPlan {
    private final SparsityPlan plan;
    private final CudaStepBench.Sparse options;
    private final Backend be;
    private final BlockLayout[] attn;
    private final NeuronLayout[] mlp;
    private final int numHeads;
    private final int ffn;

    private SparseSteps(SparsityPlan plan, CudaStepBench.Sparse options, Backend be, ModelConfig cfg) {
        this.plan = plan;
        this.options = options;
        this.be = be;
        this.attn = new BlockLayout[cfg.numLayers()];
        this.mlp = new NeuronLayout[cfg.numLayers()];
        this.numHeads = cfg.numHeads();
        this.ffn = cfg.ffnDim();
    }

    /** Builds the predictors and budgets and installs the plan on {@code model}. */
    static SparseSteps install(CudaStepBench.Sparse o, ModelConfig cfg, OptModel model, Backend be, int batch,
                               int seq, long seed) {
        int[] blocks = o.mlpBlocks();
        if (blocks != null && blocks.length != cfg.numLayers()) {
            throw new IllegalArgumentException("--mlp-blocks: expected one count per layer (" + cfg.numLayers()
                    + "), got " + blocks.length);
        }
        Predictors p = Predictors.random(cfg, o.predictorRank(), o.attnBlock(), o.neuronBlock(), batch * seq,
                seed + 7);
        p.budgets(Double.isNaN(o.attnRowFraction()) ? 1.0 : o.attnRowFraction(), blocks);
        SparseSteps s = new SparseSteps(p.plan(be, !Double.isNaN(o.attnRowFraction()), blocks != null), o, be, cfg);
        model.sparsity(s);
        return s;
    }

    @Override
    public BlockLayout attention(int layer, Input in) {
        BlockLayout l = plan.attention(layer, in);
        attn[layer] = l;
        return l;
    }

    @Override
    public NeuronLayout mlp(int layer, Input in) {
        NeuronLayout l = plan.mlp(layer, in);
        mlp[layer] = l;
        return l;
    }

    /** The budgets and the realised per-layer densities of the last step. */
    void report(ObjectNode out) {
        out.put("predictors", "random, rank " + options.predictorRank() + ", applied on the backend every step");
        out.put("attn_block", options.attnBlock());
        out.put("neuron_block", options.neuronBlock());
        out.put("flops_note", "the step's flops and TFLOP/s are the dense step's (dense-equivalent rate)");
        if (!Double.isNaN(options.attnRowFraction())) {
            out.put("attn_max_row_fraction", options.attnRowFraction());
        }
        ArrayNode ad = out.putArray("attn_density_causal");
        ArrayNode sq = out.putArray("attn_density_square");
        ArrayNode md = out.putArray("mlp_density");
        ArrayNode mb = out.putArray("mlp_max_blocks");
        double aSum = 0;
        double sSum = 0;
        double mSum = 0;
        for (int l = 0; l < attn.length; l++) {
            if (attn[l] != null) {
                int nB = attn[l].numBlocks();
                int[] ptr = Tensors.toInts(be, attn[l].rowPtr());
                double tiles = ptr[ptr.length - 1];
                double causal = tiles / ((double) numHeads * nB * (nB + 1) / 2);
                double square = tiles / ((double) numHeads * nB * nB);
                ad.add(causal);
                sq.add(square);
                aSum += causal;
                sSum += square;
            }
            if (mlp[l] != null) {
                int nb = (ffn + mlp[l].neuronBlock() - 1) / mlp[l].neuronBlock();
                int[] ptr = Tensors.toInts(be, mlp[l].rowPtr());
                double d = ptr[ptr.length - 1] / ((double) mlp[l].numTokenBlocks() * nb);
                md.add(d);
                mb.add(mlp[l].maxBlocks());
                mSum += d;
            }
        }
        if (!ad.isEmpty()) {
            out.put("attn_density_causal_mean", aSum / ad.size());
            out.put("attn_density_square_mean", sSum / sq.size());
        }
        if (!md.isEmpty()) {
            out.put("mlp_density_mean", mSum / md.size());
        }
    }
}
