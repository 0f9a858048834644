package org.longexposure.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.sparsity.mask.NeuronLayouts;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;
import org.longexposure.testkit.reference.RefBlockSparseAttention;
import org.longexposure.testkit.reference.RefEmbedding;
import org.longexposure.testkit.reference.RefLayerNorm;
import org.longexposure.testkit.reference.RefLinear;
import org.longexposure.testkit.reference.RefSparseMlp;

/**
 * The model's sparse sockets ({@link SparsityPlan}) on the opt-preln fixture (2 pre-LN ReLU layers, C = 48, NH = 4,
 * H = 80, LoRA r = 4 on q and v, batch 3 × 13 with right padding):
 * <ul>
 *   <li>full layouts (every causal tile, every neuron block; tiles of 4 tokens and neuron blocks of 12, both with a
 *       partial last block) give the dense model's loss, logits and LoRA gradients;</li>
 *   <li>seeded random layouts (different per layer, per head and per token block, one layer without the forced
 *       diagonal) give the loss and logits of an independent float64 forward of the masked model built from
 *       testkit references, and LoRA gradients equal to that reference's central differences;</li>
 *   <li>a neuron layout for a layer whose fc1 carries an adapter is refused by name.</li>
 * </ul>
 */
class OptSparseSocketsTest {
    private static final int ATTN_BLOCK = 4;
    private static final int NEURON_BLOCK = 12;

    private static Path fixture() throws URISyntaxException {
        return Path.of(OptSparseSocketsTest.class.getResource("/fixtures/opt-preln/meta.json").toURI()).getParent();
    }

    private static Batch batch(SafetensorsFile f, int i) {
        Tensor ids = f.tensor("input_ids");
        int b = ids.shape().idim(1);
        int t = ids.shape().idim(2);
        return new Batch(b, t, ints(ids, i), ints(f.tensor("attention_mask"), i), ints(f.tensor("labels"), i));
    }

    private static int[] ints(Tensor t, int i) {
        int per = Math.toIntExact(t.numel() / t.shape().dim(0));
        int[] out = new int[per];
        for (int j = 0; j < per; j++) {
            out[j] = t.getInt((long) i * per + j);
        }
        return out;
    }

    /** A plan that hands out fixed per-layer layouts (null entries: dense). */
    private record FixedPlan(BlockLayout[] attn, NeuronLayout[] mlp) implements SparsityPlan {
        @Override
        public BlockLayout attention(int layer, Input in) {
            return attn[layer];
        }

        @Override
        public NeuronLayout mlp(int layer, Input in) {
            return mlp[layer];
        }
    }

    private record Setup(CpuBackend be, CausalLm model, TrainableParams params) implements AutoCloseable {
        static Setup of(Path dir) {
            CpuBackend be = new CpuBackend(2);
            CausalLm model = Architecture.load(dir.resolve("model"), be);
            LoraConfig cfg = PeftAdapterIO.readLoraConfig(dir.resolve("adapter"));
            TrainableParams params = new TrainableParams();
            Lora.apply(model, cfg, be, params, 7);
            PeftAdapterIO.loadWeights(be, dir.resolve("adapter"), params);
            return new Setup(be, model, params);
        }

        /** Loss, logits and LoRA gradients (in params order) of one forward + backward on b. */
        Result run(Batch b) {
            ForwardState st = model.allocate(b.batchSize(), b.seqLen());
            double loss = model.forwardLoss(st, b, 0f, true);
            float[] logits = Tensors.toFloats(be, st.logits());
            params.zeroGrad(be);
            model.backward(st, 1f);
            float[][] grads = new float[params.all().size()][];
            for (int i = 0; i < grads.length; i++) {
                grads[i] = Tensors.toFloats(be, params.all().get(i).grad());
            }
            return new Result(loss, logits, grads);
        }

        @Override
        public void close() {
            model.close();
            be.close();
        }
    }

    private record Result(double loss, float[] logits, float[][] grads) {
    }

    @Test
    void fullLayoutsEqualTheDenseModel() throws Exception {
        Path dir = fixture();
        try (Setup s = Setup.of(dir); SafetensorsFile batches = SafetensorsFile.open(dir.resolve("batches.safetensors"))) {
            ModelConfig mc = s.model.config();
            for (int i = 0; i < 2; i++) {
                Batch b = batch(batches, i);
                s.model.sparsity(SparsityPlan.DENSE);
                Result dense = s.run(b);
                int n = b.batchSize() * b.seqLen();
                BlockLayout[] attn = new BlockLayout[mc.numLayers()];
                NeuronLayout[] mlp = new NeuronLayout[mc.numLayers()];
                for (int l = 0; l < mc.numLayers(); l++) {
                    attn[l] = BlockLayouts.full(mc.numHeads(), b.seqLen(), ATTN_BLOCK, s.be);
                    mlp[l] = NeuronLayouts.full(n, 7 + 30 * l, mc.ffnDim(), NEURON_BLOCK, s.be);
                }
                s.model.sparsity(new FixedPlan(attn, mlp));
                Result sparse = s.run(b);
                // Same operands through products documented as equal to the dense ones: identical bits.
                assertThat(sparse.loss()).isEqualTo(dense.loss());
                TensorAssert.assertBitIdentical("logits", sparse.logits(), dense.logits());
                for (int p = 0; p < dense.grads().length; p++) {
                    TensorAssert.assertBitIdentical(s.params.all().get(p).name(), sparse.grads()[p],
                            dense.grads()[p]);
                }
            }
        }
    }

