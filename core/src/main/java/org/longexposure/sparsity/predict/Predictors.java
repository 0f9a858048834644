package org.longexposure.sparsity.predict;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * A model's fitted predictors, one {@link AttentionPredictor} and (ReLU models) one {@link MlpPredictor} per layer,
 * as a {@link SparsityPlan} and as files.
 *
 * <p>Files, in one folder: {@code predictors.safetensors} (F32) with {@code layers.<l>.attn.q} and
 * {@code layers.<l>.attn.k} (NH, C+1, R), {@code layers.<l>.attn.gamma} (NH) and {@code layers.<l>.mlp.weight}
 * (nb, C+1), the last column the bias; and {@code predictors.json}: {@code format} ("longexposure-predictors"),
 * {@code version} 2, {@code hidden_size}, {@code num_heads}, {@code ffn_dim}, {@code attn_block}, {@code rank},
 * {@code neuron_block}, {@code token_block} and per layer {@code attn_coverage} and {@code mlp_coverage} (null when
 * the layer has no MLP predictor), the budgets where set: {@code attn_max_row_fraction} (in (0, 1]) and
 * {@code mlp_max_blocks} (≥ 0; a missing budget means none), and {@code attn_dense} and {@code mlp_dense}: the
 * dense fallback, true where {@code finetune --sparsity auto} last decided to run that layer part dense (its
 * realised density above {@code --dense-above}); {@code mlp_dense} is null without MLP predictors. Version 1 files
 * (written before the fallback was recorded) are read too: a missing or null fallback field means "no fallback",
 * run sparse. Each file is written to a temporary name and renamed into place, the JSON last, so a reader sees
 * either the previous pair or the new one's tensors before its JSON.
 */
public final class Predictors implements PredictorPlan.Source {
    public static final String TENSORS = "predictors.safetensors";
    public static final String JSON = "predictors.json";
    private static final String FORMAT = "longexposure-predictors";
    /** The version {@link #save} writes; {@link #load} reads every version from 1 to this one. */
    private static final int VERSION = 2;

    private final List<AttentionPredictor> attention;
    private final List<MlpPredictor> mlp;
    private final boolean[] attentionDense;
    private final boolean[] mlpDense;

    /** Predictors without a dense fallback (every layer part runs sparse). */
    public Predictors(List<AttentionPredictor> attention, List<MlpPredictor> mlp) {
        this(attention, mlp, null, null);
    }

    /**
     * @param mlp            one per layer, or an empty list for a model without a ReLU MLP
     * @param attentionDense per layer, whether its attention runs dense (auto's fallback); null: none does
     * @param mlpDense       per layer, whether its MLP runs dense; null: none does (ignored without MLP predictors)
     */
    public Predictors(List<AttentionPredictor> attention, List<MlpPredictor> mlp, boolean[] attentionDense,
                      boolean[] mlpDense) {
        if (attention.isEmpty() || (!mlp.isEmpty() && mlp.size() != attention.size())) {
            throw new IllegalArgumentException("predictors: need one attention predictor per layer and zero or as"
                    + " many MLP predictors, got " + attention.size() + " and " + mlp.size());
        }
        this.attention = List.copyOf(attention);
        this.mlp = List.copyOf(mlp);
        this.attentionDense = fallback(attentionDense, attention.size(), "attention");
        this.mlpDense = mlp.isEmpty() ? new boolean[attention.size()] : fallback(mlpDense, attention.size(), "MLP");
    }

    public int numLayers() {
        return attention.size();
    }

    public AttentionPredictor attention(int layer) {
        return attention.get(layer);
    }

    /** The layer's MLP predictor, or null when the model has none (non-ReLU). */
    public MlpPredictor mlp(int layer) {
        return mlp.isEmpty() ? null : mlp.get(layer);
    }

    // --- dense fallback: auto's per-layer "run this part dense" decision, saved and read with the predictors ---

    /** Whether layer l's attention runs dense instead of with its predictor (auto's fallback). */
    public boolean attentionDense(int layer) {
        return attentionDense[layer];
    }

