package org.longexposure.bench.step;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.LongSupplier;
import org.longexposure.backend.Backend;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.bench.BenchInfo;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.cuda.backend.CudaOptions;
import org.longexposure.cuda.backend.ProfilingBackend;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.io.config.HfConfig;
import org.longexposure.io.data.Batch;
import org.longexposure.model.Architecture;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.opt.OptModel;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.train.LrSchedule;
import org.longexposure.train.StepResult;
import org.longexposure.train.TrainConfig;
import org.longexposure.train.Trainer;

/**
 * The full LoRA training step on the CUDA backend for an OPT model built from a {@code config.json} with random
 * weights ({@link OptModel#random}): ms per step, tokens/s, peak device memory, and the step's useful TFLOP/s
 * ({@link StepFlops}) as a fraction of the GPU's bf16 matrix-product rate. The counterpart of
 * {@code bench/hf/hf_peft_step.py} (Hugging Face transformers + peft, same model, same step).
 *
 * <p>One step is {@link Trainer#step}: zero_grad, forward, cross-entropy on labels = ids (all-ones mask),
 * backward, gradient-norm clipping, AdamW over the LoRA matrices, then {@code Backend.sync()}; it is timed with
 * {@link System#nanoTime()} around that call (the previous step has synchronised, so the GPU is idle at the
 * start), and the median over {@code --iters} steps after {@code --warmup} steps is reported. The batch (B, T)
 * of token ids in [3, V) is drawn once from a seeded generator.
 *
 * <p>Peak device memory: the backend's device arena is sampled after every step (bytes held by all tensors:
 * frozen bf16 weights, LoRA parameters with gradients and AdamW moments, activations saved for backward,
 * gradient and workspace buffers); the arena allocates once and reuses its buffers step to step, so the largest
 * sample is its high-water mark. Also recorded: the device's used memory from cuMemGetInfo (total − free; this
 * includes the CUDA context, loaded modules and anything else on the GPU), when the backend was opened and its
 * largest value after a step.
 *
 * <pre>
 * java ... org.longexposure.bench.step.CudaStepBench --config bench/configs/opt-1.3b/config.json [--batch 4]
 *      [--seq 1024] [--rank 8] [--alpha 16] [--targets q_proj,v_proj] [--warmup 3] [--iters 9] [--lr 1e-4]
 *      [--max-grad-norm 1.0] [--seed 0] [--device 0] [--cuda-lib-path DIR[:DIR]] [--peak-tflops X]
 *      [--backend cuda|cpu] [--commit SHA] [--out FILE.json] [--profile STEPS] [--profile-hold-ms MS]
 *      [--gemm-autotune on|off] [--graph-backward on|off]
 * </pre>
 * {@code --backend cpu} runs the same measurement on the CPU backend (no memory figures): a dry run of the
 * benchmark itself on a small config where no GPU is at hand. {@code --profile STEPS} builds the run on a
 * {@link ProfilingBackend} and, after the timed steps, runs STEPS more with every op timed by CUDA events: the
 * per-op table goes to stdout and to the result's {@code profile} object ({@link StepProfile});
 * {@code --profile-hold-ms MS} holds the stream for MS at each profiled step's start and after each read-back, so
 * that the op times are the GPU's alone ({@link ProfilingBackend#holdMillis}).
 * {@code --gemm-autotune on} times cuBLASLt's candidates per GEMM shape and keeps the fastest instead of its first
 * heuristic choice (the default, off, repeats bit for bit from run to run). {@code --refreshes N} then times N
 * predictor refreshes of a {@code --sparsity auto} run ({@link RefreshBench}). {@code --graph-backward on} replays
 * the backward pass from a CUDA graph captured in the last warm-up step ({@link GraphedBackward}): a measurement of
 * the launch overhead graphs would remove, not a training mode.
 */
public final class CudaStepBench {
    private static final double GIB = 1024.0 * 1024 * 1024;

    private CudaStepBench() {
    }

