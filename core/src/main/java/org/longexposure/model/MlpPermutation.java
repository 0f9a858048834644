package org.longexposure.model;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * An offline reordering of each layer's FFN neurons that leaves the model's function unchanged. Neuron n of the
 * MLP is row n of fc1's weight W1 (H, C), entry n of fc1's bias b1 (H) and column n of fc2's weight W2 (C, H); the
 * element-wise activation does not mix neurons, so with {@code order[l]} a permutation π of [0, H):
 * <pre>
 * W1'[i, :] = W1[π(i), :]     b1'[i] = b1[π(i)]     W2'[:, i] = W2[:, π(i)]
 * h'[t, i]  = act(W1'[i]·x_t + b1'[i]) = h[t, π(i)]            (each fc1 output is the same dot product)
 * y'[t]     = Σ_i W2'[:, i]·h'[t, i]   = Σ_n W2[:, n]·h[t, n]  (the same terms, summed in another order)
 * </pre>
 * so fc1's outputs are bit-identical (permuted) and fc2's outputs differ only by the rounding of a reordered float
 * sum. The point is to place neurons that fire together in the same neuron blocks, so that the union of active
 * blocks over a token block is smaller (see {@code sparsity.permute.CoactivationOrder}).
 *
 * <p>File ({@link #FILE} by convention): safetensors with one I32 tensor {@code layers.<l>.order} (H) per layer and
 * metadata {@code format = longexposure-mlp-permutation}, {@code num_layers}, {@code ffn_dim}. Applied when a model
 * is loaded ({@code Architecture.load(dir, backend, permutation)}); adapters on fc1/fc2 would have to be permuted
 * too, so the loaders refuse that combination.
 *
 * @param order [L][H]: order[l][i] is the original index of the neuron at position i of layer l
 */
public record MlpPermutation(int[][] order) {
    public static final String FILE = "mlp-permutation.safetensors";
    private static final String FORMAT = "longexposure-mlp-permutation";

    public MlpPermutation {
        if (order.length == 0) {
            throw new IllegalArgumentException("MLP permutation: no layer");
        }
        int h = order[0].length;
        for (int l = 0; l < order.length; l++) {
            String bad = check(order[l], h);
            if (bad != null) {
                throw new IllegalArgumentException("MLP permutation: layer " + l + " " + bad);
            }
        }
    }

    /** The identity on L layers of H neurons. */
    public static MlpPermutation identity(int layers, int ffn) {
        int[][] o = new int[layers][ffn];
        for (int[] row : o) {
            for (int i = 0; i < ffn; i++) {
                row[i] = i;
            }
        }
        return new MlpPermutation(o);
    }

    private static String check(int[] p, int h) {
        if (p.length != h) {
            return "has " + p.length + " neurons, layer 0 has " + h;
        }
        boolean[] seen = new boolean[h];
        for (int i = 0; i < h; i++) {
            if (p[i] < 0 || p[i] >= h || seen[p[i]]) {
                return "is not a permutation of [0, " + h + "): entry " + i + " = " + p[i];
            }
            seen[p[i]] = true;
        }
        return null;
    }

    public int numLayers() {
        return order.length;
    }

    public int ffnDim() {
        return order[0].length;
    }

    /** Fails unless this permutation fits a model of {@code layers} layers with FFN width {@code ffn}. */
    public void requireFits(int layers, int ffn) {
        if (layers != numLayers() || ffn != ffnDim()) {
            throw new IllegalArgumentException("MLP permutation for " + numLayers() + " layers of " + ffnDim()
                    + " neurons does not fit a model with " + layers + " layers of " + ffn);
        }
    }

    /** v'[i] = v[π(i)] for a per-neuron vector v (H) of layer l (fc1's bias). */
    public float[] permute(int layer, float[] v) {
        int[] p = order[layer];
        float[] out = new float[p.length];
        for (int i = 0; i < p.length; i++) {
            out[i] = v[p[i]];
        }
        return out;
    }

    /** W1' (H, C): the rows of a host matrix W1 (H, C) in layer l's order, copied bytewise into {@code arena}. */
    public Tensor permuteRows(Arena arena, int layer, Tensor w) {
        int[] p = order[layer];
        long h = w.shape().dim(0);
        if (h != p.length) {
            throw new IllegalArgumentException("MLP permutation: fc1 weight " + w.shape() + " has " + h
                    + " rows, the permutation " + p.length);
        }
        long rowBytes = w.byteSize() / h;
        Tensor out = Tensor.allocateHost(arena, w.dtype(), w.shape().dims());
        MemorySegment src = w.host();
        MemorySegment dst = out.host();
        for (int i = 0; i < p.length; i++) {
            MemorySegment.copy(src, p[i] * rowBytes, dst, i * rowBytes, rowBytes);
        }
        return out;
    }

    /** W2' (C, H): the columns of a host matrix W2 (C, H) in layer l's order, copied bytewise into {@code arena}. */
    public Tensor permuteColumns(Arena arena, int layer, Tensor w) {
        int[] p = order[layer];
        long rows = w.shape().dim(0);
        long h = w.shape().dim(1);
        if (h != p.length) {
            throw new IllegalArgumentException("MLP permutation: fc2 weight " + w.shape() + " has " + h
                    + " columns, the permutation " + p.length);
        }
        long es = w.dtype().byteSize();
        Tensor out = Tensor.allocateHost(arena, w.dtype(), w.shape().dims());
        MemorySegment src = w.host();
        MemorySegment dst = out.host();
        for (long r = 0; r < rows; r++) {
            long base = r * h * es;
            for (int i = 0; i < p.length; i++) {
                MemorySegment.copy(src, base + p[i] * es, dst, base + i * es, es);
            }
        }
        return out;
    }

    /** Writes the permutation to {@code file} (atomically). */
    public void save(Path file) {
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (int l = 0; l < order.length; l++) {
                tensors.put("layers." + l + ".order",
                        Tensor.allocateHost(arena, DType.I32, order[l].length).copyFrom(order[l]));
            }
            SafetensorsWriter.write(file, tensors, Map.of("format", FORMAT, "num_layers",
                    Integer.toString(order.length), "ffn_dim", Integer.toString(ffnDim())));
        }
    }

    /** Reads a file {@link #save} wrote, failing with the file and field on anything else. */
    public static MlpPermutation load(Path file) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<String, String> meta = f.metadata();
            if (!FORMAT.equals(meta.get("format"))) {
                throw new InputFormatException(file, "__metadata__.format", "expected \"" + FORMAT + "\", got "
                        + meta.get("format"));
            }
            int layers = positive(file, meta, "num_layers");
            int ffn = positive(file, meta, "ffn_dim");
            int[][] o = new int[layers][];
            for (int l = 0; l < layers; l++) {
                String name = "layers." + l + ".order";
                if (!f.contains(name)) {
                    throw new InputFormatException(file, name, "missing tensor");
                }
                Tensor t = f.tensor(name);
                if (t.dtype() != DType.I32 || t.numel() != ffn) {
                    throw new InputFormatException(file, name, "expected " + ffn + " I32 values, got " + t);
                }
                o[l] = new int[ffn];
                for (int i = 0; i < ffn; i++) {
                    o[l][i] = t.getInt(i);
                }
                String bad = check(o[l], ffn);
                if (bad != null) {
                    throw new InputFormatException(file, name, bad);
                }
            }
            return new MlpPermutation(o);
        }
    }

    private static int positive(Path file, Map<String, String> meta, String key) {
        String v = meta.get(key);
        try {
            int n = Integer.parseInt(v);
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new InputFormatException(file, "__metadata__." + key, "expected a positive integer, got " + v);
    }
}
