package org.longexposure.model.opt;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.safetensors.ShardedCheckpoint;
import org.longexposure.model.Linear;
import org.longexposure.model.MlpPermutation;
import org.longexposure.model.ModelConfig;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Tensor;

/**
 * OPT's frozen parameters, mapped from HF tensor names ({@code model.decoder.…}; older checkpoints omit the
 * {@code model.} prefix). Weight matrices and embedding tables are handed to {@link Backend#adoptWeight}: the CPU
 * backend keeps them memory-mapped in the checkpoint's dtype (F32/F16/BF16) and reads them in place, a device
 * backend uploads them. LayerNorm parameters and biases (vectors, &lt;1% of the bytes) are converted to F32 on the
 * host once, because the element-wise ops read F32, and written into backend tensors.
 */
public final class OptWeights {
    final Tensor embedTokens;      // (V, P)
    final Tensor embedPositions;   // (maxPositions + 2, C)
    final Linear projectIn;        // P -> C, no bias, or null
    final Linear projectOut;       // C -> P, no bias, or null
    final Tensor finalLnWeight;    // (C) or null
    final Tensor finalLnBias;      // (C) or null
    final Tensor lmHead;           // (V, P): embedTokens when tied
    final List<Layer> layers;

    /** One decoder layer's parameters. */
    static final class Layer {
        Linear q;
        Linear k;
        Linear v;
        Linear o;
        Linear fc1;
        Linear fc2;
        Tensor ln1Weight; // self_attn_layer_norm (C)
        Tensor ln1Bias;
        Tensor ln2Weight; // final_layer_norm (C)
        Tensor ln2Bias;
    }

    private OptWeights(Tensor embedTokens, Tensor embedPositions, Linear projectIn, Linear projectOut,
                       Tensor finalLnWeight, Tensor finalLnBias, Tensor lmHead, List<Layer> layers) {
        this.embedTokens = embedTokens;
        this.embedPositions = embedPositions;
        this.projectIn = projectIn;
        this.projectOut = projectOut;
        this.finalLnWeight = finalLnWeight;
        this.finalLnBias = finalLnBias;
        this.lmHead = lmHead;
        this.layers = layers;
    }