    @Test
    void randomLayoutsMatchAFloat64MaskedModel() throws Exception {
        Path dir = fixture();
        try (Setup s = Setup.of(dir);
             SafetensorsFile batches = SafetensorsFile.open(dir.resolve("batches.safetensors"));
             SafetensorsFile weights = SafetensorsFile.open(dir.resolve("model/model.safetensors"))) {
            ModelConfig mc = s.model.config();
            Batch b = batch(batches, 1);
            int n = b.batchSize() * b.seqLen();
            int layers = mc.numLayers();
            BlockLayout[] attn = new BlockLayout[layers];
            NeuronLayout[] mlp = new NeuronLayout[layers];
            attn[0] = BlockLayouts.random(mc.numHeads(), b.seqLen(), ATTN_BLOCK, 0.5, 11, true, true, s.be);
            attn[1] = BlockLayouts.random(mc.numHeads(), b.seqLen(), ATTN_BLOCK, 0.6, 12, false, false, s.be);
            mlp[0] = NeuronLayouts.random(n, 5, mc.ffnDim(), NEURON_BLOCK, 0.5, 13, s.be);
            mlp[1] = NeuronLayouts.random(n, n, mc.ffnDim(), NEURON_BLOCK, 0.6, 14, s.be);
            assertThat(BlockLayouts.density(attn[1])).isLessThan(1);
            s.model.sparsity(new FixedPlan(attn, mlp));
            Result got = s.run(b);

            RefModel ref = new RefModel(weights, mc, s.be, s.params,
                    PeftAdapterIO.readLoraConfig(dir.resolve("adapter")).scaling(), attn, mlp);
            double[] refLogits = new double[n * mc.vocabSize()];
            double refLoss = ref.loss(b, refLogits);
            assertThat(Math.abs(got.loss() - refLoss)).as("loss %s vs float64 %s", got.loss(), refLoss)
                    .isLessThanOrEqualTo(1e-5 * Math.abs(refLoss));
            int v = mc.vocabSize();
            for (int row = 0; row < n; row++) {
                if (b.attentionMask()[row] == 0) {
                    continue;
                }
                float[] o = Arrays.copyOfRange(got.logits(), row * v, (row + 1) * v);
                double[] r = Arrays.copyOfRange(refLogits, row * v, (row + 1) * v);
                TensorAssert.assertClose("logits row " + row, new Tolerances.Tol(1e-5, 1e-4), o, r, v);
            }
            // LoRA gradients: central differences of the float64 loss at a seeded sample of coordinates.
            SplittableRandom rng = new SplittableRandom(21);
            for (int p = 0; p < s.params.all().size(); p++) {
                String name = s.params.all().get(p).name();
                double[] value = ref.lora.get(name);
                int samples = 10;
                float[] ours = new float[samples];
                double[] numeric = new double[samples];
                for (int j = 0; j < samples; j++) {
                    int idx = rng.nextInt(value.length);
                    double keep = value[idx];
                    double h = 1e-5;
                    value[idx] = keep + h;
                    double up = ref.loss(b, null);
                    value[idx] = keep - h;
                    double down = ref.loss(b, null);
                    value[idx] = keep;
                    numeric[j] = (up - down) / (2 * h);
                    ours[j] = got.grads()[p][idx];
                }
                TensorAssert.assertClose("grad " + name, new Tolerances.Tol(1e-6, 1e-3), ours, numeric, samples);
            }
        }
    }