    /** Whether layer l's MLP runs dense instead of with its predictor (false without MLP predictors). */
    public boolean mlpDense(int layer) {
        return mlpDense[layer];
    }

    private static boolean[] fallback(boolean[] dense, int layers, String what) {
        if (dense == null) {
            return new boolean[layers];
        }
        if (dense.length != layers) {
            throw new IllegalArgumentException("predictors: " + what + " dense fallback for " + dense.length
                    + " layers, expected " + layers);
        }
        return dense.clone();
    }

    /** Writes the layer's fallback fields into its predictors.json entry. */
    private void putDenseFallback(ObjectNode layerNode, int layer) {
        layerNode.put("attn_dense", attentionDense[layer]);
        if (mlp.isEmpty()) {
            layerNode.putNull("mlp_dense");
        } else {
            layerNode.put("mlp_dense", mlpDense[layer]);
        }
    }

    /** A fallback field of layers[l]: missing or null (version 1 files) is false, else it must be a boolean. */
    private static boolean readDenseFallback(Path file, JsonNode layerNode, int layer, String field) {
        JsonNode n = layerNode.get(field);
        if (n == null || n.isNull()) {
            return false;
        }
        if (!n.isBoolean()) {
            throw new InputFormatException(file, "layers[" + layer + "]." + field, "expected true, false or null,"
                    + " got " + n);
        }
        return n.booleanValue();
    }

    // --- end of dense fallback ---

    /**
     * A plan that predicts each layer's layouts from its input on every micro-batch, entirely with {@code be}'s
     * ops ({@link PredictorPlan}: nothing goes through the host per layer); {@code sparseAttention} /
     * {@code sparseMlp} switch the two sockets on. The plan's layouts and work tensors live on {@code be}.
     */
    public SparsityPlan plan(Backend be, boolean sparseAttention, boolean sparseMlp) {
        if (sparseMlp && mlp.isEmpty()) {
            throw new IllegalArgumentException("these predictors have no MLP predictor (the model's MLP is not ReLU)");
        }
        return new PredictorPlan(this, be, sparseAttention, sparseMlp);
    }

