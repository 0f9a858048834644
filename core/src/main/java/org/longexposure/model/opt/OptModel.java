package org.longexposure.model.opt;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.io.data.Batch;
import org.longexposure.io.safetensors.ShardedCheckpoint;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.LayerActivations;
import org.longexposure.model.Linear;
import org.longexposure.model.LinearAdapter;
import org.longexposure.model.MlpPermutation;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * OPT ({@code transformers}' {@code OPTForCausalLM}) with explicit forward and backward passes.
 *
 * <pre>
 * embed:   x0 = project_in(embed_tokens[ids]) + embed_positions[pos + 2],  pos = cumsum(mask)·mask − 1
 * pre-LN:  mid = x + out_proj(attn(LN1(x)));          x' = mid + fc2(act(fc1(LN2(mid))))
 * post-LN: mid = x + out_proj(attn(x)); m = LN1(mid);  x' = LN2(m + fc2(act(fc1(m))))
 * head:    logits = project_out(final_LN(x_L)) · embed_tokensᵀ   (final_LN only in pre-LN models)
 * </pre>
 * The residual sums are formed inside the products that end each branch (out_proj, fc2 or the sparse MLP's second
 * product take the residual as an input), not by separate adds. Attention is causal with the padding mask on keys
 * and scale HS^-½. Saved for backward, per layer: the layer
 * input, the q/k/v inputs, q, k, v, the attention output and its log-sum-exp, the residual sum, the MLP input,
 * LayerNorm mean/rstd, and the activated FFN hidden state (plus the pre-activation for GELU). No gradient is ever
 * computed for a frozen weight: only input gradients flow, and adapters accumulate their own parameter gradients.
 *
 * <p>Sparse sockets ({@link #sparsity}): a {@link SparsityPlan} may give, per layer and micro-batch, a
 * {@link BlockLayout} for the attention (then {@code SparseOps.blockSparseAttentionForward/Backward} replace the
 * dense attention; same saved q, k, v, output and log-sum-exp) and, for ReLU models, a {@link NeuronLayout} for the
 * MLP (then {@code SparseOps.sparseMlpForward/Backward} replace fc1 → ReLU → fc2 and the saved hidden state is the
 * compacted one, (N, maxBlocks·BN), kept in the dense hidden buffer when it fits, else in a per-layer buffer grown
 * on demand). The layouts are saved in the state for the backward. The sparse MLP calls no adapter, so a layout
 * for a layer whose fc1 or fc2 carries one is refused with an error; LoRA on q/k/v/out_proj works with both
 * sockets. Dense is the default.
 */
public final class OptModel implements CausalLm {
    private final ModelConfig cfg;
    private final Backend be;
    private final OptWeights w;
    private final ShardedCheckpoint checkpoint; // kept open while weights alias its mapping; null for random weights
    private final Arena permuted;               // host copies of permuted fc1/fc2 weights, or null
    private final List<Linear> linears;
    private SparsityPlan plan = SparsityPlan.DENSE;

    private OptModel(ModelConfig cfg, Backend be, OptWeights w, ShardedCheckpoint checkpoint, Arena permuted) {
        this.cfg = cfg;
        this.be = be;
        this.w = w;
        this.checkpoint = checkpoint;
        this.permuted = permuted;
        List<Linear> all = new ArrayList<>();
        if (w.projectIn != null) {
            all.add(w.projectIn);
        }
        for (OptWeights.Layer l : w.layers) {
            all.addAll(List.of(l.q, l.k, l.v, l.o, l.fc1, l.fc2));
        }
        if (w.projectOut != null) {
            all.add(w.projectOut);
        }
        this.linears = List.copyOf(all);
    }

    /** Maps the checkpoint in {@code dir}; the model keeps it open (weights are read in place) until closed. */
    public static OptModel load(Path dir, ModelConfig cfg, Backend be) {
        return load(dir, cfg, be, null);
    }

    /**
     * Like {@link #load(Path, ModelConfig, Backend)}, with each layer's FFN neurons reordered by {@code permutation}
     * (null: none): the same function, see {@link MlpPermutation}. The permuted fc1/fc2 weights are host copies the
     * model owns until closed.
     */
    public static OptModel load(Path dir, ModelConfig cfg, Backend be, MlpPermutation permutation) {
        ShardedCheckpoint ckpt = ShardedCheckpoint.open(dir);
        Arena arena = permutation == null ? null : Arena.ofShared();
        try {
            return new OptModel(cfg, be, OptWeights.load(ckpt, cfg, be, permutation, arena), ckpt, arena);
        } catch (RuntimeException e) {
            ckpt.close();
            if (arena != null) {
                arena.close();
            }
            throw e;
        }
    }

    @Override
    public ModelConfig config() {
        return cfg;
    }

    @Override
    public List<Linear> linears() {
        return linears;
    }

    @Override
    public Linear queryProjection(int layer) {
        return w.layers.get(layer).q;
    }

    @Override
    public Linear keyProjection(int layer) {
        return w.layers.get(layer).k;
    }

    @Override
    public void sparsity(SparsityPlan plan) {
        this.plan = plan == null ? SparsityPlan.DENSE : plan;
    }

    /** The frozen parameters (package tests inspect them). */
    OptWeights weights() {
        return w;
    }

    /**
     * A model of shape {@code cfg} with random frozen weights and no checkpoint (benchmarks of full-size shapes,
     * tests): see {@link OptWeights#random}. Loss on random tokens is close to ln V.
     */
    public static OptModel random(ModelConfig cfg, Backend be, long seed) {
        return new OptModel(cfg, be, OptWeights.random(cfg, be, seed), null, null);
    }

    @Override
    public void close() {
        if (checkpoint != null) {
            checkpoint.close();
        }
        if (permuted != null) {
            permuted.close();
        }
    }

    // --- activations

    /**
     * Everything the forward saves for the backward, for up to (B, T); plus reusable gradient buffers. Activations,
     * their gradients and the logits are in the backend's activation dtype (CPU: F32); LayerNorm mean/rstd, the
     * log-sum-exps, losses and weights are F32; ids, positions, mask and targets I32.
     */
    static final class State implements ForwardState {
        final int maxB;
        final int maxT;
        final Tensor ids;        // (N) I32
        final Tensor pos;        // (N) I32, position ids + offset
        final Tensor keyMask;    // (B·T) I32, viewed as (B, T) of the current batch
        final Tensor targets;    // (N) I32 shifted labels
        final Tensor weights;    // (N) F32, 1/count for predicted tokens, else 0
        final Tensor embP;       // (N, P) token embeddings before project_in, or null
        final Tensor[] in;       // L+1 × (N, C): block inputs; in[L] is the final stream
        final Tensor[] attnIn;   // L × (N, C): q/k/v input (pre-LN: LN1(in); post-LN: same as in)
        final Tensor[] mean1;    // L × (N)
        final Tensor[] rstd1;    // L × (N)
        final Tensor[] q;        // L × (N, C)
        final Tensor[] k;        // L × (N, C)
        final Tensor[] v;        // L × (N, C)
        final Tensor[] att;      // L × (N, C)
        final Tensor[] lse;      // L × (B·NH·T), viewed as (B, NH, T) of the current batch
        final Tensor[] mid;      // L × (N, C): in + out_proj(att)
        final Tensor[] mlpIn;    // L × (N, C): pre-LN: LN2(mid); post-LN: LN1(mid)
        final Tensor[] mean2;    // L × (N)
        final Tensor[] rstd2;    // L × (N)
        final Tensor[] hPre;     // L × (N, H): fc1 output before a non-ReLU activation, else null
        final Tensor[] h;        // L × (N, H): activated FFN hidden state, allocated on the layer's first dense MLP
        final Tensor[] sum2;     // L × (N, C): post-LN only, mlpIn + fc2(h) (LN2's input)
        final BlockLayout[] attnLayout; // L: the last forward's attention layout, null where dense
        final NeuronLayout[] mlpLayout; // L: the last forward's MLP layout, null where dense
        final Tensor[] hWide;    // L: compacted sparse hidden states too wide for h[l], allocated on demand
        final Tensor meanF;      // (N)
        final Tensor rstdF;      // (N)
        final Tensor hf;         // (N, C) final LN output (or alias of in[L])
        final Tensor hp;         // (N, P) project_out output, or null
        final Tensor logits;     // (N, V), overwritten by dLogits in backward
        final Tensor losses;     // (N)
        final Tensor lseLoss;    // (N)
        // gradient scratch, reused layer to layer
        final Tensor dx;         // (N, C) gradient of the residual stream
        final Tensor dTmp;       // (N, C)
        final Tensor dA;         // (N, C)
        final Tensor dQ;         // (N, C)
        final Tensor dK;         // (N, C)
        final Tensor dV;         // (N, C)
        Tensor dH;               // (N, H), allocated on the first dense MLP backward
        final Tensor dHp;        // (N, P) or null
        int curB;
        int curT;
        boolean lossReady;
        float labelSmoothing;

        State(Backend be, ModelConfig cfg, int maxB, int maxT) {
            this.maxB = maxB;
            this.maxT = maxT;
            int n = maxB * maxT;
            int c = cfg.hiddenSize();
            int hDim = cfg.ffnDim();
            int layers = cfg.numLayers();
            DType act = be.activationDType();
            ids = be.allocate(DType.I32, n);
            pos = be.allocate(DType.I32, n);
            keyMask = be.allocate(DType.I32, n);
            targets = be.allocate(DType.I32, n);
            weights = be.allocate(DType.F32, n);
            embP = cfg.hasEmbedProjection() ? be.allocate(act, n, cfg.wordEmbedProjDim()) : null;
            in = new Tensor[layers + 1];
            attnIn = new Tensor[layers];
            mean1 = new Tensor[layers];
            rstd1 = new Tensor[layers];
            q = new Tensor[layers];
            k = new Tensor[layers];
            v = new Tensor[layers];
            att = new Tensor[layers];
            lse = new Tensor[layers];
            mid = new Tensor[layers];
            mlpIn = new Tensor[layers];
            mean2 = new Tensor[layers];
            rstd2 = new Tensor[layers];
            hPre = new Tensor[layers];
            h = new Tensor[layers];
            sum2 = new Tensor[layers];
            attnLayout = new BlockLayout[layers];
            mlpLayout = new NeuronLayout[layers];
            hWide = new Tensor[layers];
            for (int l = 0; l <= layers; l++) {
                in[l] = be.allocate(act, n, c);
            }
            for (int l = 0; l < layers; l++) {
                attnIn[l] = cfg.preLayerNorm() ? be.allocate(act, n, c) : in[l];
                mean1[l] = be.allocate(DType.F32, n);
                rstd1[l] = be.allocate(DType.F32, n);
                q[l] = be.allocate(act, n, c);
                k[l] = be.allocate(act, n, c);
                v[l] = be.allocate(act, n, c);
                att[l] = be.allocate(act, n, c);
                lse[l] = be.allocate(DType.F32, (long) n * cfg.numHeads());
                mid[l] = be.allocate(act, n, c);
                mlpIn[l] = be.allocate(act, n, c);
                mean2[l] = be.allocate(DType.F32, n);
                rstd2[l] = be.allocate(DType.F32, n);
                hPre[l] = cfg.activation() == Activation.RELU ? null : be.allocate(act, n, hDim);
                sum2[l] = cfg.preLayerNorm() ? null : be.allocate(act, n, c);
            }
            meanF = be.allocate(DType.F32, n);
            rstdF = be.allocate(DType.F32, n);
            hf = cfg.finalLayerNorm() ? be.allocate(act, n, c) : in[layers];
            hp = cfg.hasEmbedProjection() ? be.allocate(act, n, cfg.wordEmbedProjDim()) : null;
            logits = be.allocate(act, n, cfg.vocabSize());
            losses = be.allocate(DType.F32, n);
            lseLoss = be.allocate(DType.F32, n);
            dx = be.allocate(act, n, c);
            dTmp = be.allocate(act, n, c);
            dA = be.allocate(act, n, c);
            dQ = be.allocate(act, n, c);
            dK = be.allocate(act, n, c);
            dV = be.allocate(act, n, c);
            dHp = cfg.hasEmbedProjection() ? be.allocate(act, n, cfg.wordEmbedProjDim()) : null;
        }

        @Override
        public int maxBatchSize() {
            return maxB;
        }

        @Override
        public int maxSeqLen() {
            return maxT;
        }

        @Override
        public Tensor logits() {
            return logits.slice(0, (long) curB * curT);
        }

        @Override
        public LayerActivations layer(int l) {
            if (l < 0 || l >= q.length) {
                throw new IllegalArgumentException("layer " + l + " is outside [0, " + q.length + ")");
            }
            if (curB == 0) {
                throw new IllegalStateException("no forward has run on this state");
            }
            int n = curB * curT;
            long c = q[l].shape().dim(1);
            long nh = lse[l].numel() / ((long) maxB * maxT);
            return new LayerActivations(q[l].slice(0, n).view(curB, curT, c), k[l].slice(0, n).view(curB, curT, c),
                    lse[l].slice(0, curB * nh * curT).view(curB, nh, curT),
                    mlpLayout[l] == null && h[l] != null ? h[l].slice(0, n) : null, attnIn[l].slice(0, n),
                    mlpIn[l].slice(0, n));
        }
    }

    @Override
    public ForwardState allocate(int batchSize, int seqLen) {
        if (seqLen > cfg.maxPositions()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " exceeds max_position_embeddings "
                    + cfg.maxPositions());
        }
        State s = new State(be, cfg, batchSize, seqLen);
        for (Linear lin : linears) {
            LinearAdapter a = lin.adapter();
            if (a != null) {
                a.prepare(be, batchSize * seqLen);
            }
        }
        return s;
    }

    private State state(ForwardState fs) {
        if (!(fs instanceof State s)) {
            throw new IllegalArgumentException("state was not allocated by this model");
        }
        return s;
    }

    // --- forward

    @Override
    public void forward(ForwardState fs, Batch batch, boolean training) {
        State s = state(fs);
        setInputs(s, batch);
        int bsz = s.curB;
        int t = s.curT;
        int n = bsz * t;
        float eps = cfg.layerNormEps();
        // embeddings: x0 = project_in(embed_tokens[ids]) + embed_positions[pos]
        Tensor x0 = s.in[0].slice(0, n);
        Tensor ids = s.ids.slice(0, n);
        if (w.projectIn != null) {
            Tensor embP = s.embP.slice(0, n);
            be.embedding().embeddingForward(embP, ids, w.embedTokens, false);
            w.projectIn.forward(be, x0, embP, training);
        } else {
            be.embedding().embeddingForward(x0, ids, w.embedTokens, false);
        }
        be.embedding().embeddingForward(x0, s.pos.slice(0, n), w.embedPositions, true);

        Tensor keyMask = s.keyMask.slice(0, n).view(bsz, t);
        float scale = (float) (1.0 / Math.sqrt(cfg.headSize()));
        int[] mask = batch.attentionMask();
        for (int l = 0; l < cfg.numLayers(); l++) {
            OptWeights.Layer lw = w.layers.get(l);
            Tensor x = s.in[l].slice(0, n);
            Tensor attnIn = s.attnIn[l].slice(0, n);
            if (cfg.preLayerNorm()) {
                be.norm().layerNormForward(attnIn, s.mean1[l].slice(0, n), s.rstd1[l].slice(0, n), x,
                        lw.ln1Weight, lw.ln1Bias, eps);
            }
            Tensor q = s.q[l].slice(0, n);
            Tensor k = s.k[l].slice(0, n);
            Tensor v = s.v[l].slice(0, n);
            lw.q.forward(be, q, attnIn, training);
            lw.k.forward(be, k, attnIn, training);
            lw.v.forward(be, v, attnIn, training);
            Tensor att = s.att[l].slice(0, n);
            BlockLayout layout = plan.attention(l, new SparsityPlan.Input(bsz, t, attnIn, mask,
                    s.keyMask.slice(0, n)));
            s.attnLayout[l] = layout;
            if (layout == null) {
                be.attention().attentionForward(att.view(bsz, t, cfg.hiddenSize()), lse(s, l),
                        q.view(bsz, t, cfg.hiddenSize()), k.view(bsz, t, cfg.hiddenSize()),
                        v.view(bsz, t, cfg.hiddenSize()), keyMask, cfg.numHeads(), scale);
            } else {
                be.sparse().blockSparseAttentionForward(att.view(bsz, t, cfg.hiddenSize()), lse(s, l),
                        q.view(bsz, t, cfg.hiddenSize()), k.view(bsz, t, cfg.hiddenSize()),
                        v.view(bsz, t, cfg.hiddenSize()), keyMask, cfg.numHeads(), scale, layout);
            }
            Tensor mid = s.mid[l].slice(0, n);
            lw.o.forward(be, mid, att, x, training); // mid = x + out_proj(att), the residual in the product
            Tensor mlpIn = s.mlpIn[l].slice(0, n);
            Tensor next = s.in[l + 1].slice(0, n);
            if (cfg.preLayerNorm()) {
                be.norm().layerNormForward(mlpIn, s.mean2[l].slice(0, n), s.rstd2[l].slice(0, n), mid,
                        lw.ln2Weight, lw.ln2Bias, eps);
                mlpForward(s, l, lw, mlpIn, mid, next, training, mask); // next = mid + MLP(mlpIn)
            } else {
                be.norm().layerNormForward(mlpIn, s.mean1[l].slice(0, n), s.rstd1[l].slice(0, n), mid,
                        lw.ln1Weight, lw.ln1Bias, eps);
                Tensor sum2 = s.sum2[l].slice(0, n);
                mlpForward(s, l, lw, mlpIn, mlpIn, sum2, training, mask); // sum2 = mlpIn + MLP(mlpIn)
                be.norm().layerNormForward(next, s.mean2[l].slice(0, n), s.rstd2[l].slice(0, n), sum2,
                        lw.ln2Weight, lw.ln2Bias, eps);
            }
        }
        // head: logits = project_out(final_LN(x_L)) · lm_headᵀ
        Tensor xl = s.in[cfg.numLayers()].slice(0, n);
        Tensor hf = s.hf.slice(0, n);
        if (cfg.finalLayerNorm()) {
            be.norm().layerNormForward(hf, s.meanF.slice(0, n), s.rstdF.slice(0, n), xl, w.finalLnWeight,
                    w.finalLnBias, eps);
        }
        Tensor headIn = hf;
        if (w.projectOut != null) {
            headIn = s.hp.slice(0, n);
            w.projectOut.forward(be, headIn, hf, training);
        }
        be.linear().linearForward(s.logits.slice(0, n), headIn, w.lmHead, null);
        s.lossReady = false;
    }

    /** Layer l's saved log-sum-exp for the current batch, (B, NH, T). */
    private Tensor lse(State s, int l) {
        return s.lse[l].slice(0, (long) s.curB * cfg.numHeads() * s.curT).view(s.curB, cfg.numHeads(), s.curT);
    }

    /**
     * out (N, C) = residual + fc2(act(fc1(mlpIn))); saves the hidden state. The residual joins in fc2's product
     * (no add pass of its own). When the plan gives a neuron layout, the sparse MLP runs instead, residual included,
     * and saves the compacted hidden state.
     */
    private void mlpForward(State s, int l, OptWeights.Layer lw, Tensor mlpIn, Tensor residual, Tensor out,
                            boolean training, int[] mask) {
        int n = s.curB * s.curT;
        NeuronLayout layout = plan.mlp(l, new SparsityPlan.Input(s.curB, s.curT, mlpIn, mask,
                s.keyMask.slice(0, n)));
        s.mlpLayout[l] = layout;
        if (layout != null) {
            requireSparseMlp(l, lw, layout, n);
            be.sparse().sparseMlpForward(out, sparseHidden(s, l, layout), mlpIn, lw.fc1.weight(), lw.fc1.bias(),
                    lw.fc2.weight(), lw.fc2.bias(), residual, layout);
            return;
        }
        Tensor h = denseHidden(s, l).slice(0, n);
        if (s.hPre[l] == null && lw.fc1.adapter() == null) {
            // ReLU with a plain fc1: one op, so the ReLU can ride in the product's epilogue
            be.linear().linearForwardRelu(h, mlpIn, lw.fc1.weight(), lw.fc1.bias());
        } else if (s.hPre[l] == null) {
            lw.fc1.forward(be, h, mlpIn, training);
            be.activation().activationForward(h, h, cfg.activation());
        } else {
            Tensor hPre = s.hPre[l].slice(0, n);
            lw.fc1.forward(be, hPre, mlpIn, training);
            be.activation().activationForward(h, hPre, cfg.activation());
        }
        lw.fc2.forward(be, out, h, residual, training);
    }

    /** The sparse MLP's preconditions: a ReLU model, no adapter on fc1/fc2, a layout over this batch's rows. */
    private void requireSparseMlp(int l, OptWeights.Layer lw, NeuronLayout layout, int n) {
        if (cfg.activation() != Activation.RELU) {
            throw new IllegalStateException("layer " + l + ": the sparse MLP needs a ReLU model, this one uses "
                    + cfg.activation() + " (run its MLP dense)");
        }
        for (Linear lin : List.of(lw.fc1, lw.fc2)) {
            if (lin.adapter() != null) {
                throw new IllegalStateException(lin.path() + " carries an adapter, which the sparse MLP cannot"
                        + " apply: run this layer's MLP dense or leave fc1/fc2 out of the adapter's targets");
            }
        }
        if (layout.rows() != n) {
            throw new IllegalArgumentException("layer " + l + ": neuron layout built for " + layout.rows()
                    + " rows, but the micro-batch has B·T = " + n);
        }
    }

    /**
     * Layer l's dense (maxB·maxT, H) hidden buffer, allocated on its first dense MLP: a layer whose MLP always
     * runs sparse never holds one, which is the sparse MLP's memory saving.
     */
    private Tensor denseHidden(State s, int l) {
        if (s.h[l] == null) {
            s.h[l] = be.allocate(be.activationDType(), (long) s.maxB * s.maxT, cfg.ffnDim());
        }
        return s.h[l];
    }

    /**
     * The (N, maxBlocks·BN) compacted hidden buffer of layer l: the dense hidden buffer h[l] reinterpreted when
     * the layer has one and it is large enough (it is unused while the MLP runs sparse), else a per-layer buffer
     * grown to fit. Width 0 (a layer computing no neuron) gets an empty view.
     */
    private Tensor sparseHidden(State s, int l, NeuronLayout layout) {
        int n = layout.rows();
        long width = (long) layout.maxBlocks() * layout.neuronBlock();
        long need = n * width;
        Tensor dense = s.h[l];
        if (dense != null && need <= dense.numel()) {
            return dense.view(dense.numel()).slice(0, need).view(n, width);
        }
        if (s.hWide[l] == null || s.hWide[l].numel() < need) {
            s.hWide[l] = be.allocate(be.activationDType(), need);
        }
        return s.hWide[l].slice(0, need).view(n, width);
    }

    /**
     * Copies ids, mask, positions and shifted targets into the state (through the backend: the state may live in
     * device memory); positions as HF OPT derives them.
     */
    private void setInputs(State s, Batch batch) {
        int bsz = batch.batchSize();
        int t = batch.seqLen();
        if (bsz > s.maxB || t > s.maxT) {
            throw new IllegalArgumentException("batch (" + bsz + ", " + t + ") exceeds the allocated state ("
                    + s.maxB + ", " + s.maxT + ")");
        }
        s.curB = bsz;
        s.curT = t;
        int n = bsz * t;
        int[] pos = new int[n];
        int[] targets = new int[n];
        float[] weights = new float[n];
        int predicted = batch.predictedTokens();
        for (int b = 0; b < bsz; b++) {
            int cum = 0;
            for (int i = 0; i < t; i++) {
                int idx = b * t + i;
                int id = batch.inputIds()[idx];
                if (id < 0 || id >= cfg.vocabSize()) {
                    throw new IllegalArgumentException("token id " + id + " at (" + b + ", " + i
                            + ") is outside the vocabulary [0, " + cfg.vocabSize() + ")");
                }
                int m = batch.attentionMask()[idx] != 0 ? 1 : 0;
                cum += m;
                pos[idx] = cum * m - 1 + cfg.positionOffset();
                int label = i + 1 < t ? batch.labels()[idx + 1] : Batch.IGNORE;
                if (label != Batch.IGNORE && (label < 0 || label >= cfg.vocabSize())) {
                    throw new IllegalArgumentException("label " + label + " at (" + b + ", " + (i + 1)
                            + ") is outside the vocabulary [0, " + cfg.vocabSize() + ")");
                }
                targets[idx] = label == Batch.IGNORE ? 0 : label;
                weights[idx] = label == Batch.IGNORE ? 0f : 1f / predicted;
            }
        }
        Tensors.copyFrom(be, s.ids.slice(0, n), batch.inputIds());
        Tensors.copyFrom(be, s.pos.slice(0, n), pos);
        Tensors.copyFrom(be, s.keyMask.slice(0, n), batch.attentionMask());
        Tensors.copyFrom(be, s.targets.slice(0, n), targets);
        Tensors.copyFrom(be, s.weights.slice(0, n), weights);
    }

    @Override
    public double forwardLoss(ForwardState fs, Batch batch, float labelSmoothing, boolean training) {
        State s = state(fs);
        forward(s, batch, training);
        int n = s.curB * s.curT;
        double loss = be.loss().crossEntropyForward(s.losses.slice(0, n), s.lseLoss.slice(0, n),
                s.logits.slice(0, n), s.targets.slice(0, n), s.weights.slice(0, n), labelSmoothing);
        s.lossReady = true;
        s.labelSmoothing = labelSmoothing;
        return loss;
    }

    // --- backward

    @Override
    public void backward(ForwardState fs, float lossScale) {
        State s = state(fs);
        if (!s.lossReady) {
            throw new IllegalStateException("backward needs a forwardLoss on this state first");
        }
        s.lossReady = false;
        int bsz = s.curB;
        int t = s.curT;
        int n = bsz * t;
        int c = cfg.hiddenSize();
        Tensor weights = s.weights.slice(0, n);
        if (lossScale != 1f) {
            be.optim().scale(weights, lossScale);
        }
        // dLogits overwrite the logits in place: (N, V)
        Tensor dLogits = s.logits.slice(0, n);
        be.loss().crossEntropyBackward(dLogits, dLogits, s.lseLoss.slice(0, n), s.targets.slice(0, n), weights,
                s.labelSmoothing);
        Tensor dx = s.dx.slice(0, n);
        int lowest = lowestLayerNeedingInputGrad();
        // head (frozen LM head: input gradient only)
        Tensor dHf = cfg.finalLayerNorm() ? s.dTmp.slice(0, n) : dx;
        if (w.projectOut != null) {
            Tensor dHp = s.dHp.slice(0, n);
            be.linear().linearBackwardInput(dHp, dLogits, w.lmHead, 1f, false);
            w.projectOut.backward(be, dHf, dHp, s.hf.slice(0, n), false);
        } else {
            be.linear().linearBackwardInput(dHf, dLogits, w.lmHead, 1f, false);
        }
        if (cfg.finalLayerNorm()) {
            be.norm().layerNormBackward(dx, null, null, dHf, s.in[cfg.numLayers()].slice(0, n),
                    s.meanF.slice(0, n), s.rstdF.slice(0, n), w.finalLnWeight, false);
        }
        Tensor keyMask = s.keyMask.slice(0, n).view(bsz, t);
        float scale = (float) (1.0 / Math.sqrt(cfg.headSize()));
        for (int l = cfg.numLayers() - 1; l >= 0; l--) {
            OptWeights.Layer lw = w.layers.get(l);
            boolean needInputGrad = l > lowest;
            Tensor mid = s.mid[l].slice(0, n);
            Tensor mlpIn = s.mlpIn[l].slice(0, n);
            Tensor dA = s.dA.slice(0, n);
            if (cfg.preLayerNorm()) {
                // x' = mid + fc2(act(fc1(LN2(mid)))): dx holds d(x') = d(mid) from the residual branch
                mlpBackward(s, l, lw, dA, dx, mlpIn);
                be.norm().layerNormBackward(dx, null, null, dA, mid, s.mean2[l].slice(0, n),
                        s.rstd2[l].slice(0, n), lw.ln2Weight, true);
            } else {
                // x' = LN2(sum2), sum2 = m + fc2(act(fc1(m))), m = LN1(mid)
                Tensor dSum2 = s.dTmp.slice(0, n);
                be.norm().layerNormBackward(dSum2, null, null, dx, s.sum2[l].slice(0, n), s.mean2[l].slice(0, n),
                        s.rstd2[l].slice(0, n), lw.ln2Weight, false);
                mlpBackward(s, l, lw, dA, dSum2, mlpIn);
                be.activation().accumulate(dA, dSum2); // dm = dSum2 (residual) + MLP input grad
                be.norm().layerNormBackward(dx, null, null, dA, mid, s.mean1[l].slice(0, n),
                        s.rstd1[l].slice(0, n), lw.ln1Weight, false);
            }
            // dx now holds d(mid); mid = x + out_proj(att)
            Tensor dAtt = s.dTmp.slice(0, n);
            lw.o.backward(be, dAtt, dx, s.att[l].slice(0, n), false);
            Tensor dQ = s.dQ.slice(0, n);
            Tensor dK = s.dK.slice(0, n);
            Tensor dV = s.dV.slice(0, n);
            BlockLayout layout = s.attnLayout[l];
            if (layout == null) {
                be.attention().attentionBackward(dQ.view(bsz, t, c), dK.view(bsz, t, c), dV.view(bsz, t, c),
                        dAtt.view(bsz, t, c), s.att[l].slice(0, n).view(bsz, t, c), lse(s, l),
                        s.q[l].slice(0, n).view(bsz, t, c), s.k[l].slice(0, n).view(bsz, t, c),
                        s.v[l].slice(0, n).view(bsz, t, c), keyMask, cfg.numHeads(), scale);
            } else {
                be.sparse().blockSparseAttentionBackward(dQ.view(bsz, t, c), dK.view(bsz, t, c),
                        dV.view(bsz, t, c), dAtt.view(bsz, t, c), s.att[l].slice(0, n).view(bsz, t, c), lse(s, l),
                        s.q[l].slice(0, n).view(bsz, t, c), s.k[l].slice(0, n).view(bsz, t, c),
                        s.v[l].slice(0, n).view(bsz, t, c), keyMask, cfg.numHeads(), scale, layout);
            }
            Tensor attnIn = s.attnIn[l].slice(0, n);
            if (cfg.preLayerNorm()) {
                Tensor dIn = needInputGrad ? dA : null;
                lw.q.backward(be, dIn, dQ, attnIn, false);
                lw.k.backward(be, dIn, dK, attnIn, true);
                lw.v.backward(be, dIn, dV, attnIn, true);
                if (needInputGrad) {
                    be.norm().layerNormBackward(dx, null, null, dA, s.in[l].slice(0, n), s.mean1[l].slice(0, n),
                            s.rstd1[l].slice(0, n), lw.ln1Weight, true);
                }
            } else {
                // q/k/v read the layer input directly: their input grads join the residual gradient in dx
                Tensor dIn = needInputGrad ? dx : null;
                lw.q.backward(be, dIn, dQ, attnIn, true);
                lw.k.backward(be, dIn, dK, attnIn, true);
                lw.v.backward(be, dIn, dV, attnIn, true);
            }
            if (!needInputGrad) {
                break;
            }
        }
        if (lowest < 0 && w.projectIn != null && w.projectIn.adapter() != null) {
            w.projectIn.backward(be, null, dx, s.embP.slice(0, n), false);
        }
    }

    /** dMlpIn = (MLP input gradient) for the MLP output gradient dOut; adapters accumulate their grads. */
    private void mlpBackward(State s, int l, OptWeights.Layer lw, Tensor dMlpIn, Tensor dOut, Tensor mlpIn) {
        int n = s.curB * s.curT;
        NeuronLayout layout = s.mlpLayout[l];
        if (layout != null) {
            be.sparse().sparseMlpBackward(dMlpIn, null, null, dOut, sparseHidden(s, l, layout), lw.fc1.weight(),
                    lw.fc2.weight(), layout);
            return;
        }
        Tensor h = s.h[l].slice(0, n);
        if (s.dH == null) {
            s.dH = be.allocate(be.activationDType(), (long) s.maxB * s.maxT, cfg.ffnDim());
        }
        Tensor dH = s.dH.slice(0, n);
        lw.fc2.backward(be, dH, dOut, h, false);
        Tensor actIn = s.hPre[l] == null ? h : s.hPre[l].slice(0, n);
        be.activation().activationBackward(dH, dH, actIn, cfg.activation());
        lw.fc1.backward(be, dMlpIn, dH, mlpIn, false);
    }

    /**
     * The lowest layer whose input gradient is still needed: layers below the lowest trainable module need no
     * input gradient. Returns -1 when project_in (below layer 0) is trainable, L when nothing is.
     */
    private int lowestLayerNeedingInputGrad() {
        if (w.projectIn != null && w.projectIn.adapter() != null) {
            return -1;
        }
        for (int l = 0; l < w.layers.size(); l++) {
            OptWeights.Layer lw = w.layers.get(l);
            for (Linear lin : List.of(lw.q, lw.k, lw.v, lw.o, lw.fc1, lw.fc2)) {
                if (lin.adapter() != null) {
                    return l;
                }
            }
        }
        return w.layers.size();
    }
}
