package org.longexposure.bench.ops;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.longexposure.backend.cpu.CpuGemm;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.backend.cpu.GemmBaselines;

/**
 * Command-line GEMM timing: GFLOP/s (2·M·N·K per product) of {@link CpuGemm} on the shapes of a LoRA step of a
 * small OPT at 1024 token rows, with 1 and 2 threads, next to two unblocked baselines on the smaller shapes.
 * Each measurement warms up until the speed settles (see {@code measure}), then times repeats for about 2 s (5 to
 * 30 of them) and reports the best and the median. On a shared machine read the median as typical, the best as
 * the ceiling.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp 'bench/target/classes:bench/target/lib/*:core/target/classes' \
 *     org.longexposure.bench.ops.GemmBenchMain [results.json] [--shapes=MxNxK:kind,...] [--threads=1,2]
 * </pre>
 */
public final class GemmBenchMain {
    /** (M, N, K, B kind): see {@link GemmShape}. */
    static final List<String> DEFAULT_SHAPES = List.of(
            "512x512x512:f32",        // the classic square check
            "1024x512x512:f16t",      // q/k/v/out projections, y = x·Wᵀ
            "1024x2048x512:f16t",     // fc1
            "1024x512x2048:f16t",     // fc2
            "1024x50272x512:f16t",    // LM head (tied embedding)
            "1024x512x2048:f16",      // fc1 backward dX = dY·W
            "1024x2048x512:f16",      // fc2 backward dX = dY·W
            "1024x8x512:f32t",        // LoRA x·Aᵀ, R = 8
            "1024x512x8:f32t",        // LoRA (x·Aᵀ)·Bᵀ
            "8x512x1024:f32");        // LoRA gradient of A, dHᵀ·x (M = R; here with a row-major A)
    private static final double BASELINE_MAX_FLOPS = 1.1e9;

    private GemmBenchMain() {
    }

    public static void main(String[] args) throws IOException {
        Path json = null;
        List<String> shapes = DEFAULT_SHAPES;
        int[] threadCounts = {1, 2};
        for (String arg : args) {
            if (arg.startsWith("--shapes=")) {
                shapes = Arrays.asList(arg.substring("--shapes=".length()).split(","));
            } else if (arg.startsWith("--threads=")) {
                threadCounts = Arrays.stream(arg.substring("--threads=".length()).split(","))
                        .mapToInt(Integer::parseInt).toArray();
            } else if (arg.startsWith("--")) {
                throw new IllegalArgumentException("unknown option '" + arg + "'; known: --shapes=, --threads=");
            } else {
                json = Path.of(arg);
            }
        }
        String loadBefore = loadAverage();
        System.out.printf(Locale.ROOT, "%-22s %-14s %7s %10s %10s %10s%n", "MxNxK:B", "impl", "threads",
                "best", "median", "median ms");
        List<Map<String, Object>> rows = new ArrayList<>();
        for (String text : shapes) {
            GemmShape shape = GemmShape.parse(text);
            try (Arena arena = Arena.ofShared()) {
                GemmShape.Operands ops = shape.allocate(arena, 1);
                if (shape.flops() <= BASELINE_MAX_FLOPS) {
                    float[] a = ops.a().segment().toArray(ValueLayout.JAVA_FLOAT);
                    float[] b = GemmShape.bAsF32(shape, ops.b());
                    float[] c = new float[shape.m() * shape.n()];
                    rows.add(measure(shape, "naive-scalar", 1,
                            () -> GemmBaselines.naiveScalar(shape.m(), shape.n(), shape.k(), a, b, c)));
                    rows.add(measure(shape, "naive-vector", 1,
                            () -> GemmBaselines.naiveVector(shape.m(), shape.n(), shape.k(), a, b, c)));
                }
                for (int t : threadCounts) {
                    try (CpuThreads threads = new CpuThreads(t)) {
                        CpuGemm gemm = new CpuGemm(threads);
                        rows.add(measure(shape, "CpuGemm", t, () -> gemm.gemm(shape.m(), shape.n(), shape.k(), 1f,
                                ops.a(), ops.b(), ops.c(), 0, shape.n(), false)));
                    }
                }
            }
        }
        if (json != null) {
            Map<String, Object> doc = new LinkedHashMap<>();
            doc.put("benchmark", "gemm");
            doc.put("date", Instant.now().toString());
            // other people's work on a shared machine shows here; it explains a low median
            doc.put("loadAverageBefore", loadBefore);
            doc.put("loadAverageAfter", loadAverage());
            doc.put("jdk", Runtime.version().toString());
            doc.put("cores", Runtime.getRuntime().availableProcessors());
            doc.put("vectorSpecies", GemmBaselines.vectorSpecies());
            doc.put("results", rows);
            new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(json.toFile(), doc);
            System.out.println("wrote " + json);
        }
    }

    private static Map<String, Object> measure(GemmShape shape, String impl, int threads, Runnable product) {
        // Warm up in windows of about 1 s until the best run of a window is within 3% of the window before: the
        // Vector API is slow until C2 has compiled every method on the path, which can take many seconds on a
        // busy machine (the packing loops run few times per call and get compiled late).
        long warmStart = System.nanoTime();
        double previousBest = Double.MAX_VALUE;
        while (true) {
            long windowStart = System.nanoTime();
            double best = Double.MAX_VALUE;
            int runs = 0;
            while (runs < 3 || System.nanoTime() - windowStart < 1_000_000_000L) {
                long t0 = System.nanoTime();
                product.run();
                best = Math.min(best, (System.nanoTime() - t0) / 1e9);
                runs++;
            }
            boolean settled = best > previousBest * 0.97;
            previousBest = Math.min(previousBest, best);
            if (settled || System.nanoTime() - warmStart > 30_000_000_000L) {
                break;
            }
        }
        int reps = (int) Math.max(5, Math.min(30, 2.0 / previousBest));
        double[] seconds = new double[reps];
        for (int r = 0; r < reps; r++) {
            long t0 = System.nanoTime();
            product.run();
            seconds[r] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(seconds);
        double best = shape.flops() / seconds[0] / 1e9;
        double median = shape.flops() / seconds[reps / 2] / 1e9;
        System.out.printf(Locale.ROOT, "%-22s %-14s %7d %10.1f %10.1f %10.3f%n", shape, impl, threads, best, median,
                seconds[reps / 2] * 1e3);
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("shape", shape.toString());
        row.put("impl", impl);
        row.put("threads", threads);
        row.put("bestGflops", round1(best));
        row.put("medianGflops", round1(median));
        row.put("medianMs", seconds[reps / 2] * 1e3);
        row.put("reps", reps);
        return row;
    }

    /** The first fields of /proc/loadavg, or "unknown" where there is none. */
    private static String loadAverage() {
        Path proc = Path.of("/proc/loadavg");
        try {
            return Files.isReadable(proc) ? Files.readString(proc).trim() : "unknown";
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static double round1(double x) {
        return Math.round(x * 10) / 10.0;
    }
}