    /** Parsed command line. */
    record Options(String backend, Path config, int batch, int seq, int rank, float alpha, List<String> targets, int warmup,
                   int iters, float lr, float maxGradNorm, long seed, int device, List<Path> libDirs,
                   double peakTflops, String commit, Path out, int profile, double profileHoldMs, boolean gemmAutotune,
                   Sparse sparse, boolean graphBackward) {
    }

    /**
     * Long Exposure's sparse step: random predictors ({@link Predictors#random}) applied on the backend every step
     * (their time is part of the step), with budgets imposing the densities: attention rows keep at most
     * {@code attnRowFraction} of their causal tiles beyond the diagonal and the sink (NaN: dense attention), layer
     * l's MLP {@code mlpBlocks[l]} neuron blocks of {@code neuronBlock} for the whole micro-batch (null: dense MLP).
     */
    record Sparse(double attnRowFraction, int[] mlpBlocks, int neuronBlock, int attnBlock, int predictorRank,
                  int refreshes) {
        boolean on() {
            return !Double.isNaN(attnRowFraction) || mlpBlocks != null;
        }
    }

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.err.println("usage: CudaStepBench --config DIR/config.json [--batch 4] [--seq 1024] [--rank 8]"
                    + " [--alpha 16] [--targets q_proj,v_proj] [--warmup 3] [--iters 9] [--lr 1e-4]"
                    + " [--max-grad-norm 1.0] [--seed 0] [--device 0] [--cuda-lib-path DIR[:DIR]]"
                    + " [--peak-tflops X] [--backend cuda|cpu] [--commit SHA] [--out FILE.json] [--profile STEPS]"
                    + " [--profile-hold-ms MS]"
                    + " [--gemm-autotune on|off] [--attn-row-fraction F] [--mlp-blocks N,N,...]"
                    + " [--neuron-block 128] [--attn-block 64] [--predictor-rank 8] [--refreshes N]"
                    + " [--graph-backward on|off]");
            System.exit(2);
            return;
        }
        ObjectNode result = run(o);
        if (o.out() != null) {
            BenchInfo.write(o.out(), result);
            System.out.println("wrote " + o.out());
        }
    }

    static Options parse(String[] args) {
        String backend = "cuda";
        Path config = null;
        int batch = 4;
        int seq = 1024;
        int rank = 8;
        float alpha = 16;
        List<String> targets = LoraConfig.DEFAULT_TARGETS;
        int warmup = 3;
        int iters = 9;
        boolean graphBackward = false;
        float lr = 1e-4f;
        float maxGradNorm = 1.0f;
        long seed = 0;
        int device = 0;
        List<Path> libDirs = List.of();
        double peak = Double.NaN;
        String commit = "unknown";
        Path out = null;
        int profile = 0;
        double profileHold = 0;
        boolean autotune = false;
        double rowFraction = Double.NaN;
        int[] mlpBlocks = null;
        int neuronBlock = 128;
        int attnBlock = 64;
        int predictorRank = 8;
        int refreshes = 0;
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("option " + args[i] + " needs a value");
            }
            String v = args[i + 1];
            switch (args[i]) {
                case "--backend" -> backend = v;
                case "--config" -> config = Path.of(v);
                case "--batch" -> batch = Integer.parseInt(v);
                case "--seq" -> seq = Integer.parseInt(v);
                case "--rank" -> rank = Integer.parseInt(v);
                case "--alpha" -> alpha = Float.parseFloat(v);
                case "--targets" -> targets = List.of(v.split(","));
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--iters" -> iters = Integer.parseInt(v);
                case "--lr" -> lr = Float.parseFloat(v);
                case "--max-grad-norm" -> maxGradNorm = Float.parseFloat(v);
                case "--seed" -> seed = Long.parseLong(v);
                case "--device" -> device = Integer.parseInt(v);
                case "--cuda-lib-path" -> libDirs = splitPath(v);
                case "--peak-tflops" -> peak = Double.parseDouble(v);
                case "--commit" -> commit = v;
                case "--out" -> out = Path.of(v);
                case "--profile" -> profile = Integer.parseInt(v);
                case "--profile-hold-ms" -> profileHold = Double.parseDouble(v);
                case "--gemm-autotune" -> autotune = switch (v) {
                    case "on" -> true;
                    case "off" -> false;
                    default -> throw new IllegalArgumentException("--gemm-autotune: expected on or off, got " + v);
                };
                case "--attn-row-fraction" -> rowFraction = Double.parseDouble(v);
                case "--mlp-blocks" -> mlpBlocks = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
                case "--neuron-block" -> neuronBlock = Integer.parseInt(v);
                case "--attn-block" -> attnBlock = Integer.parseInt(v);
                case "--predictor-rank" -> predictorRank = Integer.parseInt(v);
                case "--refreshes" -> refreshes = Integer.parseInt(v);
                case "--graph-backward" -> graphBackward = switch (v) {
                    case "on" -> true;
                    case "off" -> false;
                    default -> throw new IllegalArgumentException("--graph-backward: expected on or off, got " + v);
                };
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (config == null) {
            throw new IllegalArgumentException("--config is required");
        }
        if (batch < 1 || seq < 2 || iters < 1 || warmup < 0) {
            throw new IllegalArgumentException("need --batch >= 1, --seq >= 2, --iters >= 1, --warmup >= 0");
        }
        if (!backend.equals("cuda") && !backend.equals("cpu")) {
            throw new IllegalArgumentException("--backend: expected cuda or cpu, got " + backend);
        }
        if (graphBackward && (profile > 0 || refreshes > 0 || !backend.equals("cuda"))) {
            throw new IllegalArgumentException("--graph-backward on needs --backend cuda without --profile and"
                    + " --refreshes");
        }
        if (!Double.isNaN(rowFraction) && !(rowFraction > 0 && rowFraction <= 1)) {
            throw new IllegalArgumentException("--attn-row-fraction: expected a number in (0, 1], got " + rowFraction);
        }
        return new Options(backend, config, batch, seq, rank, alpha, targets, warmup, iters, lr, maxGradNorm, seed, device,
                libDirs, peak, commit, out, profile, profileHold, autotune,
                new Sparse(rowFraction, mlpBlocks, neuronBlock, attnBlock, predictorRank, refreshes), graphBackward);
    }

    static List<Path> splitPath(String s) {
        List<Path> dirs = new ArrayList<>();
        for (String d : s.split(":")) {
            if (!d.isEmpty()) {
                dirs.add(Path.of(d));
            }
        }
        return List.copyOf(dirs);
    }

    static ObjectNode run(Options o) {
        ObjectNode result = BenchInfo.header("lora-step-" + o.backend(), o.commit());
        if (o.backend().equals("cpu")) {
            try (CpuBackend be = new CpuBackend(Runtime.getRuntime().availableProcessors())) {
                measure(o, be, null, result);
            }
            return result;
        }
        try (CudaBackend be = CudaBackend.open(new CudaOptions(o.device(), o.libDirs(), null, List.of(),
                o.gemmAutotune()))) {
            CudaContext ctx = be.context();
            ObjectNode gpu = ((ObjectNode) result.get("machine")).putObject("gpu");
            gpu.put("name", ctx.name());
            gpu.put("sm", ctx.computeCapability());
            gpu.put("multiprocessors", ctx.multiprocessorCount());
            gpu.put("memory_gib", ctx.totalMemory() / GIB);
            gpu.put("driver_version", ctx.driverVersion());
            MemoryProbe probe = new MemoryProbe(() -> be.arena().liveBytes(), () -> {
                long[] info = ctx.memInfo();
                return info[1] - info[0];
            });
            if (o.profile() > 0) {
                try (ProfilingBackend prof = new ProfilingBackend(be)) {
                    measure(o, prof, probe, result);
                }
            } else {
                measure(o, be, probe, result);
            }
        }
        return result;
    }

    /** Reads the device arena's live bytes and the device's used bytes (cuMemGetInfo total − free). */
    record MemoryProbe(LongSupplier arenaBytes, LongSupplier deviceUsedBytes) {
    }

    /** Builds the model on {@code be}, times the steps and fills {@code result}; {@code mem} null on the CPU. */
    static void measure(Options o, Backend be, MemoryProbe mem, ObjectNode result) {
        ModelConfig cfg = Architecture.config(HfConfig.read(o.config()));
        String modelName = o.config().toAbsolutePath().getParent().getFileName().toString();
        long usedAtOpen = mem != null ? mem.deviceUsedBytes().getAsLong() : 0;
        long t0 = System.nanoTime();
        try (OptModel model = OptModel.random(cfg, be, o.seed())) {
            TrainableParams params = new TrainableParams();
            LoraConfig lora = new LoraConfig(o.rank(), o.alpha(), 0f, o.targets(), false);
            Lora.apply(model, lora, be, params, o.seed());
            TrainConfig tc = new TrainConfig(LrSchedule.constant(o.lr()), 0f, 0.9f, 0.999f, 1e-8f,
                    o.maxGradNorm(), 0f, 1);
            GraphedBackward graphed = null;
            if (o.graphBackward()) {
                if (!(be instanceof CudaBackend cuda)) {
                    throw new IllegalArgumentException("--graph-backward on needs --backend cuda without --profile");
                }
                graphed = new GraphedBackward(model, cuda.stream());
            }
            Trainer trainer = new Trainer(be, graphed != null ? graphed : model, params, tc, o.batch(), o.seq());
            SparseSteps sparse = o.sparse().on() ? SparseSteps.install(o.sparse(), cfg, model, be, o.batch(),
                    o.seq(), o.seed()) : null;
            be.sync();
            double buildSeconds = (System.nanoTime() - t0) / 1e9;
            Batch batch = randomBatch(new SplittableRandom(o.seed() + o.seq()), o.batch(), o.seq(),
                    cfg.vocabSize());

            long[] peaks = new long[2]; // arena high-water, device used
            sample(mem, peaks);
            List<Double> losses = new ArrayList<>();
            for (int i = 0; i < o.warmup(); i++) {
                if (graphed != null && i == o.warmup() - 1) {
                    graphed.arm();   // captured in the last warm-up step, replayed in every timed one
                }
                losses.add(trainer.step(List.of(batch)).loss());
                sample(mem, peaks);
            }
            if (graphed != null) {
                graphed.arm();
            }
            double[] ms = new double[o.iters()];
            for (int i = 0; i < o.iters(); i++) {
                StepResult r = trainer.step(List.of(batch));
                ms[i] = r.seconds() * 1e3;
                losses.add(r.loss());
                sample(mem, peaks);
            }
            if (o.profile() > 0 && be instanceof ProfilingBackend prof) {
                StepProfile.run(prof, trainer, batch, o.profile(), o.profileHoldMs(), result);
            }
            if (graphed != null) {
                graphed.close();
            }
            if (o.sparse().refreshes() > 0) {
                RefreshBench.run(o.sparse(), cfg, model, trainer, be, batch, o.seed(), result);
            }
            double[] sorted = ms.clone();
            Arrays.sort(sorted);
            double median = sorted[ms.length / 2];
            int tokens = o.batch() * o.seq();
            StepFlops flops = StepFlops.of(model, o.batch(), o.seq(), params.count());
            double tflops = flops.total() / (median * 1e-3) / 1e12;

            ObjectNode c = result.putObject("config");
            c.put("config_file", o.config().toString());
            c.put("model", modelName);
            c.put("backend", be.name());
            c.put("hidden", cfg.hiddenSize());
            c.put("layers", cfg.numLayers());
            c.put("heads", cfg.numHeads());
            c.put("ffn", cfg.ffnDim());
            c.put("vocab", cfg.vocabSize());
            c.put("word_embed_proj_dim", cfg.wordEmbedProjDim());
            c.put("pre_layer_norm", cfg.preLayerNorm());
            c.put("batch", o.batch());
            c.put("seq", o.seq());
            c.put("tokens", tokens);
            c.put("lora_r", o.rank());
            c.put("lora_alpha", o.alpha());
            c.put("targets", String.join(",", o.targets()));
            c.put("trainable_params", params.count());
            c.put("lr", o.lr());
            c.put("max_grad_norm", o.maxGradNorm());
            c.put("warmup", o.warmup());
            c.put("graph_backward", o.graphBackward());
            c.put("iters", o.iters());
            c.put("seed", o.seed());
            c.put("activation_dtype", be.activationDType().toString());
            if (sparse != null) {
                sparse.report(result.putObject("sparsity"));
            }

            ObjectNode s = result.putObject("step");
            s.put("ms_median", median);
            s.put("ms_min", sorted[0]);
            ArrayNode all = s.putArray("ms_all");
            Arrays.stream(ms).forEach(all::add);
            s.put("tokens_per_s", tokens / (median * 1e-3));
            s.put("loss_first", losses.getFirst());
            s.put("loss_last", losses.getLast());
            s.put("loss_finite", losses.stream().allMatch(Double::isFinite));
            s.put("build_seconds", buildSeconds);

            ObjectNode f = result.putObject("flops");
            f.put("formula", "2N*frozen (fwd) + 2N*frozen (bwd input grads) + attn L*2*2*B*NH*T^2*HS/2"
                    + " * (1 + 2.5) + LoRA 2N*trainable * 3; frozen = sum K*Nout of frozen linears + V*P");
            f.put("forward_frozen", flops.forwardFrozen());
            f.put("backward_input", flops.backwardInput());
            f.put("attention_forward", flops.attentionFwd());
            f.put("attention_backward", flops.attentionBwd());
            f.put("lora", flops.loraFwd() + flops.loraBwd());
            f.put("total", flops.total());
            f.put("tflops_achieved", tflops);
            if (!Double.isNaN(o.peakTflops())) {
                f.put("peak_tflops", o.peakTflops());
                f.put("peak_source", "--peak-tflops");
                f.put("fraction_of_peak", tflops / o.peakTflops());
            }

            String memText = "";
            if (mem != null) {
                ObjectNode m = result.putObject("memory");
                m.put("peak_bytes", peaks[0]);
                m.put("peak_gib", peaks[0] / GIB);
                m.put("peak_method", "device arena high-water mark: largest of the arena's live bytes sampled"
                        + " after the model build and after every step (the arena reuses its buffers step to step)");
                m.put("device_used_at_open_bytes", usedAtOpen);
                m.put("device_used_peak_bytes", peaks[1]);
                m.put("device_used_peak_gib", peaks[1] / GIB);
                m.put("device_used_method", "cuMemGetInfo total - free, sampled like the arena; includes the"
                        + " CUDA context, modules and anything else on the GPU");
                memText = String.format(", peak %.2f GiB (device used %.2f GiB)", peaks[0] / GIB, peaks[1] / GIB);
            }
            System.out.printf("%s B=%d T=%d on %s: %.1f ms/step median (min %.1f), %.0f tokens/s, %.1f TFLOP/s%s%s,"
                            + " loss %.3f -> %.3f%n", modelName, o.batch(), o.seq(), be.name(), median, sorted[0],
                    tokens / (median * 1e-3), tflops, Double.isNaN(o.peakTflops()) ? ""
                            : String.format(" (%.0f%% of %.0f)", 100 * tflops / o.peakTflops(), o.peakTflops()),
                    memText, losses.getFirst(), losses.getLast());
        }
    }

    private static void sample(MemoryProbe mem, long[] peaks) {
        if (mem != null) {
            peaks[0] = Math.max(peaks[0], mem.arenaBytes().getAsLong());
            peaks[1] = Math.max(peaks[1], mem.deviceUsedBytes().getAsLong());
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
