package org.longexposure.sparsity.predict;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.model.SparsityPlan;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The fitted predictors applied on the backend that runs the model ({@link Predictors#plan}): each layer's layouts
 * are computed from its input with {@link org.longexposure.backend.PredictOps} and {@link
 * org.longexposure.backend.LinearOps} only, so on a device backend neither the input nor the layout goes through
 * the host (no {@code Backend.read}, no {@code Backend.write} per layer).
 *
 * <pre>
 * attention  pooled, counts = blockMeanPool(x, keyMask)                 (B·nB, C) ACT, (B·nB) I32
 *            [q̃ | k̃] = pooled·[Wq; Wk]ᵀ + [bq | bk]                      (B·nB, 2·NH·R) ACT, one product
 *            mass = tileMass(q̃, k̃, counts, γ)                          (NH, nB, nB) F64    } predictTiles
 *            layout = selectTiles(mass, coverage, maxRowFraction)                          }
 * MLP        z = x·Wᵀ + b                                                (N, nb) ACT
 *            Ŝ = neuronBlockScores(z, keyMask)                           (nTB, nb) F64       } predictNeuronBlocks
 *            layout = selectNeuronBlocks(Ŝ, keyMask, coverage)       maxBlocks = the predictor's budget
 * </pre>
 * Wq (NH·R, C) holds the host form's Pq (NH, D, R) transposed per head, row h·R + r being Pq[h][0..C)[r], and bq
 * its constant row Pq[h][C][r] (likewise Wk, bk; the two stacked in one (2·NH·R, C) weight and one bias); the MLP's
 * W (nb, C) and b (nb) are the scorer's weight without
 * and with its last column. A block without real tokens gets the bias instead of the host form's 0 as its
 * projection, which no selection reads: tileMass skips such blocks. The projections are uploaded with {@link
 * Backend#adoptWeight} on a layer's first use (BF16 on a device), the temperatures and biases as F32.
 *
 * <p>Against the host form ({@link AttentionPredictor#keep}, {@link MlpPredictor#keep}), which pools and projects
 * in double, the pooled input and the projections are rounded to the activation dtype; the masses, scores and
 * the selection are computed in double with the same rule, so the layouts differ only where those roundings
 * reorder two nearly equal masses or move a running sum across the coverage threshold.
 *
 * <p>Memory: the work tensors are shared by the layers and reallocated only when (B, T) grows; each layer keeps
 * its own layout tensors, which the next micro-batch's forward overwrites in place (the model reads a layout only
 * between its forward and its backward). The count a device selected is not known on the host, so the NeuronLayout's
 * maxBlocks is the predictor's budget ({@link MlpPredictor#maxBlocks()}, nb without one): the sparse MLP's
 * compacted hidden state is (N, maxBlocks·BN) and its work is bounded by maxBlocks. Coverages and budgets are read
 * from the predictors on every call. A layer part the predictors mark dense (auto's fallback,
 * {@link Predictors#attentionDense}) gets no layout.
 */
final class PredictorPlan implements SparsityPlan {
    private final Source predictors;
    private final Backend be;
    private final boolean sparseAttention;
    private final boolean sparseMlp;
    private final AttnWeights[] attnWeights;
    private final MlpWeights[] mlpWeights;
    private final BlockLayout[] attnLayouts;
    private final NeuronLayout[] mlpLayouts;
    private final Map<String, Tensor> work = new HashMap<>();

    /** A layer's projections on the backend and the predictor whose values they hold. */
    private static final class AttnWeights {
        /** (2·NH·R, C): Wq over Wk. */
        final Tensor wqk;
        /** (2·NH·R): bq then bk. */
        final Tensor bqk;
        final Tensor gamma;
        AttentionPredictor source;

        AttnWeights(Tensor wqk, Tensor bqk, Tensor gamma, AttentionPredictor source) {
            this.wqk = wqk;
            this.bqk = bqk;
            this.gamma = gamma;
            this.source = source;
        }
    }

    /** A layer's scorer on the backend and the predictor whose values it holds. */
    private static final class MlpWeights {
        final Tensor w;
        final Tensor b;
        MlpPredictor source;

        MlpWeights(Tensor w, Tensor b, MlpPredictor source) {
            this.w = w;
            this.b = b;
            this.source = source;
        }
    }

    /**
     * Where the plan reads each layer's predictor and dense fallback on every call: fixed {@link Predictors}, or a
     * live view whose predictors a refresh replaces ({@link OnlineSparsity}); a replaced predictor's values are
     * copied into the same backend tensors (no new allocation per refresh).
     */
    interface Source {
        int numLayers();

        AttentionPredictor attention(int layer);

        MlpPredictor mlp(int layer);

        boolean attentionDense(int layer);

        boolean mlpDense(int layer);
    }

    PredictorPlan(Source predictors, Backend be, boolean sparseAttention, boolean sparseMlp) {
        this.predictors = predictors;
        this.be = be;
        this.sparseAttention = sparseAttention;
        this.sparseMlp = sparseMlp;
        int layers = predictors.numLayers();
        this.attnWeights = new AttnWeights[layers];
        this.mlpWeights = new MlpWeights[layers];
        this.attnLayouts = new BlockLayout[layers];
        this.mlpLayouts = new NeuronLayout[layers];
    }

    @Override
    public BlockLayout attention(int layer, Input in) {
        if (!sparseAttention || predictors.attentionDense(layer)) {
            return null;
        }
        AttentionPredictor ap = predictors.attention(layer);
        check("attention", layer, in, ap.dim);
        AttnWeights w = attnWeights(layer, ap);
        int bsz = in.batchSize();
        int t = in.seqLen();
        int nB = (t + ap.block - 1) / ap.block;
        long pooledRows = (long) bsz * nB;
        Tensor pooled = work("pooled", be.activationDType(), pooledRows, ap.dim);
        Tensor counts = work("counts", DType.I32, pooledRows);
        Tensor qk = work("qk", be.activationDType(), pooledRows, 2L * ap.numHeads * ap.rank);
        Tensor mass = work("mass", DType.F64, ap.numHeads, nB, nB);
        be.predict().blockMeanPool(pooled, counts, in.x(), in.keyMask(), bsz, t, ap.block);
        be.linear().linearForward(qk, pooled, w.wqk, w.bqk);
        BlockLayout layout = attnLayouts[layer];
        if (layout == null || layout.seqLen() != t) {
            long full = (long) ap.numHeads * nB * (nB + 1) / 2;
            layout = new BlockLayout(ap.block, ap.numHeads, t, be.allocate(DType.I32, (long) ap.numHeads * nB + 1),
                    be.allocate(DType.I32, full));
            attnLayouts[layer] = layout;
        }
        be.predict().predictTiles(layout, mass, qk, counts, w.gamma, bsz, ap.rank, ap.coverage, ap.maxRowFraction);
        return layout;
    }

    @Override
    public NeuronLayout mlp(int layer, Input in) {
        if (!sparseMlp || predictors.mlpDense(layer)) {
            return null;
        }
        MlpPredictor mp = predictors.mlp(layer);
        check("MLP", layer, in, mp.dim);
        MlpWeights w = mlpWeights(layer, mp);
        int rows = in.rows();
        int nb = mp.numBlocks();
        int nTB = (rows + mp.tokenBlock - 1) / mp.tokenBlock;
        Tensor z = work("z", be.activationDType(), rows, nb);
        Tensor scores = work("scores", DType.F64, nTB, nb);
        be.linear().linearForward(z, in.x(), w.w, w.b);
        int maxBlocks = mp.maxBlocks();
        NeuronLayout layout = mlpLayouts[layer];
        if (layout == null || layout.rows() != rows || layout.maxBlocks() != maxBlocks) {
            layout = new NeuronLayout(mp.neuronBlock, mp.tokenBlock, rows, maxBlocks,
                    be.allocate(DType.I32, nTB + 1L), be.allocate(DType.I32, (long) nTB * Math.max(1, maxBlocks)));
            mlpLayouts[layer] = layout;
        }
        be.predict().predictNeuronBlocks(layout, scores, z, in.keyMask(), mp.ffn, mp.coverage);
        return layout;
    }

    private static void check(String what, int layer, Input in, int dim) {
        if (in.keyMask() == null) {
            throw new IllegalArgumentException("layer " + layer + " " + what + " predictor: the plan input carries"
                    + " no keyMask tensor on the backend");
        }
        if (in.x().shape().rank() != 2 || in.x().shape().dim(0) != in.rows() || in.x().shape().dim(1) != dim) {
            throw new IllegalArgumentException("layer " + layer + " " + what + " predictor: expected an input of ("
                    + in.rows() + ", " + dim + "), got " + in.x());
        }
    }

    /** A work tensor of exactly these dims: a view of a buffer kept per name, regrown when too small. */
    private Tensor work(String name, DType dtype, long... dims) {
        long numel = 1;
        for (long d : dims) {
            numel *= d;
        }
        Tensor t = work.get(name);
        if (t == null || t.numel() < numel || t.dtype() != dtype) {
            t = be.allocate(dtype, numel);
            work.put(name, t);
        }
        return t.slice(0, numel).view(dims);
    }

    private AttnWeights attnWeights(int layer, AttentionPredictor ap) {
        AttnWeights cur = attnWeights[layer];
        if (cur != null && cur.source == ap) {
            return cur;
        }
        int c = ap.dim;
        int w = ap.numHeads * ap.rank;
        float[][] wq = transposed(ap.pq, ap.numHeads, c, ap.rank);
        float[][] wk = transposed(ap.pk, ap.numHeads, c, ap.rank);
        float[] wqk = concat(wq[0], wk[0]);
        float[] bqk = concat(wq[1], wk[1]);
        if (cur == null) {
            attnWeights[layer] = new AttnWeights(weight(wqk, 2 * w, c, "predictor layers." + layer + ".attn.qk"),
                    vector(bqk), vector(ap.gamma), ap);
        } else {
            Tensors.copyFrom(be, cur.wqk, wqk);
            Tensors.copyFrom(be, cur.bqk, bqk);
            Tensors.copyFrom(be, cur.gamma, ap.gamma);
            cur.source = ap;
        }
        return attnWeights[layer];
    }

    private MlpWeights mlpWeights(int layer, MlpPredictor mp) {
        MlpWeights cur = mlpWeights[layer];
        if (cur != null && cur.source == mp) {
            return cur;
        }
        int nb = mp.numBlocks();
        int d = mp.dim + 1;
        float[] w = new float[nb * mp.dim];
        float[] b = new float[nb];
        for (int j = 0; j < nb; j++) {
            System.arraycopy(mp.weight, j * d, w, j * mp.dim, mp.dim);
            b[j] = mp.weight[j * d + mp.dim];
        }
        if (cur == null) {
            mlpWeights[layer] = new MlpWeights(weight(w, nb, mp.dim, "predictor layers." + layer + ".mlp.weight"),
                    vector(b), mp);
        } else {
            Tensors.copyFrom(be, cur.w, w);
            Tensors.copyFrom(be, cur.b, b);
            cur.source = mp;
        }
        return mlpWeights[layer];
    }

    /** P (NH, C+1, R) → {W (NH·R, C) with W[h·R + r][e] = P[h][e][r], b (NH·R) with b[h·R + r] = P[h][C][r]}. */
    private static float[][] transposed(float[] p, int nh, int c, int rank) {
        int d = c + 1;
        float[] w = new float[nh * rank * c];
        float[] b = new float[nh * rank];
        for (int h = 0; h < nh; h++) {
            for (int r = 0; r < rank; r++) {
                int row = h * rank + r;
                for (int e = 0; e < c; e++) {
                    w[row * c + e] = p[(h * d + e) * rank + r];
                }
                b[row] = p[(h * d + c) * rank + r];
            }
        }
        return new float[][] {w, b};
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** A frozen (rows, cols) matrix handed to the backend like a checkpoint weight. */
    private Tensor weight(float[] v, int rows, int cols, String name) {
        // An automatic arena: on the CPU the adopted tensor is this host tensor and keeps it reachable.
        Tensor host = Tensor.allocateHost(Arena.ofAuto(), DType.F32, rows, cols).copyFrom(v);
        return be.adoptWeight(host, name);
    }

    private Tensor vector(float[] v) {
        Tensor t = be.allocate(DType.F32, v.length);
        Tensors.copyFrom(be, t, v);
        return t;
    }
}
