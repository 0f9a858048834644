package org.longexposure.bench.step;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.backend.cpu.CpuGemm;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.backend.cpu.GemmCounters;
import org.longexposure.backend.cpu.MatrixRef;
import org.longexposure.bench.BenchInfo;
import org.longexposure.io.data.Batch;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ModelConfig;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.tensor.DType;
import org.longexposure.train.LrSchedule;
import org.longexposure.train.StepResult;
import org.longexposure.train.TrainConfig;
import org.longexposure.train.Trainer;

/**
 * One LoRA training step on the CPU (forward, loss, backward, clip, AdamW) for a real checkpoint, with the GEMM
 * micro-benchmark run in the same process beside it: ms/step, tokens/s, the GFLOP/s the step's matrix products
 * reached (timed inside the step), and that as a fraction of the micro-benchmark's GFLOP/s on the step's own
 * shapes.
 *
 * <pre>
 * java ... org.longexposure.bench.step.LoraStepBench MODEL_DIR [--batch 4] [--seq 256] [--threads N]
 *      [--steps 5] [--warmup 2] [--commit SHA] [--out FILE.json]
 * </pre>
 */
public final class LoraStepBench {
    private LoraStepBench() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: LoraStepBench MODEL_DIR [--batch 4] [--seq 256] [--threads N] [--steps 5]"
                    + " [--warmup 2] [--commit SHA] [--out FILE.json]");
            System.exit(2);
        }
        Path modelDir = Path.of(args[0]);
        int batch = 4;
        int seq = 256;
        int threads = Runtime.getRuntime().availableProcessors();
        int steps = 5;
        int warmup = 2;
        String commit = "unknown";
        Path out = null;
        for (int i = 1; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--batch" -> batch = Integer.parseInt(v);
                case "--seq" -> seq = Integer.parseInt(v);
                case "--threads" -> threads = Integer.parseInt(v);
                case "--steps" -> steps = Integer.parseInt(v);
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--commit" -> commit = v;
                case "--out" -> out = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        ObjectNode result = BenchInfo.header("lora-step-cpu", commit);
        try (CpuBackend be = new CpuBackend(threads); CausalLm model = Architecture.load(modelDir, be)) {
            ModelConfig cfg = model.config();
            TrainableParams params = new TrainableParams();
            LoraConfig lora = new LoraConfig(8, 16, 0f, LoraConfig.DEFAULT_TARGETS, false);
            Lora.apply(model, lora, be, params, 0);
            Trainer trainer = new Trainer(be, model, params, TrainConfig.of(LrSchedule.constant(1e-4), 0f), batch,
                    seq);
            SplittableRandom rng = new SplittableRandom(1);
            Batch b = randomBatch(rng, batch, seq, cfg.vocabSize());
            for (int i = 0; i < warmup; i++) {
                trainer.step(List.of(b));
            }
            GemmCounters counters = be.gemmCounters();
            counters.reset();
            double[] ms = new double[steps];
            for (int i = 0; i < steps; i++) {
                StepResult r = trainer.step(List.of(b));
                ms[i] = r.seconds() * 1e3;
            }
            double[] sorted = ms.clone();
            Arrays.sort(sorted);
            double median = sorted[steps / 2];
            double stepGflops = counters.gflops();
            double gemmShare = counters.seconds() * 1e3 / Arrays.stream(ms).sum();
            ObjectNode config = result.putObject("config");
            config.put("model", modelDir.toString());
            config.put("hidden", cfg.hiddenSize());
            config.put("layers", cfg.numLayers());
            config.put("ffn", cfg.ffnDim());
            config.put("vocab", cfg.vocabSize());
            config.put("batch", batch);
            config.put("seq", seq);
            config.put("threads", threads);
            config.put("lora", "r=8 alpha=16 q_proj,v_proj");
            config.put("steps_timed", steps);
            config.put("warmup", warmup);
            ObjectNode step = result.putObject("step");
            step.put("ms_median", median);
            ArrayNode all = step.putArray("ms_all");
            Arrays.stream(ms).forEach(all::add);
            step.put("tokens_per_s", batch * seq / (median / 1e3));
            step.put("gemm_flops_per_step", counters.flops() / steps);
            step.put("gemm_calls_per_step", counters.calls() / steps);
            step.put("gemm_time_share", gemmShare);
            step.put("gemm_gflops_in_step", stepGflops);

            // micro-benchmark on the same backend's thread count, on the step's dominant shapes
            List<long[]> shapes = new ArrayList<>();
            int n = batch * seq;
            shapes.add(new long[]{512, 512, 512});
            shapes.add(new long[]{n, cfg.ffnDim(), cfg.hiddenSize()});
            shapes.add(new long[]{n, cfg.hiddenSize(), cfg.ffnDim()});
            shapes.add(new long[]{n, cfg.vocabSize(), cfg.wordEmbedProjDim()});
            ArrayNode micro = result.putArray("gemm_micro");
            double bestShapeGflops = 0;
            try (CpuThreads pool = new CpuThreads(threads)) {
                CpuGemm gemm = new CpuGemm(pool);
                for (long[] s : shapes) {
                    double g = microGflops(gemm, (int) s[0], (int) s[1], (int) s[2]);
                    ObjectNode row = micro.addObject();
                    row.put("m", s[0]);
                    row.put("n", s[1]);
                    row.put("k", s[2]);
                    row.put("gflops", g);
                    if (s[0] == n) {
                        bestShapeGflops = Math.max(bestShapeGflops, g);
                    }
                }
            }
            step.put("gemm_micro_gflops_step_shapes", bestShapeGflops);
            step.put("gemm_fraction_of_micro", stepGflops / bestShapeGflops);
            System.out.printf("step: %.1f ms median (%s), %.0f tokens/s%n", median, Arrays.toString(ms),
                    batch * seq / (median / 1e3));
            System.out.printf("step GEMMs: %.1f GFLOP/s over %.1f%% of the step; micro-benchmark best on step"
                    + " shapes %.1f GFLOP/s -> %.0f%%%n", stepGflops, 100 * gemmShare, bestShapeGflops,
                    100 * stepGflops / bestShapeGflops);
        }
        if (out != null) {
            BenchInfo.write(out, result);
            System.out.println("wrote " + out);
        }
    }

    /** Median GFLOP/s of C = A·Bᵀ for F32 A (M,K) and F16 B (N,K), like a forward through a frozen F16 weight. */
    static double microGflops(CpuGemm gemm, int m, int n, int k) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment a = arena.allocate((long) m * k * 4, 64);
            MemorySegment b = arena.allocate((long) n * k * 2, 64);
            MemorySegment c = arena.allocate((long) m * n * 4, 64);
            SplittableRandom rng = new SplittableRandom(3);
            for (long i = 0; i < (long) m * k; i++) {
                a.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, (float) rng.nextDouble(-1, 1));
            }
            for (long i = 0; i < (long) n * k; i++) {
                b.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i,
                        Float.floatToFloat16((float) rng.nextDouble(-1, 1)));
            }
            MatrixRef ar = MatrixRef.rowMajor(a, DType.F32, 0, k);
            MatrixRef br = new MatrixRef(b, DType.F16, 0, 1, k);
            double flops = 2.0 * m * n * k;
            int reps = (int) Math.max(3, Math.min(20, 2e10 / flops));
            for (int i = 0; i < 2; i++) {
                gemm.gemm(m, n, k, 1f, ar, br, c, 0, n, false);
            }
            double[] t = new double[reps];
            for (int i = 0; i < reps; i++) {
                long t0 = System.nanoTime();
                gemm.gemm(m, n, k, 1f, ar, br, c, 0, n, false);
                t[i] = System.nanoTime() - t0;
            }
            Arrays.sort(t);
            return flops / t[reps / 2];
        }
    }

    static Batch randomBatch(SplittableRandom rng, int b, int t, int vocab) {
        int[] ids = new int[b * t];
        int[] mask = new int[b * t];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rng.nextInt(3, vocab);
            mask[i] = 1;
        }
        return new Batch(b, t, ids, mask, ids.clone());
    }
}