    @Test
    void aLayerComputingNoNeuronMatchesTheFloat64MaskedModel() throws Exception {
        Path dir = fixture();
        try (Setup s = Setup.of(dir);
             SafetensorsFile batches = SafetensorsFile.open(dir.resolve("batches.safetensors"));
             SafetensorsFile weights = SafetensorsFile.open(dir.resolve("model/model.safetensors"))) {
            ModelConfig mc = s.model.config();
            Batch b = batch(batches, 1);
            int n = b.batchSize() * b.seqLen();
            int nb = (mc.ffnDim() + NEURON_BLOCK - 1) / NEURON_BLOCK;
            BlockLayout[] attn = new BlockLayout[mc.numLayers()];
            for (int l = 0; l < attn.length; l++) {
                attn[l] = BlockLayouts.full(mc.numHeads(), b.seqLen(), ATTN_BLOCK, s.be);
            }
            NeuronLayout[] mlp = new NeuronLayout[mc.numLayers()];
            // layer 0 computes no neuron (a zero-width compacted hidden state); layer 1 one block per token block
            mlp[0] = NeuronLayouts.fromBooleans(new boolean[(n + 6) / 7][nb], n, 7, mc.ffnDim(), NEURON_BLOCK, s.be);
            boolean[][] one = new boolean[1][nb];
            one[0][nb - 1] = true;
            mlp[1] = NeuronLayouts.fromBooleans(one, n, n, mc.ffnDim(), NEURON_BLOCK, s.be);
            assertThat(mlp[0].maxBlocks()).isZero();
            s.model.sparsity(new FixedPlan(attn, mlp));
            Result got = s.run(b);
            RefModel ref = new RefModel(weights, mc, s.be, s.params,
                    PeftAdapterIO.readLoraConfig(dir.resolve("adapter")).scaling(), attn, mlp);
            double refLoss = ref.loss(b, null);
            assertThat(Math.abs(got.loss() - refLoss)).as("loss %s vs float64 %s", got.loss(), refLoss)
                    .isLessThanOrEqualTo(1e-5 * Math.abs(refLoss));
        }
    }

    @Test
    void aNeuronLayoutIsRefusedWhenFc1CarriesAnAdapter() throws Exception {
        Path dir = fixture();
        try (Setup s = Setup.of(dir); SafetensorsFile batches = SafetensorsFile.open(dir.resolve("batches.safetensors"))) {
            Linear fc1 = s.model.linears().stream().filter(l -> l.path().endsWith("layers.1.fc1")).findFirst()
                    .orElseThrow();
            fc1.plug(new LinearAdapter() {
                @Override
                public void prepare(Backend backend, int maxRows) {
                }

                @Override
                public void forward(Backend backend, Tensor out, Tensor inp, Tensor residual, boolean training) {
                }

                @Override
                public void backward(Backend backend, Tensor dInp, Tensor dOut, Tensor inp, boolean accumulate) {
                }
            });
            Batch b = batch(batches, 0);
            int n = b.batchSize() * b.seqLen();
            ModelConfig mc = s.model.config();
            NeuronLayout full = NeuronLayouts.full(n, n, mc.ffnDim(), NEURON_BLOCK, s.be);
            s.model.sparsity(new FixedPlan(new BlockLayout[2], new NeuronLayout[] {full, full}));
            ForwardState st = s.model.allocate(b.batchSize(), b.seqLen());
            assertThatThrownBy(() -> s.model.forwardLoss(st, b, 0f, false))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("model.decoder.layers.1.fc1")
                    .hasMessageContaining("adapter");
        }
    }

    /**
     * Float64 pre-LN OPT forward with LoRA on q and v, the attention restricted to the layouts' tiles
     * ({@link RefBlockSparseAttention}, masked dense attention) and the MLP to the neuron layouts
     * ({@link RefSparseMlp}, masked dense MLP); loss = mean cross-entropy over the shifted labels.
     */
    private static final class RefModel {
        final ModelConfig mc;
        final Map<String, double[]> w = new HashMap<>();
        final Map<String, double[]> lora = new HashMap<>();
        final float scaling;
        final int[][] attnRowPtr;
        final int[][] attnColIdx;
        final RefSparseMlp.Layout[] mlp;

        RefModel(SafetensorsFile f, ModelConfig mc, Backend be, TrainableParams params, float scalingOf,
                 BlockLayout[] attn, NeuronLayout[] mlpLayouts) {
            this.mc = mc;
            for (String name : f.names()) {
                Tensor t = f.tensor(name);
                double[] d = new double[Math.toIntExact(t.numel())];
                for (int i = 0; i < d.length; i++) {
                    d[i] = t.getFloat(i);
                }
                w.put(name.replaceFirst("^model\\.decoder\\.", ""), d);
            }
            for (TrainableParams.Param p : params.all()) {
                float[] v = Tensors.toFloats(be, p.value());
                double[] d = new double[v.length];
                for (int i = 0; i < d.length; i++) {
                    d[i] = v[i];
                }
                lora.put(p.name(), d);
            }
            scaling = scalingOf;
            int layers = mc.numLayers();
            attnRowPtr = new int[layers][];
            attnColIdx = new int[layers][];
            mlp = new RefSparseMlp.Layout[layers];
            for (int l = 0; l < layers; l++) {
                attnRowPtr[l] = Tensors.toInts(be, attn[l].rowPtr());
                attnColIdx[l] = Tensors.toInts(be, attn[l].colIdx());
                NeuronLayout nl = mlpLayouts[l];
                mlp[l] = new RefSparseMlp.Layout(nl.rows(), nl.tokenBlock(), nl.neuronBlock(), nl.maxBlocks(),
                        Tensors.toInts(be, nl.rowPtr()), Tensors.toInts(be, nl.blockIdx()));
            }
        }

