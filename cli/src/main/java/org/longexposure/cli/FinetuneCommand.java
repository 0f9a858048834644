package org.longexposure.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.Batcher;
import org.longexposure.io.data.DataLoader;
import org.longexposure.io.data.Example;
import org.longexposure.io.data.JsonlDataset;
import org.longexposure.io.data.TokenEncoder;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.io.tokenizer.Tokenizer;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.Linear;
import org.longexposure.model.MlpPermutation;
import org.longexposure.model.SparsityPlan;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.peft.lora.LoraLayer;
import org.longexposure.io.data.Batch;
import org.longexposure.sparsity.predict.OnlineSparsity;
import org.longexposure.sparsity.predict.PredictorFit;
import org.longexposure.sparsity.predict.Predictors;
import org.longexposure.train.Checkpoint;
import org.longexposure.train.LrSchedule;
import org.longexposure.train.SparseSteps;
import org.longexposure.train.StepResult;
import org.longexposure.train.TrainConfig;
import org.longexposure.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure finetune}: LoRA fine-tuning of a Hugging Face checkpoint on a JSONL dataset. With no
 * arguments it fine-tunes the bundled small model on the bundled E2E sample (the README's main job).
 * Writes {@code <out>/metrics.jsonl} (one object per optimizer step), {@code <out>/loss.png},
 * {@code <out>/adapter/} (HF PEFT layout) and {@code <out>/checkpoints/step-N/}; a folder with a checkpoint resumes.
 *
 * <p>Sparsity ({@code --sparsity on|auto}, docs/SPARSITY.md): an {@link OnlineSparsity} plan, with predictors from
 * {@code --predictors} or fitted on the first micro-batches of the training order; refresh steps (the first one in
 * auto mode, then every {@code --predictor-refresh} steps) run dense and refit the attention predictors on their
 * ground truth. Each metrics line then carries a {@code sparsity} object: realised attention and MLP density per
 * layer and, on refresh steps, the stale and refreshed recall, coverage and dense fallbacks; validation reports the
 * loss with the sparse plan ({@code valid_loss_sparse}) and dense. Checkpoints of a sparse run hold the online
 * sparsity state (predictors, dense fallbacks, auto's calibration pool), so a resumed run continues bit for bit;
 * it must be resumed with the same sparsity options. {@code --permutation} (or a permutation inside the predictors
 * folder) reorders the FFN neurons at load time; the function is the same, so the written adapter (q/v) is one for
 * the stored base model, and fc1/fc2 targets are refused with it.
 */
@Command(name = "finetune", mixinStandardHelpOptions = true,
        description = "Fine-tune a model with LoRA (defaults: the bundled model and E2E sample, on the CPU).")
final class FinetuneCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Spec
    CommandSpec spec;

    @Option(names = "--model", description = "HF model folder (default: the bundled models/opt-mini-256)")
    Path model;

    @Option(names = "--data", description = "training JSONL (default: the bundled data/e2e-sample/train.jsonl)")
    Path data;

    @Option(names = "--valid", description = "validation JSONL (default with the bundled data: its valid.jsonl)")
    Path valid;

    @Option(names = "--valid-split", defaultValue = "0", description = "without --valid: hold out this fraction of "
            + "the training samples (chosen by --seed) for validation")
    double validSplit;

    @Option(names = "--out", description = "output folder (default: runs/finetune-<time>); resumes if it holds a "
            + "checkpoint")
    Path out;

    @Option(names = "--adapter", description = "start from this HF PEFT LoRA adapter folder (its config is used)")
    Path adapter;

    @Option(names = "--method", defaultValue = "lora", description = "PEFT method: lora")
    String method;

    @Option(names = "--lora-r", defaultValue = "8")
    int loraR;

    @Option(names = "--lora-alpha", defaultValue = "16")
    float loraAlpha;

    @Option(names = "--lora-dropout", defaultValue = "0")
    float loraDropout;

    @Option(names = "--use-rslora", description = "scale by alpha/sqrt(r) instead of alpha/r")
    boolean useRslora;

    @Option(names = "--target-modules", split = ",", defaultValue = "q_proj,v_proj",
            description = "module names (suffixes) or one regex over HF module paths")
    List<String> targetModules;

    @Option(names = "--steps", description = "optimizer steps (default: 1 epoch, or 150 for the bundled demo)")
    Integer steps;

    @Option(names = "--epochs", description = "epochs over the training rows (instead of --steps)")
    Double epochs;

    @Option(names = "--batch-size", defaultValue = "4")
    int batchSize;

    @Option(names = "--grad-accum", defaultValue = "1")
    int gradAccum;

    @Option(names = "--seq-len", defaultValue = "512")
    int seqLen;

    @Option(names = "--pack", description = "pack short samples into full rows")
    boolean pack;

    @Option(names = "--lr", defaultValue = "1e-4")
    double lr;

    @Option(names = "--weight-decay", defaultValue = "0")
    float weightDecay;

    @Option(names = "--warmup-steps", defaultValue = "0")
    int warmupSteps;

    @Option(names = "--schedule", defaultValue = "constant", description = "constant, linear or cosine")
    String schedule;

    @Option(names = "--max-grad-norm", defaultValue = "1.0", description = "global-norm clipping; 0 disables")
    float maxGradNorm;

    @Option(names = "--label-smoothing", defaultValue = "0")
    float labelSmoothing;

    @Option(names = "--no-shuffle", description = "keep the file order")
    boolean noShuffle;

    @Option(names = "--seed", defaultValue = "0")
    long seed;

    @Option(names = "--save-every", defaultValue = "0", description = "checkpoint every N steps (0: only at the end)")
    int saveEvery;

    @Option(names = "--no-plot", description = "skip loss.png (for runtimes without the plotting library, e.g. a "
            + "trimmed runtime on a GPU machine); metrics.jsonl holds the same numbers")
    boolean noPlot;

    @Option(names = "--sparsity", defaultValue = "off", description = "off (dense, the default), on (sparse "
            + "attention and ReLU MLP with the predictors' calibrated coverages) or auto (per-layer coverage "
            + "recalibrated at each refresh to the recall targets; layers denser than --dense-above run dense)")
    String sparsity;

    @Option(names = "--predictors", description = "predictors folder (fit-predictors); without it they are fitted "
            + "on the first --predictor-fit-batches training micro-batches. A " + MlpPermutation.FILE + " inside "
            + "is applied to the model")
    Path predictorsDir;

    @Option(names = "--predictor-refresh", defaultValue = "0", description = "refresh the attention predictors "
            + "every N steps from a dense step's ground truth (0: never; auto still calibrates at the first step)")
    int predictorRefresh;

    @Option(names = "--predictor-fit-batches", defaultValue = "4", description = "micro-batches the predictors "
            + "are fitted on when --predictors is absent")
    int predictorFitBatches;

    @Option(names = "--attn-mass", defaultValue = "0.95", description = "auto and fitting: attention mass to keep")
    double attnMass;

    @Option(names = "--mlp-recall", defaultValue = "0.99", description = "auto and fitting: active neurons to keep")
    double mlpRecall;

    @Option(names = "--dense-above", defaultValue = "" + OnlineSparsity.DENSE_ABOVE, description = "auto: a layer "
            + "part whose realised density is above this runs dense")
    double denseAbove;

    @Option(names = "--calibration-window", defaultValue = "" + OnlineSparsity.CALIBRATION_WINDOW,
            description = "auto: calibrate the coverages on the last N refresh micro-batches (1: the newest only)")
    int calibrationWindow;

    @Option(names = "--no-drift-margin", description = "auto: calibrate to the targets as given, without raising "
            + "them by the recall drift seen at the previous refreshes")
    boolean noDriftMargin;

    @Option(names = "--permutation", description = "an MLP neuron permutation (permute-mlp) applied at load time")
    Path permutationFile;

    @Mixin
    BackendOption backendOption;

    /** The validated sparsity options. */
    private record SparsityOptions(OnlineSparsity.Mode mode, OnlineSparsity.Settings settings, Path permutation) {
    }

    private SparsityOptions sparsityOptions() {
        OnlineSparsity.Mode mode;
        try {
            mode = OnlineSparsity.Mode.parse(sparsity);
        } catch (IllegalArgumentException e) {
            throw new Main.UserException("--sparsity: '" + sparsity + "' is not one of off, on, auto");
        }
        if (predictorRefresh < 0) {
            throw new Main.UserException("--predictor-refresh must be >= 0 (0: never), got " + predictorRefresh);
        }
        if (predictorFitBatches < 1) {
            throw new Main.UserException("--predictor-fit-batches must be >= 1, got " + predictorFitBatches);
        }
        Path perm = permutationFile;
        if (mode == OnlineSparsity.Mode.OFF) {
            if (predictorsDir != null || predictorRefresh > 0) {
                throw new Main.UserException("--predictors and --predictor-refresh need --sparsity on or auto");
            }
            return new SparsityOptions(mode, null, perm);
        }
        OnlineSparsity.Settings settings;
        try {
            settings = new OnlineSparsity.Settings(mode, attnMass, mlpRecall, denseAbove, calibrationWindow,
                    !noDriftMargin);
        } catch (IllegalArgumentException e) {
            throw new Main.UserException("--attn-mass, --mlp-recall, --dense-above, --calibration-window: "
                    + e.getMessage());
        }
        if (predictorsDir != null) {
            if (!Files.isRegularFile(predictorsDir.resolve(Predictors.JSON))) {
                throw new Main.UserException("--predictors " + predictorsDir + ": no " + Predictors.JSON
                        + " there (write one with fit-predictors)");
            }
            Path inside = predictorsDir.resolve(MlpPermutation.FILE);
            if (Files.isRegularFile(inside)) {
                if (perm != null) {
                    throw new Main.UserException("--predictors " + predictorsDir + " holds " + MlpPermutation.FILE
                            + ", which is applied; do not also give --permutation");
                }
                perm = inside;
            }
        }
        return new SparsityOptions(mode, settings, perm);
    }

    @Override
    public Integer call() throws IOException {
        PrintWriter pw = spec.commandLine().getOut();
        boolean demo = model == null && data == null;
        Path home = Main.home();
        Path modelDir = ModelFiles.requireModelDir(model != null ? model : home.resolve("models/opt-mini-256"));
        Path dataFile = data != null ? data : home.resolve("data/e2e-sample/train.jsonl");
        Path validFile = valid != null ? valid : (data == null ? home.resolve("data/e2e-sample/valid.jsonl") : null);
        Path outDir = out != null ? out : Path.of("runs", "finetune-"
                + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        if (!method.equals("lora")) {
            throw new Main.UserException("--method: '" + method + "' is not supported yet; expected lora");
        }
        if (batchSize < 1 || seqLen < 2) {
            throw new Main.UserException("--batch-size must be >= 1 and --seq-len >= 2");
        }
        if (steps != null && epochs != null) {
            throw new Main.UserException("give either --steps or --epochs, not both");
        }
        int effectiveSeq = demo && !spec.commandLine().getParseResult().hasMatchedOption("--seq-len") ? 128 : seqLen;
        SparsityOptions so = sparsityOptions();
        MlpPermutation permutation = null;
        if (so.permutation() != null) {
            try {
                permutation = MlpPermutation.load(so.permutation());
            } catch (UncheckedIOException e) {
                throw new Main.UserException("--permutation " + so.permutation() + ": cannot be read ("
                        + e.getMessage() + ")");
            }
        }

        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(modelDir, be, permutation)) {
            Tokenizer tok = ModelFiles.tokenizer(modelDir, lm.config().vocabSize());
            TokenEncoder enc = ModelFiles.encoder(tok);
            List<Example> examples = JsonlDataset.read(dataFile, enc);
            List<Example> heldOut = List.of();
            if (validSplit != 0) {
                if (validFile != null && valid != null) {
                    throw new Main.UserException("give either --valid or --valid-split, not both");
                }
                if (!(validSplit > 0 && validSplit < 1)) {
                    throw new Main.UserException("--valid-split must be in (0, 1), got " + validSplit);
                }
                ValidationSplit split = ValidationSplit.of(examples, validSplit, seed);
                examples = split.train();
                heldOut = split.valid();
                validFile = null;
            }
            Batcher.Rows rows = pack ? Batcher.pack(examples, effectiveSeq) : Batcher.truncate(examples, effectiveSeq);
            int microPerEpoch = (rows.rows().size() + batchSize - 1) / batchSize;
            int stepsPerEpoch = Math.max(1, microPerEpoch / gradAccum);
            int total = steps != null ? steps : epochs != null ? (int) Math.ceil(epochs * stepsPerEpoch)
                    : demo ? 150 : stepsPerEpoch;
            if (total < 1) {
                throw new Main.UserException("--steps/--epochs give no optimizer step");
            }

            TrainableParams params = new TrainableParams();
            LoraConfig lora = adapter != null ? PeftAdapterIO.readLoraConfig(adapter)
                    : new LoraConfig(loraR, loraAlpha, loraDropout, targetModules, useRslora);
            List<LoraLayer> loraLayers = Lora.apply(lm, lora, be, params, seed);
            if (permutation != null) {
                for (Linear lin : lm.linears()) {
                    if (lin.adapter() != null && (lin.path().endsWith(".fc1") || lin.path().endsWith(".fc2"))) {
                        throw new Main.UserException("the MLP permutation " + so.permutation() + " reorders fc1/fc2,"
                                + " and the adapter targets " + lin.path() + ": its LoRA factors would be saved in"
                                + " permuted order. Leave fc1/fc2 out of --target-modules or drop the permutation");
                    }
                }
            }
            if (adapter != null) {
                PeftAdapterIO.loadWeights(be, adapter, params);
            }
            LrSchedule lrs = new LrSchedule(LrSchedule.Kind.parse(schedule), lr, warmupSteps, total);
            TrainConfig tc = new TrainConfig(lrs, weightDecay, 0.9f, 0.999f, 1e-8f, maxGradNorm, labelSmoothing,
                    gradAccum);
            ObjectNode runConfig = runConfig(modelDir, dataFile, validFile, lora, effectiveSeq, total, be.name());
            if (so.mode() != OnlineSparsity.Mode.OFF || so.permutation() != null) {
                runConfig.put("sparsity", so.mode().label());
                runConfig.put("predictors", predictorsDir == null ? null
                        : predictorsDir.toAbsolutePath().normalize().toString());
                runConfig.put("predictor_refresh", predictorRefresh);
                runConfig.put("attn_mass", attnMass);
                runConfig.put("mlp_recall", mlpRecall);
                runConfig.put("dense_above", denseAbove);
                runConfig.put("calibration_window", calibrationWindow);
                runConfig.put("drift_margin", !noDriftMargin);
                runConfig.put("permutation", so.permutation() == null ? null
                        : so.permutation().toAbsolutePath().normalize().toString());
            }
            printConfig(pw, runConfig, lm, params, examples.size(), rows, tok);

            Trainer trainer = new Trainer(be, lm, params, tc, batchSize, effectiveSeq);
            DataLoader loader = new DataLoader(rows.rows(), batchSize, effectiveSeq, enc.padId(), !noShuffle, seed);
            Files.createDirectories(outDir);
            Path ckptDir = outDir.resolve("checkpoints");
            Path metrics = outDir.resolve("metrics.jsonl");
            int start = 0;
            Optional<Path> latest = Checkpoint.latest(ckptDir);
            if (latest.isPresent()) {
                requireSameRun(latest.get(), Checkpoint.runConfig(latest.get()), runConfig);
                Checkpoint.State st = Checkpoint.load(be, latest.get(), params, trainer.optimizer());
                loader.seek(st.cursor());
                for (int i = 0; i < loraLayers.size(); i++) {
                    loraLayers.get(i).setForwardCount(st.dropoutCounters().get(i));
                }
                start = st.step();
                keepMetricsUpTo(metrics, start);
                pw.printf("resuming from %s (step %d of %d)%n", latest.get(), start, total);
            } else {
                Files.deleteIfExists(metrics);
            }

            OnlineSparsity online = null;
            SparseSteps sparseSteps = null;
            if (so.mode() != OnlineSparsity.Mode.OFF) {
                online = latest.isPresent() ? resumeSparsity(pw, be, lm, latest.get(), so.settings())
                        : startSparsity(pw, be, lm, trainer, rows, enc.padId(), effectiveSeq, so.settings());
                sparseSteps = new SparseSteps(lm, trainer, online, predictorRefresh);
            }
            Progress progress = new Progress(pw, System.console() != null && System.console().isTerminal(),
                    start + 1, total);
            for (int step = start + 1; step <= total; step++) {
                List<Batch> micro = new ArrayList<>(gradAccum);
                for (int i = 0; i < gradAccum; i++) {
                    micro.add(loader.next());
                }
                ObjectNode sparseMetrics = null;
                StepResult r;
                if (sparseSteps == null) {
                    r = trainer.step(micro);
                } else {
                    // dense refresh steps: step 1 in auto mode, then every --predictor-refresh steps
                    SparseSteps.Outcome o = sparseSteps.step(micro);
                    r = o.result();
                    if (o.refresh() != null) {
                        sparseMetrics = refreshMetrics(o.refresh(), o.refreshMs(), lm.config().numLayers());
                    } else {
                        sparseMetrics = JSON.createObjectNode();
                        sparseMetrics.put("dense_step", false);
                        putArray(sparseMetrics, "attn_density", o.density().attn());
                        putArray(sparseMetrics, "mlp_density", o.density().mlp());
                    }
                }
                if (!Double.isFinite(r.loss()) || !Double.isFinite(r.gradNorm())) {
                    String last = Checkpoint.latest(ckptDir).map(Path::toString).orElse("none");
                    throw new Main.UserException("training diverged: loss " + r.loss() + ", grad norm "
                            + r.gradNorm() + " at step " + step + "; stopped (last good checkpoint: " + last
                            + "). Try a lower --lr or --max-grad-norm.");
                }
                appendMetrics(metrics, r, sparseMetrics);
                progress.step(step, r.loss(), r.tokensPerSecond());
                if ((saveEvery > 0 && step % saveEvery == 0) || step == total) {
                    Checkpoint.save(be, ckptDir, lora, params, trainer.optimizer(), new Checkpoint.State(step,
                            loader.cursor(), counters(loraLayers), runConfig), modelDir.toString(), online);
                }
            }
            PeftAdapterIO.write(be, outDir.resolve("adapter"), lora, params, modelDir.toString());
            if (online != null) {
                // the predictors as the last refresh left them, for eval --sparsity on and later runs
                online.predictors().save(outDir.resolve("predictors"));
                if (permutation != null) {
                    permutation.save(outDir.resolve("predictors").resolve(MlpPermutation.FILE));
                }
            }
            List<Integer> validSteps = new ArrayList<>();
            List<Double> validLosses = new ArrayList<>();
            List<Example> validExamples = validFile != null ? JsonlDataset.read(validFile, enc) : heldOut;
            if (!validExamples.isEmpty()) {
                Evaluation sparseEv = null;
                if (online != null) {
                    sparseEv = Evaluation.run(trainer::evaluate, validExamples, batchSize, effectiveSeq, enc.padId());
                    online.takeStep();
                    lm.sparsity(SparsityPlan.DENSE);
                    pw.printf(Locale.ROOT, "validation with sparsity (%s): loss %.4f over %d tokens%n",
                            so.mode().label(), sparseEv.loss(), sparseEv.tokens());
                }
                Evaluation ev = Evaluation.run(trainer::evaluate, validExamples, batchSize, effectiveSeq,
                        enc.padId());
                validSteps.add(total);
                validLosses.add(ev.loss());
                pw.printf(Locale.ROOT, "validation: loss %.4f, perplexity %.2f over %d tokens (%s)%n", ev.loss(),
                        Math.exp(ev.loss()), ev.tokens(), validFile != null ? validFile
                                : validExamples.size() + " held-out samples");
                ObjectNode v = JSON.createObjectNode();
                v.put("step", total);
                v.put("valid_loss", ev.loss());
                v.put("valid_tokens", ev.tokens());
                if (sparseEv != null) {
                    v.put("valid_loss_sparse", sparseEv.loss());
                    v.put("sparsity", so.mode().label());
                }
                Files.writeString(outDir.resolve("validation.json"), v.toString() + "\n");
            }
            List<Integer> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            for (String line : Files.readAllLines(metrics)) {
                JsonNode n = JSON.readTree(line);
                xs.add(n.get("step").asInt());
                ys.add(n.get("loss").asDouble());
            }
            if (noPlot) {
                pw.printf("adapter: %s%nmetrics: %s%n", outDir.resolve("adapter"), metrics);
            } else {
                LossPlot.write(outDir.resolve("loss.png"), xs, ys, validSteps, validLosses);
                pw.printf("adapter: %s%nmetrics: %s%nloss curve: %s%n", outDir.resolve("adapter"), metrics,
                        outDir.resolve("loss.png"));
            }
        }
        return 0;
    }

    private ObjectNode runConfig(Path modelDir, Path dataFile, Path validFile, LoraConfig lora, int seq, int total,
                                 String backend) {
        ObjectNode c = JSON.createObjectNode();
        c.put("model", modelDir.toAbsolutePath().normalize().toString());
        c.put("data", dataFile.toAbsolutePath().normalize().toString());
        c.put("valid", validFile == null ? null : validFile.toAbsolutePath().normalize().toString());
        c.put("valid_split", validSplit);
        c.put("method", method);
        c.put("lora_r", lora.r());
        c.put("lora_alpha", lora.alpha());
        c.put("lora_dropout", lora.dropout());
        c.put("use_rslora", lora.useRslora());
        c.put("target_modules", String.join(",", lora.targetModules()));
        c.put("adapter", adapter == null ? null : adapter.toAbsolutePath().normalize().toString());
        c.put("steps", total);
        c.put("batch_size", batchSize);
        c.put("grad_accum", gradAccum);
        c.put("seq_len", seq);
        c.put("pack", pack);
        c.put("lr", lr);
        c.put("weight_decay", weightDecay);
        c.put("warmup_steps", warmupSteps);
        c.put("schedule", schedule);
        c.put("max_grad_norm", maxGradNorm);
        c.put("label_smoothing", labelSmoothing);
        c.put("shuffle", !noShuffle);
        c.put("seed", seed);
        c.put("backend", backend);
        return c;
    }

    private static void printConfig(PrintWriter pw, ObjectNode cfg, CausalLm lm, TrainableParams params,
                                    int samples, Batcher.Rows rows, Tokenizer tok) {
        pw.println("+-- finetune -------------------------------------------------");
        for (Iterator<Map.Entry<String, JsonNode>> it = cfg.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            pw.printf("| %-16s %s%n", e.getKey(), e.getValue().isTextual() ? e.getValue().asText() : e.getValue());
        }
        pw.printf("| %-16s %s, %d layers, hidden %d, vocab %d%n", "architecture", lm.config().modelType(),
                lm.config().numLayers(), lm.config().hiddenSize(), lm.config().vocabSize());
        pw.printf("| %-16s %,d (%d tensors)%n", "trainable", params.count(), params.all().size());
        pw.printf("| %-16s %d samples -> %d rows, %d truncated to seq_len%n", "data", samples, rows.rows().size(),
                rows.truncated());
        pw.printf("| %-16s %d tokens%n", "tokenizer", tok.vocabSize());
        pw.println("+-------------------------------------------------------------");
    }

    /**
     * Refuses a checkpoint whose run configuration differs from the command's in any key but the backend, in
     * either direction: a key only one side has (e.g. the sparsity options of a sparse checkpoint resumed with
     * {@code --sparsity off}) differs too. The message names the key and both values.
     */
    private static void requireSameRun(Path ckpt, JsonNode saved, ObjectNode now) {
        Set<String> keys = new LinkedHashSet<>();
        now.fieldNames().forEachRemaining(keys::add);
        saved.fieldNames().forEachRemaining(keys::add);
        for (String k : keys) {
            if (k.equals("backend")) {
                continue;
            }
            JsonNode a = saved.get(k);
            JsonNode b = now.get(k);
            boolean same = a != null && b != null
                    && (a.isNumber() && b.isNumber() ? a.asText().equals(b.asText()) : a.equals(b));
            if (!same) {
                throw new Main.UserException("cannot resume from " + ckpt + ": '" + k + "' was "
                        + (a == null ? "absent" : a) + " there, " + (b == null ? "absent" : b)
                        + " now (use another --out for a different run)");
            }
        }
    }

    private static List<Long> counters(List<LoraLayer> layers) {
        return layers.stream().map(LoraLayer::forwardCount).toList();
    }

    /**
     * Predictors for the run: loaded from --predictors, or fitted on the first micro-batches of a loader with the
     * training loader's seed (so the training order is untouched), on the trainer's own state.
     */
    private OnlineSparsity startSparsity(PrintWriter pw, Backend be, CausalLm lm, Trainer trainer, Batcher.Rows rows,
                                         int padId, int seq, OnlineSparsity.Settings settings) {
        Predictors predictors;
        if (predictorsDir != null) {
            predictors = Predictors.load(predictorsDir);
            pw.printf("sparsity %s: predictors from %s%n", settings.mode().label(), predictorsDir);
        } else {
            DataLoader peek = new DataLoader(rows.rows(), batchSize, seq, padId, !noShuffle, seed);
            List<Batch> fit = new ArrayList<>();
            for (int i = 0; i < predictorFitBatches; i++) {
                fit.add(peek.next());
            }
            PredictorFit.Config cfg;
            try {
                cfg = new PredictorFit.Config(64, 8, attnMass, 128, 64, mlpRecall);
            } catch (IllegalArgumentException e) {
                throw new Main.UserException(e.getMessage());
            }
            long t0 = System.nanoTime();
            predictors = PredictorFit.fit(be, lm, trainer.state(), fit, cfg);
            pw.printf(Locale.ROOT, "sparsity %s: predictors fitted on %d micro-batches in %.1f s%n",
                    settings.mode().label(), fit.size(), (System.nanoTime() - t0) / 1e9);
        }
        OnlineSparsity online;
        try {
            online = new OnlineSparsity(be, lm, predictors, settings);
        } catch (IllegalArgumentException e) {
            throw new Main.UserException("--predictors " + predictorsDir + ": " + e.getMessage());
        }
        lm.sparsity(online);
        return online;
    }

    /** The online sparsity state of the checkpoint a run resumes from. */
    private OnlineSparsity resumeSparsity(PrintWriter pw, Backend be, CausalLm lm, Path ckpt,
                                          OnlineSparsity.Settings settings) {
        OnlineSparsity online;
        try {
            online = Checkpoint.loadSparsity(be, lm, ckpt, settings);
        } catch (IllegalArgumentException e) {
            throw new Main.UserException("cannot resume from " + ckpt + ": " + e.getMessage());
        }
        pw.printf("sparsity %s: predictors and calibration state from %s%n", settings.mode().label(),
                ckpt.resolve(Checkpoint.SPARSITY));
        return online;
    }

    private static ObjectNode refreshMetrics(OnlineSparsity.Refresh rf, double ms, int layers) {
        ObjectNode o = JSON.createObjectNode();
        o.put("dense_step", true);
        double[] ones = new double[layers];
        Arrays.fill(ones, 1.0);
        putArray(o, "attn_density", ones);
        putArray(o, "mlp_density", ones);
        o.put("refresh_ms", ms);
        putArray(o, "attn_recall_stale", rf.attnRecallStale());
        putArray(o, "attn_recall", rf.attnRecall());
        putArray(o, "attn_predicted_density", rf.attnDensity());
        putArray(o, "attn_coverage", rf.attnCoverage());
        putArray(o, "mlp_recall_stale", rf.mlpRecallStale());
        putArray(o, "mlp_recall", rf.mlpRecall());
        putArray(o, "mlp_predicted_density", rf.mlpDensity());
        putArray(o, "mlp_coverage", rf.mlpCoverage());
        putArray(o, "attn_margin", rf.attnMargin());
        putArray(o, "mlp_margin", rf.mlpMargin());
        ArrayNode ad = o.putArray("attn_dense");
        for (boolean b : rf.attnDense()) {
            ad.add(b);
        }
        ArrayNode md = o.putArray("mlp_dense");
        for (boolean b : rf.mlpDense()) {
            md.add(b);
        }
        return o;
    }

    /** Numbers as a JSON array, NaN (a part without predictor or never consulted) as null. */
    private static void putArray(ObjectNode o, String key, double[] v) {
        ArrayNode a = o.putArray(key);
        for (double x : v) {
            if (Double.isNaN(x)) {
                a.addNull();
            } else {
                a.add(x);
            }
        }
    }

    private static void appendMetrics(Path metrics, StepResult r, ObjectNode sparse) throws IOException {
        ObjectNode o = JSON.createObjectNode();
        o.put("step", r.step());
        o.put("loss", r.loss());
        o.put("lr", r.lr());
        o.put("grad_norm", r.gradNorm());
        o.put("tokens", r.tokens());
        o.put("tokens_per_s", r.tokensPerSecond());
        o.put("step_ms", r.seconds() * 1e3);
        if (sparse != null) {
            o.set("sparsity", sparse);
        }
        try (BufferedWriter w = Files.newBufferedWriter(metrics, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND)) {
            w.write(o.toString());
            w.write('\n');
        }
    }

    /** After a resume from step k, drops metric lines of steps after k (they will be recomputed identically). */
    private static void keepMetricsUpTo(Path metrics, int step) throws IOException {
        if (!Files.exists(metrics)) {
            return;
        }
        List<String> kept = new ArrayList<>();
        for (String line : Files.readAllLines(metrics)) {
            if (!line.isBlank() && JSON.readTree(line).path("step").asInt() <= step) {
                kept.add(line);
            }
        }
        Path tmp = metrics.resolveSibling("metrics.jsonl.tmp");
        Files.write(tmp, kept);
        Files.move(tmp, metrics, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