    /** Writes the two files into {@code dir} (created if missing). */
    public void save(Path dir) {
        AttentionPredictor a0 = attention.get(0);
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (int l = 0; l < attention.size(); l++) {
                AttentionPredictor a = attention.get(l);
                tensors.put("layers." + l + ".attn.q", host(arena, a.pq, a.numHeads, a.dim + 1, a.rank));
                tensors.put("layers." + l + ".attn.k", host(arena, a.pk, a.numHeads, a.dim + 1, a.rank));
                tensors.put("layers." + l + ".attn.gamma", host(arena, a.gamma, a.numHeads));
                if (!mlp.isEmpty()) {
                    MlpPredictor m = mlp.get(l);
                    tensors.put("layers." + l + ".mlp.weight", host(arena, m.weight, m.numBlocks(), m.dim + 1));
                }
            }
            Files.createDirectories(dir);
            SafetensorsWriter.write(dir.resolve(TENSORS), tensors);
            ObjectNode root = new ObjectMapper().createObjectNode();
            root.put("format", FORMAT);
            root.put("version", VERSION);
            root.put("hidden_size", a0.dim);
            root.put("num_heads", a0.numHeads);
            root.put("attn_block", a0.block);
            root.put("rank", a0.rank);
            if (!mlp.isEmpty()) {
                root.put("ffn_dim", mlp.get(0).ffn);
                root.put("neuron_block", mlp.get(0).neuronBlock);
                root.put("token_block", mlp.get(0).tokenBlock);
            }
            ArrayNode layers = root.putArray("layers");
            for (int l = 0; l < attention.size(); l++) {
                ObjectNode o = layers.addObject();
                o.put("attn_coverage", attention.get(l).coverage);
                if (mlp.isEmpty()) {
                    o.putNull("mlp_coverage");
                } else {
                    o.put("mlp_coverage", mlp.get(l).coverage);
                }
                writeBudgets(o, l);
                putDenseFallback(o, l);
            }
            Path tmp = dir.resolve(JSON + ".tmp");
            new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), root);
            Files.move(tmp, dir.resolve(JSON), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("writing predictors to " + dir, e);
        }
    }

    private static Tensor host(Arena arena, float[] v, long... dims) {
        return Tensor.allocateHost(arena, DType.F32, dims).copyFrom(v);
    }

    /** Reads the files {@link #save} wrote. */
    public static Predictors load(Path dir) {
        Path jsonFile = dir.resolve(JSON);
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(jsonFile.toFile());
        } catch (IOException e) {
            throw new InputFormatException(jsonFile, "predictors", "cannot be read as JSON: " + e.getMessage(), e);
        }
        if (root == null || !FORMAT.equals(root.path("format").asText())) {
            throw new InputFormatException(jsonFile, "format", "expected \"" + FORMAT + "\"");
        }
        JsonNode version = root.path("version");
        if (!version.canConvertToInt() || version.asInt() < 1 || version.asInt() > VERSION) {
            throw new InputFormatException(jsonFile, "version", "expected 1 to " + VERSION + ", got " + version);
        }
        int c = intField(jsonFile, root, "hidden_size");
        int nh = intField(jsonFile, root, "num_heads");
        int block = intField(jsonFile, root, "attn_block");
        int rank = intField(jsonFile, root, "rank");
        boolean hasMlp = root.has("ffn_dim");
        JsonNode layers = root.path("layers");
        if (!layers.isArray() || layers.isEmpty()) {
            throw new InputFormatException(jsonFile, "layers", "expected a non-empty array");
        }
        List<AttentionPredictor> attn = new ArrayList<>();
        List<MlpPredictor> mlps = new ArrayList<>();
        boolean[] attnDense = new boolean[layers.size()];
        boolean[] mlpDense = new boolean[layers.size()];
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(TENSORS))) {
            for (int l = 0; l < layers.size(); l++) {
                JsonNode lj = layers.get(l);
                attnDense[l] = readDenseFallback(jsonFile, lj, l, "attn_dense");
                mlpDense[l] = readDenseFallback(jsonFile, lj, l, "mlp_dense");
                attn.add(new AttentionPredictor(nh, c, rank, block,
                        floats(f, "layers." + l + ".attn.q", (long) nh * (c + 1) * rank),
                        floats(f, "layers." + l + ".attn.k", (long) nh * (c + 1) * rank),
                        floats(f, "layers." + l + ".attn.gamma", nh), lj.path("attn_coverage").asDouble(1)));
                if (hasMlp) {
                    int ffn = intField(jsonFile, root, "ffn_dim");
                    int bn = intField(jsonFile, root, "neuron_block");
                    int tb = intField(jsonFile, root, "token_block");
                    long nb = (ffn + (long) bn - 1) / bn;
                    mlps.add(new MlpPredictor(c, ffn, bn, tb, floats(f, "layers." + l + ".mlp.weight",
                            nb * (c + 1)), lj.path("mlp_coverage").asDouble(1)));
                }
                readBudgets(jsonFile, lj, l, attn.get(l), hasMlp ? mlps.get(l) : null);
            }
        }
        return new Predictors(attn, mlps, attnDense, mlpDense);
    }

    /**
     * Imposes budgets on every layer: attention rows keep at most {@code attnRowFraction} of their causal tiles
     * (forced ones aside; 1 = none), layer l's MLP at most {@code mlpMaxBlocks[l]} neuron blocks per token block
     * (null = leave the MLP budgets as they are).
     */
    public void budgets(double attnRowFraction, int[] mlpMaxBlocks) {
        if (mlpMaxBlocks != null && (mlp.isEmpty() || mlpMaxBlocks.length != mlp.size())) {
            throw new IllegalArgumentException("MLP budgets: expected one per layer (" + attention.size() + "), got "
                    + mlpMaxBlocks.length + (mlp.isEmpty() ? " for predictors without MLP predictors" : ""));
        }
        for (int l = 0; l < attention.size(); l++) {
            attention.get(l).maxRowFraction(attnRowFraction);
            if (mlpMaxBlocks != null) {
                mlp.get(l).maxBlocks(mlpMaxBlocks[l]);
            }
        }
    }

    /**
     * Predictors of the right shapes with seeded random parameters (projections and scorer weights uniform in
     * ±1/√C, temperatures 1, coverage 1): layouts that change with every input, for speed measurements on models
     * with random weights, where a fit would have nothing to learn. Budgets decide the densities.
     */
    public static Predictors random(ModelConfig cfg, int rank, int attnBlock, int neuronBlock, int tokenBlock,
                                    long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int c = cfg.hiddenSize();
        int nh = cfg.numHeads();
        float bound = (float) (1 / Math.sqrt(c));
        List<AttentionPredictor> attn = new ArrayList<>();
        List<MlpPredictor> mlps = new ArrayList<>();
        for (int l = 0; l < cfg.numLayers(); l++) {
            float[] gamma = new float[nh];
            Arrays.fill(gamma, 1f);
            attn.add(new AttentionPredictor(nh, c, rank, attnBlock, uniform(rng, nh * (c + 1) * rank, bound),
                    uniform(rng, nh * (c + 1) * rank, bound), gamma, 1.0));
            if (cfg.activation() == Activation.RELU) {
                int nb = (cfg.ffnDim() + neuronBlock - 1) / neuronBlock;
                mlps.add(new MlpPredictor(c, cfg.ffnDim(), neuronBlock, tokenBlock, uniform(rng, nb * (c + 1), bound),
                        1.0));
            }
        }
        return new Predictors(attn, mlps);
    }

    private static float[] uniform(SplittableRandom rng, int n, float bound) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
        return v;
    }

    /** The budget fields of layer l's JSON object (written only where a budget is set). */
    private void writeBudgets(ObjectNode o, int l) {
        AttentionPredictor a = attention.get(l);
        if (a.maxRowFraction < 1) {
            o.put("attn_max_row_fraction", a.maxRowFraction);
        }
        if (!mlp.isEmpty() && mlp.get(l).budget >= 0) {
            o.put("mlp_max_blocks", mlp.get(l).budget);
        }
    }

    private static void readBudgets(Path file, JsonNode lj, int l, AttentionPredictor a, MlpPredictor m) {
        JsonNode f = lj.get("attn_max_row_fraction");
        if (f != null && !f.isNull()) {
            if (!f.isNumber() || !(f.asDouble() > 0 && f.asDouble() <= 1)) {
                throw new InputFormatException(file, "layers[" + l + "].attn_max_row_fraction",
                        "expected a number in (0, 1], got " + f);
            }
            a.maxRowFraction(f.asDouble());
        }
        JsonNode b = lj.get("mlp_max_blocks");
        if (b != null && !b.isNull()) {
            if (m == null || !b.canConvertToInt() || b.asInt() < 0) {
                throw new InputFormatException(file, "layers[" + l + "].mlp_max_blocks", m == null
                        ? "set, but these predictors have no MLP predictor" : "expected an integer >= 0, got " + b);
            }
            m.maxBlocks(b.asInt());
        }
    }

    private static float[] floats(SafetensorsFile f, String name, long expected) {
        if (!f.contains(name)) {
            throw new InputFormatException(f.path(), name, "missing tensor");
        }
        Tensor t = f.tensor(name);
        if (t.dtype() != DType.F32 || t.numel() != expected) {
            throw new InputFormatException(f.path(), name, "expected " + expected + " F32 values, got " + t);
        }
        return t.toFloatArray();
    }

    private static int intField(Path file, JsonNode root, String name) {
        JsonNode n = root.get(name);
        if (n == null || !n.canConvertToInt() || n.asInt() < 1) {
            throw new InputFormatException(file, name, "expected a positive integer, got " + n);
        }
        return n.asInt();
    }
}