        private void projection(double[] out, double[] inp, String path, int n, int c) {
            RefLinear.forward(out, inp, w.get(path + ".weight"), w.get(path + ".bias"), n, c, c);
            String key = Lora.key("model.decoder." + path, "lora_A");
            if (lora.containsKey(key)) {
                double[] a = lora.get(key);
                double[] bm = lora.get(Lora.key("model.decoder." + path, "lora_B"));
                int r = a.length / c;
                double[] xa = new double[n * r];
                RefLinear.forward(xa, inp, a, null, n, r, c);
                RefLinear.forwardAccumulate(out, xa, bm, scaling, n, c, r);
            }
        }

        /** The loss of batch b; fills logits (N, V) when not null. */
        double loss(Batch b, double[] logitsOut) {
            int bsz = b.batchSize();
            int t = b.seqLen();
            int n = bsz * t;
            int c = mc.hiddenSize();
            int nh = mc.numHeads();
            int hs = c / nh;
            int hDim = mc.ffnDim();
            double eps = mc.layerNormEps();
            int[] mask = b.attentionMask();
            int[] pos = new int[n];
            for (int s = 0; s < bsz; s++) {
                int cum = 0;
                for (int i = 0; i < t; i++) {
                    int m = mask[s * t + i] != 0 ? 1 : 0;
                    cum += m;
                    pos[s * t + i] = cum * m - 1 + 2;
                }
            }
            double[] x = new double[n * c];
            RefEmbedding.forward(x, b.inputIds(), w.get("embed_tokens.weight"), false, n, c);
            RefEmbedding.forward(x, pos, w.get("embed_positions.weight"), true, n, c);
            double[] mean = new double[n];
            double[] rstd = new double[n];
            for (int l = 0; l < mc.numLayers(); l++) {
                String p = "layers." + l + ".";
                double[] a = new double[n * c];
                RefLayerNorm.forward(a, mean, rstd, x, w.get(p + "self_attn_layer_norm.weight"),
                        w.get(p + "self_attn_layer_norm.bias"), eps, n, c);
                double[] q = new double[n * c];
                double[] k = new double[n * c];
                double[] v = new double[n * c];
                projection(q, a, p + "self_attn.q_proj", n, c);
                projection(k, a, p + "self_attn.k_proj", n, c);
                projection(v, a, p + "self_attn.v_proj", n, c);
                double[] att = new double[n * c];
                RefBlockSparseAttention.forward(att, new double[bsz * nh * t], q, k, v, mask, attnRowPtr[l],
                        attnColIdx[l], ATTN_BLOCK, bsz, t, nh, hs, 1.0 / Math.sqrt(hs));
                double[] mid = new double[n * c];
                projection(mid, att, p + "self_attn.out_proj", n, c);
                for (int i = 0; i < mid.length; i++) {
                    mid[i] += x[i];
                }
                double[] m = new double[n * c];
                RefLayerNorm.forward(m, mean, rstd, mid, w.get(p + "final_layer_norm.weight"),
                        w.get(p + "final_layer_norm.bias"), eps, n, c);
                double[] out = new double[n * c];
                RefSparseMlp.forward(out, new double[n * mlp[l].width()], m, w.get(p + "fc1.weight"),
                        w.get(p + "fc1.bias"), w.get(p + "fc2.weight"), w.get(p + "fc2.bias"), mlp[l], c, hDim);
                for (int i = 0; i < out.length; i++) {
                    x[i] = mid[i] + out[i];
                }
            }
            double[] hf = new double[n * c];
            RefLayerNorm.forward(hf, mean, rstd, x, w.get("final_layer_norm.weight"), w.get("final_layer_norm.bias"),
                    eps, n, c);
            int vocab = mc.vocabSize();
            double[] logits = logitsOut != null ? logitsOut : new double[n * vocab];
            RefLinear.forward(logits, hf, w.get("embed_tokens.weight"), null, n, vocab, c);
            double total = 0;
            int count = 0;
            for (int s = 0; s < bsz; s++) {
                for (int i = 0; i + 1 < t; i++) {
                    int label = b.labels()[s * t + i + 1];
                    if (label == Batch.IGNORE) {
                        continue;
                    }
                    int off = (s * t + i) * vocab;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < vocab; j++) {
                        max = Math.max(max, logits[off + j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < vocab; j++) {
                        sum += Math.exp(logits[off + j] - max);
                    }
                    total += max + Math.log(sum) - logits[off + label];
                    count++;
                }
            }
            return total / count;
        }
    }
}
