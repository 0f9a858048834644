package org.longexposure.sparsity.predict;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Auto mode's calibration over several refreshes: per layer and part (attention, MLP), the ground truth of the
 * last W refresh micro-batches and the recall drift seen at each refresh; a refreshed predictor's coverage is
 * calibrated on all W samples to the target raised by a margin.
 *
 * <pre>
 * sample r    attention: the refresh micro-batch's pooled input x̄ (B, nQB, C+1) with block counts (B, nQB) and
 *             its true tile masses (B, NH, nQB, nQB); MLP: the fixed scorer's block scores Ŝ (nTB, nb), the real
 *             rows (nTB) and the true active counts (nTB, nb)
 * drift       δ_r = a_{r-1} − s_r: a_{r-1} the recall the predictor chosen at refresh r−1 had on its calibration
 *             samples, s_r its recall on refresh r's ground truth, which it has not seen (the "stale" recall: what
 *             the run had at the end of the interval)
 * margin      m_r = max(0, mean of the last W drifts); 0 until a drift has been seen, or with the margin off
 * calibrate   the smallest coverage on PredictorFit's grid whose kept share of the truth, summed over the last W
 *             samples (older pooled inputs scored afresh by the refitted predictor), reaches min(1, target + m_r);
 *             a_r = that share
 * </pre>
 * Why: calibrating on the refresh micro-batch alone is in-sample (the maps, temperatures and coverage are all
 * fitted on it) and rests on one micro-batch, while the adapters keep moving q and k until the next refresh. The
 * margin corrects the recall actually lost one interval later; the pool spreads the calibration over several
 * micro-batches (held out for the refitted maps), which on the bundled model kept the mean recall between
 * refreshes at the target with fewer kept tiles than the margin on one micro-batch (docs/SPARSITY.md section 4;
 * the pool alone, without margin, did not raise the recall). W = 1 without margin is the single-sample
 * calibration. The MLP scorer is never refitted (its input map is frozen), so its samples keep their scores.
 *
 * <p>Memory per layer: W·(B·nQB·(C+1) + B·NH·nQB² + B·nQB) numbers for the attention and W·(2·nTB·nb + nTB) for
 * the MLP, as doubles (ints for the counts), kept exactly so that a resumed run calibrates as the uninterrupted
 * one did.
 *
 * <p>Files ({@link #save}): {@code calibration.safetensors} with {@code layers.<l>.attn.<i>.means} F64 (B, nQB, C+1),
 * {@code .count} I32 (B, nQB), {@code .mass} F64 (B, NH, nQB, nQB) and {@code layers.<l>.mlp.<i>.scores} F64
 * (nTB, nb), {@code .real_rows} I32 (nTB), {@code .truth} F64 (nTB, nb), sample i = 0 the oldest; and
 * {@code calibration.json}: {@code format} ("longexposure-calibration"), {@code version} 1, {@code window},
 * {@code margin} and per layer {@code attn_samples}, {@code attn_recall} (a, null before the first calibration),
 * {@code attn_drift} (oldest first) and the same for {@code mlp_}.
 */
final class CalibrationPool {
    static final String TENSORS = "calibration.safetensors";
    static final String JSON = "calibration.json";
    private static final String FORMAT = "longexposure-calibration";

    /** One attention sample: the pooled input and the true tile masses [B][NH][nQB][nQB]. */
    record AttnSample(AttentionPredictor.Pooled pooled, double[][][][] mass) {
    }

    /** One MLP sample: the scorer's block scores [nTB][nb], real rows [nTB], true active counts [nTB][nb]. */
    record MlpSample(double[][] scores, int[] realRows, double[][] truth) {
    }

    /**
     * One calibration's outcome.
     *
     * @param coverage the chosen coverage
     * @param margin   m, added to the target
     * @param recall   a, the kept share over the pooled samples at that coverage
     */
    record Result(double coverage, double margin, double recall) {
    }

    private final int window;
    private final boolean margin;
    private final List<ArrayDeque<AttnSample>> attn = new ArrayList<>();
    private final List<ArrayDeque<MlpSample>> mlp = new ArrayList<>();
    private final List<ArrayDeque<Double>> attnDrift = new ArrayList<>();
    private final List<ArrayDeque<Double>> mlpDrift = new ArrayList<>();
    private final double[] attnRecall;
    private final double[] mlpRecall;

    /**
     * @param window W, the refresh samples pooled (≥ 1)
     * @param margin whether the target is raised by the observed drift
     */
    CalibrationPool(int layers, int window, boolean margin) {
        if (window < 1) {
            throw new IllegalArgumentException("calibration window must be >= 1, got " + window);
        }
        this.window = window;
        this.margin = margin;
        for (int l = 0; l < layers; l++) {
            attn.add(new ArrayDeque<>());
            mlp.add(new ArrayDeque<>());
            attnDrift.add(new ArrayDeque<>());
            mlpDrift.add(new ArrayDeque<>());
        }
        this.attnRecall = new double[layers];
        this.mlpRecall = new double[layers];
        Arrays.fill(attnRecall, Double.NaN);
        Arrays.fill(mlpRecall, Double.NaN);
    }

    /** Records the stale attention recall of refresh r; returns the drift δ_r (NaN before a calibration). */
    double observeAttention(int layer, double stale) {
        return observe(attnDrift.get(layer), attnRecall[layer], stale);
    }

    /** Records the stale MLP recall of refresh r; returns the drift δ_r (NaN before a calibration). */
    double observeMlp(int layer, double stale) {
        return observe(mlpDrift.get(layer), mlpRecall[layer], stale);
    }

    private double observe(ArrayDeque<Double> drifts, double calibrated, double stale) {
        if (Double.isNaN(calibrated) || Double.isNaN(stale)) {
            return Double.NaN;
        }
        double d = calibrated - stale;
        push(drifts, d);
        return d;
    }

    private <T> void push(ArrayDeque<T> q, T v) {
        q.addLast(v);
        while (q.size() > window) {
            q.removeFirst();
        }
    }

    private double margin(ArrayDeque<Double> drifts) {
        if (!margin || drifts.isEmpty()) {
            return 0;
        }
        double sum = 0;
        for (double d : drifts) {
            sum += d;
        }
        return Math.max(0, sum / drifts.size());
    }

    /** Adds refresh r's sample and calibrates the refitted predictor {@code p} (its coverage is not set here). */
    Result calibrateAttention(int layer, AttentionPredictor p, AttnSample sample, double target) {
        ArrayDeque<AttnSample> q = attn.get(layer);
        push(q, sample);
        double m = margin(attnDrift.get(layer));
        List<AttentionPredictor.Scores> scores = new ArrayList<>();
        List<double[][][][]> masses = new ArrayList<>();
        for (AttnSample s : q) {
            scores.add(p.scores(s.pooled()));
            masses.add(s.mass());
        }
        double cov = PredictorFit.calibrateAttention(p, scores, masses, Math.min(1, target + m));
        double kept = 0;
        double total = 0;
        for (int i = 0; i < scores.size(); i++) {
            AttentionPredictor.Scores sc = scores.get(i);
            double[] kt = PredictorFit.attnKept(AttentionPredictor.select(p.distribution(sc), p.numHeads, sc.nQB(),
                    cov), masses.get(i));
            kept += kt[0];
            total += kt[1];
        }
        attnRecall[layer] = total == 0 ? 1 : kept / total;
        return new Result(cov, m, attnRecall[layer]);
    }

    /** Adds refresh r's sample and calibrates the layer's MLP scorer. */
    Result calibrateMlp(int layer, MlpSample sample, double target) {
        ArrayDeque<MlpSample> q = mlp.get(layer);
        push(q, sample);
        double m = margin(mlpDrift.get(layer));
        List<double[][]> scores = new ArrayList<>();
        List<int[]> real = new ArrayList<>();
        List<double[][]> truth = new ArrayList<>();
        for (MlpSample s : q) {
            scores.add(s.scores());
            real.add(s.realRows());
            truth.add(s.truth());
        }
        double cov = PredictorFit.calibrateMlp(scores, real, truth, Math.min(1, target + m));
        double kept = 0;
        double total = 0;
        for (int i = 0; i < scores.size(); i++) {
            double[] kt = PredictorFit.mlpKept(MlpPredictor.select(scores.get(i), real.get(i), cov), truth.get(i));
            kept += kt[0];
            total += kt[1];
        }
        mlpRecall[layer] = total == 0 ? 1 : kept / total;
        return new Result(cov, m, mlpRecall[layer]);
    }

    int window() {
        return window;
    }

    boolean marginOn() {
        return margin;
    }

    // --- files ---

    /** Writes the two files into {@code dir} (which must exist), the JSON last and synced. */
    void save(Path dir) {
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            ObjectNode root = new ObjectMapper().createObjectNode();
            root.put("format", FORMAT);
            root.put("version", 1);
            root.put("window", window);
            root.put("margin", margin);
            ArrayNode layers = root.putArray("layers");
            for (int l = 0; l < attn.size(); l++) {
                ObjectNode o = layers.addObject();
                int i = 0;
                for (AttnSample s : attn.get(l)) {
                    String base = "layers." + l + ".attn." + i++ + ".";
                    int[][] count = s.pooled().count();
                    int b = count.length;
                    int nQB = count[0].length;
                    int d = s.pooled().means()[0].length / nQB;
                    int nh = s.mass()[0].length;
                    tensors.put(base + "means", f64(arena, flat(s.pooled().means()), b, nQB, d));
                    tensors.put(base + "count", i32(arena, flat(count), b, nQB));
                    tensors.put(base + "mass", f64(arena, flat(s.mass()), b, nh, nQB, nQB));
                }
                o.put("attn_samples", i);
                putNumber(o, "attn_recall", attnRecall[l]);
                putArray(o, "attn_drift", attnDrift.get(l));
                i = 0;
                for (MlpSample s : mlp.get(l)) {
                    String base = "layers." + l + ".mlp." + i++ + ".";
                    int nTB = s.realRows().length;
                    int nb = nTB == 0 ? 0 : s.scores()[0].length;
                    tensors.put(base + "scores", f64(arena, flat(s.scores()), nTB, nb));
                    tensors.put(base + "real_rows", i32(arena, s.realRows(), nTB));
                    tensors.put(base + "truth", f64(arena, flat(s.truth()), nTB, nb));
                }
                o.put("mlp_samples", i);
                putNumber(o, "mlp_recall", mlpRecall[l]);
                putArray(o, "mlp_drift", mlpDrift.get(l));
            }
            SafetensorsWriter.write(dir.resolve(TENSORS), tensors);
            writeJson(dir.resolve(JSON), root);
        }
    }

    /** Writes {@code root} to {@code file} through a synced temporary file and an atomic rename. */
    static void writeJson(Path file, JsonNode root) {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.write(tmp, new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(root));
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file, e);
        }
    }

    /**
     * Reads what {@link #save} wrote for a model of {@code layers} layers and checks the samples' shapes against
     * {@code numHeads} and {@code dim} (C).
     */
    static CalibrationPool load(Path dir, int layers, int numHeads, int dim) {
        Path jsonFile = dir.resolve(JSON);
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(jsonFile.toFile());
        } catch (IOException e) {
            throw new InputFormatException(jsonFile, "calibration", "cannot be read as JSON: " + e.getMessage(), e);
        }
        if (root == null || !FORMAT.equals(root.path("format").asText()) || root.path("version").asInt() != 1) {
            throw new InputFormatException(jsonFile, "format", "expected \"" + FORMAT + "\" version 1");
        }
        JsonNode w = root.get("window");
        if (w == null || !w.canConvertToInt() || w.asInt() < 1) {
            throw new InputFormatException(jsonFile, "window", "expected a positive integer, got " + w);
        }
        JsonNode mg = root.get("margin");
        if (mg == null || !mg.isBoolean()) {
            throw new InputFormatException(jsonFile, "margin", "expected true or false, got " + mg);
        }
        JsonNode ls = root.path("layers");
        if (!ls.isArray() || ls.size() != layers) {
            throw new InputFormatException(jsonFile, "layers", "expected an array of " + layers + " layers, got "
                    + (ls.isArray() ? ls.size() + " entries" : ls));
        }
        CalibrationPool pool = new CalibrationPool(layers, w.asInt(), mg.booleanValue());
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(TENSORS))) {
            for (int l = 0; l < layers; l++) {
                JsonNode o = ls.get(l);
                String at = "layers[" + l + "].";
                int na = count(jsonFile, o, at, "attn_samples", pool.window);
                for (int i = 0; i < na; i++) {
                    String base = "layers." + l + ".attn." + i + ".";
                    Tensor count = ofRank(f, base + "count", DType.I32, 2);
                    int b = (int) count.shape().dim(0);
                    int nQB = (int) count.shape().dim(1);
                    Tensor means = ofShape(f, base + "means", DType.F64, b, nQB, dim + 1);
                    Tensor mass = ofShape(f, base + "mass", DType.F64, b, numHeads, nQB, nQB);
                    pool.attn.get(l).addLast(new AttnSample(new AttentionPredictor.Pooled(
                            rows(doubles(means), b, nQB * (dim + 1)), rows(ints(count), b, nQB)),
                            mass4(doubles(mass), b, numHeads, nQB)));
                }
                int nm = count(jsonFile, o, at, "mlp_samples", pool.window);
                for (int i = 0; i < nm; i++) {
                    String base = "layers." + l + ".mlp." + i + ".";
                    Tensor scores = ofRank(f, base + "scores", DType.F64, 2);
                    int nTB = (int) scores.shape().dim(0);
                    int nb = (int) scores.shape().dim(1);
                    Tensor real = ofShape(f, base + "real_rows", DType.I32, nTB);
                    Tensor truth = ofShape(f, base + "truth", DType.F64, nTB, nb);
                    pool.mlp.get(l).addLast(new MlpSample(rows(doubles(scores), nTB, nb), ints(real),
                            rows(doubles(truth), nTB, nb)));
                }
                pool.attnRecall[l] = number(jsonFile, o, at, "attn_recall");
                pool.mlpRecall[l] = number(jsonFile, o, at, "mlp_recall");
                drifts(jsonFile, o, at, "attn_drift", pool.window, pool.attnDrift.get(l));
                drifts(jsonFile, o, at, "mlp_drift", pool.window, pool.mlpDrift.get(l));
            }
        }
        return pool;
    }

    private static int count(Path file, JsonNode o, String at, String field, int window) {
        JsonNode n = o.get(field);
        if (n == null || !n.canConvertToInt() || n.asInt() < 0 || n.asInt() > window) {
            throw new InputFormatException(file, at + field, "expected an integer in [0, " + window + "], got " + n);
        }
        return n.asInt();
    }

    private static double number(Path file, JsonNode o, String at, String field) {
        JsonNode n = o.get(field);
        if (n == null || n.isNull()) {
            return Double.NaN;
        }
        if (!n.isNumber()) {
            throw new InputFormatException(file, at + field, "expected a number or null, got " + n);
        }
        return n.doubleValue();
    }

    private static void drifts(Path file, JsonNode o, String at, String field, int window, ArrayDeque<Double> out) {
        JsonNode n = o.get(field);
        if (n == null || !n.isArray() || n.size() > window) {
            throw new InputFormatException(file, at + field, "expected an array of at most " + window
                    + " numbers, got " + n);
        }
        for (JsonNode x : n) {
            if (!x.isNumber()) {
                throw new InputFormatException(file, at + field, "expected numbers, got " + x);
            }
            out.addLast(x.doubleValue());
        }
    }

    private static void putNumber(ObjectNode o, String field, double v) {
        if (Double.isNaN(v)) {
            o.putNull(field);
        } else {
            o.put(field, v);
        }
    }

    private static void putArray(ObjectNode o, String field, ArrayDeque<Double> v) {
        ArrayNode a = o.putArray(field);
        v.forEach(a::add);
    }

    /** The named tensor of {@code dtype} with {@code rank} non-empty dimensions. */
    private static Tensor ofRank(SafetensorsFile f, String name, DType dtype, int rank) {
        Tensor t = present(f, name);
        if (t.dtype() != dtype || t.shape().rank() != rank || t.numel() == 0) {
            throw InputFormatException.tensor(f.path(), name, "expected a non-empty " + dtype + " tensor of rank "
                    + rank + ", got " + t);
        }
        return t;
    }

    /** The named tensor of {@code dtype} with exactly {@code dims}. */
    private static Tensor ofShape(SafetensorsFile f, String name, DType dtype, long... dims) {
        Tensor t = present(f, name);
        if (t.dtype() != dtype || !Arrays.equals(t.shape().dims(), dims)) {
            throw InputFormatException.tensor(f.path(), name, "expected " + dtype + " " + Arrays.toString(dims)
                    + ", got " + t);
        }
        return t;
    }

    private static Tensor present(SafetensorsFile f, String name) {
        if (!f.contains(name)) {
            throw InputFormatException.tensor(f.path(), name, "missing");
        }
        return f.tensor(name);
    }

    private static Tensor f64(Arena arena, double[] v, long... dims) {
        Tensor t = Tensor.allocateHost(arena, DType.F64, dims);
        MemorySegment.copy(v, 0, t.host(), ValueLayout.JAVA_DOUBLE_UNALIGNED, 0, v.length);
        return t;
    }

    private static Tensor i32(Arena arena, int[] v, long... dims) {
        return Tensor.allocateHost(arena, DType.I32, dims).copyFrom(v);
    }

    private static double[] doubles(Tensor t) {
        double[] out = new double[Math.toIntExact(t.numel())];
        MemorySegment.copy(t.host(), ValueLayout.JAVA_DOUBLE_UNALIGNED, 0, out, 0, out.length);
        return out;
    }

    private static int[] ints(Tensor t) {
        int[] out = new int[Math.toIntExact(t.numel())];
        MemorySegment.copy(t.host(), ValueLayout.JAVA_INT_UNALIGNED, 0, out, 0, out.length);
        return out;
    }

    private static double[] flat(double[][] a) {
        int n = a.length == 0 ? 0 : a[0].length;
        double[] out = new double[a.length * n];
        for (int i = 0; i < a.length; i++) {
            System.arraycopy(a[i], 0, out, i * n, n);
        }
        return out;
    }

    private static int[] flat(int[][] a) {
        int n = a.length == 0 ? 0 : a[0].length;
        int[] out = new int[a.length * n];
        for (int i = 0; i < a.length; i++) {
            System.arraycopy(a[i], 0, out, i * n, n);
        }
        return out;
    }

    private static double[] flat(double[][][][] a) {
        List<double[]> rows = new ArrayList<>();
        for (double[][][] x : a) {
            for (double[][] y : x) {
                rows.addAll(Arrays.asList(y));
            }
        }
        return flat(rows.toArray(double[][]::new));
    }

    private static double[][] rows(double[] v, int n, int width) {
        double[][] out = new double[n][];
        for (int i = 0; i < n; i++) {
            out[i] = Arrays.copyOfRange(v, i * width, (i + 1) * width);
        }
        return out;
    }

    private static int[][] rows(int[] v, int n, int width) {
        int[][] out = new int[n][];
        for (int i = 0; i < n; i++) {
            out[i] = Arrays.copyOfRange(v, i * width, (i + 1) * width);
        }
        return out;
    }

    private static double[][][][] mass4(double[] v, int b, int nh, int nQB) {
        double[][][][] out = new double[b][nh][nQB][];
        int at = 0;
        for (int i = 0; i < b; i++) {
            for (int h = 0; h < nh; h++) {
                for (int q = 0; q < nQB; q++) {
                    out[i][h][q] = Arrays.copyOfRange(v, at, at + nQB);
                    at += nQB;
                }
            }
        }
        return out;
    }
}