    /**
     * Random frozen weights for the shapes of {@code cfg}: matrices and tables U(−0.02·√3, 0.02·√3), i.e. standard
     * deviation 0.02 like HF's {@code init_std} (HF draws a normal; the uniform of {@link Backend#fillUniform} has
     * the same scale and is generated on the device), each with its own seed drawn in module order from
     * {@code seed}; biases 0; LayerNorm weight 1 and bias 0. Matrices are BF16 when the backend's activations are
     * BF16, else F32.
     */
    static OptWeights random(ModelConfig cfg, Backend be, long seed) {
        RandomDraws r = new RandomDraws(cfg, be, new SplittableRandom(seed));
        int c = cfg.hiddenSize();
        int p = cfg.wordEmbedProjDim();
        String d = "model.decoder.";
        Tensor embedTokens = r.matrix(cfg.vocabSize(), p);
        Tensor embedPositions = r.matrix(cfg.maxPositions() + cfg.positionOffset(), c);
        Linear projectIn = null;
        Linear projectOut = null;
        if (cfg.hasEmbedProjection()) {
            projectIn = new Linear(d + "project_in", r.matrix(c, p), null);
            projectOut = new Linear(d + "project_out", r.matrix(p, c), null);
        }
        Tensor fw = null;
        Tensor fb = null;
        if (cfg.finalLayerNorm() && cfg.layerNormAffine()) {
            fw = r.ones(c);
            fb = be.allocate(DType.F32, c);
        }
        Tensor lmHead = cfg.tieWordEmbeddings() ? embedTokens : r.matrix(cfg.vocabSize(), p);
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < cfg.numLayers(); i++) {
            String l = d + "layers." + i + ".";
            Layer layer = new Layer();
            layer.q = r.linear(l + "self_attn.q_proj", c, c);
            layer.k = r.linear(l + "self_attn.k_proj", c, c);
            layer.v = r.linear(l + "self_attn.v_proj", c, c);
            layer.o = r.linear(l + "self_attn.out_proj", c, c);
            layer.fc1 = r.linear(l + "fc1", cfg.ffnDim(), c);
            layer.fc2 = r.linear(l + "fc2", c, cfg.ffnDim());
            if (cfg.layerNormAffine()) {
                layer.ln1Weight = r.ones(c);
                layer.ln1Bias = be.allocate(DType.F32, c);
                layer.ln2Weight = r.ones(c);
                layer.ln2Bias = be.allocate(DType.F32, c);
            }
            layers.add(layer);
        }
        return new OptWeights(embedTokens, embedPositions, projectIn, projectOut, fw, fb, lmHead,
                List.copyOf(layers));
    }

    /** Draws the random tensors of {@link #random}. */
    private record RandomDraws(ModelConfig cfg, Backend be, SplittableRandom seeds) {
        /** Half-width of U(−a, a) with standard deviation 0.02: a = 0.02·√3. */
        static final float BOUND = (float) (0.02 * Math.sqrt(3.0));

        Tensor matrix(long rows, long cols) {
            DType dtype = be.activationDType() == DType.BF16 ? DType.BF16 : DType.F32;
            Tensor t = be.allocate(dtype, rows, cols);
            be.fillUniform(t, -BOUND, BOUND, seeds.nextLong());
            return t;
        }

        Tensor ones(long n) {
            Tensor t = be.allocate(DType.F32, n);
            float[] one = new float[Math.toIntExact(n)];
            Arrays.fill(one, 1f);
            Tensors.copyFrom(be, t, one);
            return t;
        }

        Linear linear(String path, long out, long in) {
            Tensor w = matrix(out, in);
            return new Linear(path, w, cfg.enableBias() ? be.allocate(DType.F32, out) : null);
        }
    }

    /**
     * Maps the checkpoint's weights. With a {@code permutation}, each layer's fc1 rows, fc1 bias and fc2 columns
     * are reordered into host copies allocated in {@code arena} (bytes copied in the checkpoint's dtype, so the
     * values are exact), which the backend adopts instead of the mapped originals.
     */
    static OptWeights load(ShardedCheckpoint ckpt, ModelConfig cfg, Backend be, MlpPermutation permutation,
                           Arena arena) {
        if (permutation != null) {
            permutation.requireFits(cfg.numLayers(), cfg.ffnDim());
        }
        Reader r = new Reader(ckpt, be);
        int c = cfg.hiddenSize();
        int p = cfg.wordEmbedProjDim();
        String d = "model.decoder.";
        Tensor embedTokens = r.matrix(d + "embed_tokens.weight", cfg.vocabSize(), p);
        Tensor embedPositions = r.matrix(d + "embed_positions.weight",
                cfg.maxPositions() + cfg.positionOffset(), c);
        Linear projectIn = null;
        Linear projectOut = null;
        if (cfg.hasEmbedProjection()) {
            projectIn = new Linear(d + "project_in", r.matrix(d + "project_in.weight", c, p), null);
            projectOut = new Linear(d + "project_out", r.matrix(d + "project_out.weight", p, c), null);
        }
        Tensor fw = null;
        Tensor fb = null;
        if (cfg.finalLayerNorm() && cfg.layerNormAffine()) {
            fw = r.vector(d + "final_layer_norm.weight", c);
            fb = r.vector(d + "final_layer_norm.bias", c);
        }
        Tensor lmHead = embedTokens;
        if (!cfg.tieWordEmbeddings()) {
            lmHead = r.matrix("lm_head.weight", cfg.vocabSize(), p);
        }
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < cfg.numLayers(); i++) {
            String l = d + "layers." + i + ".";
            Layer layer = new Layer();
            layer.q = r.linear(l + "self_attn.q_proj", c, c, cfg.enableBias());
            layer.k = r.linear(l + "self_attn.k_proj", c, c, cfg.enableBias());
            layer.v = r.linear(l + "self_attn.v_proj", c, c, cfg.enableBias());
            layer.o = r.linear(l + "self_attn.out_proj", c, c, cfg.enableBias());
            if (permutation == null) {
                layer.fc1 = r.linear(l + "fc1", cfg.ffnDim(), c, cfg.enableBias());
                layer.fc2 = r.linear(l + "fc2", c, cfg.ffnDim(), cfg.enableBias());
            } else {
                layer.fc1 = r.permutedFc1(l + "fc1", cfg.ffnDim(), c, cfg.enableBias(), permutation, i, arena);
                layer.fc2 = r.permutedFc2(l + "fc2", c, cfg.ffnDim(), cfg.enableBias(), permutation, i, arena);
            }
            if (cfg.layerNormAffine()) {
                layer.ln1Weight = r.vector(l + "self_attn_layer_norm.weight", c);
                layer.ln1Bias = r.vector(l + "self_attn_layer_norm.bias", c);
                layer.ln2Weight = r.vector(l + "final_layer_norm.weight", c);
                layer.ln2Bias = r.vector(l + "final_layer_norm.bias", c);
            }
            layers.add(layer);
        }
        return new OptWeights(embedTokens, embedPositions, projectIn, projectOut, fw, fb, lmHead,
                List.copyOf(layers));
    }

    /** Looks tensors up under their HF name (with or without the {@code model.} prefix) and checks shapes. */
    private record Reader(ShardedCheckpoint ckpt, Backend be) {
        Tensor find(String name) {
            if (ckpt.contains(name)) {
                return ckpt.tensor(name);
            }
            String bare = name.startsWith("model.") ? name.substring("model.".length()) : name;
            if (ckpt.contains(bare)) {
                return ckpt.tensor(bare);
            }
            return ckpt.tensor(name); // fails with the checkpoint's own message naming the missing tensor
        }

        Tensor matrix(String name, long rows, long cols) {
            Tensor t = find(name);
            checkShape(name, t, rows, cols);
            if (!(t.dtype() == DType.F32 || t.dtype() == DType.F16 || t.dtype() == DType.BF16)) {
                throw InputFormatException.tensor(ckpt.fileOf(name), name,
                        "dtype " + t.dtype() + " is not supported for weights (f32, f16, bf16)");
            }
            return be.adoptWeight(t, name);
        }

        /** A vector converted to F32 on the host (the checkpoint's mapping), then written into a backend tensor. */
        Tensor vector(String name, long n) {
            Tensor src = find(name);
            checkShape(name, src, n);
            Tensor dst = be.allocate(DType.F32, n);
            Tensors.copyFrom(be, dst, src.toFloatArray());
            return dst;
        }

        Linear linear(String path, long out, long in, boolean bias) {
            Tensor w = matrix(path + ".weight", out, in);
            Tensor b = bias ? vector(path + ".bias", out) : null;
            return new Linear(path, w, b);
        }

        /** fc1 with its weight rows and bias entries in the permutation's order. */
        Linear permutedFc1(String path, long out, long in, boolean bias, MlpPermutation p, int layer, Arena arena) {
            String name = path + ".weight";
            Tensor t = find(name);
            checkShape(name, t, out, in);
            checkDType(name, t);
            Tensor w = be.adoptWeight(p.permuteRows(arena, layer, t), name);
            Tensor b = null;
            if (bias) {
                Tensor src = find(path + ".bias");
                checkShape(path + ".bias", src, out);
                b = be.allocate(DType.F32, out);
                Tensors.copyFrom(be, b, p.permute(layer, src.toFloatArray()));
            }
            return new Linear(path, w, b);
        }

        /** fc2 with its weight columns in the permutation's order (its bias is per output, unchanged). */
        Linear permutedFc2(String path, long out, long in, boolean bias, MlpPermutation p, int layer, Arena arena) {
            String name = path + ".weight";
            Tensor t = find(name);
            checkShape(name, t, out, in);
            checkDType(name, t);
            Tensor w = be.adoptWeight(p.permuteColumns(arena, layer, t), name);
            return new Linear(path, w, bias ? vector(path + ".bias", out) : null);
        }

        void checkDType(String name, Tensor t) {
            if (!(t.dtype() == DType.F32 || t.dtype() == DType.F16 || t.dtype() == DType.BF16)) {
                throw InputFormatException.tensor(ckpt.fileOf(name), name,
                        "dtype " + t.dtype() + " is not supported for weights (f32, f16, bf16)");
            }
        }

        void checkShape(String name, Tensor t, long... dims) {
            if (!t.shape().equals(Shape.of(dims))) {
                throw InputFormatException.tensor(ckpt.fileOf(name), name, "shape " + t.shape() + " does not fit the config: expected "
                        + Shape.of(dims));
            }
        }
    }
}
