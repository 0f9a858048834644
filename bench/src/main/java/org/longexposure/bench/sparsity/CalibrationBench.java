package org.longexposure.bench.sparsity;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.bench.BenchInfo;
import org.longexposure.io.data.Batch;
import org.longexposure.io.data.Batcher;
import org.longexposure.io.data.DataLoader;
import org.longexposure.io.data.Example;
import org.longexposure.io.data.JsonlDataset;
import org.longexposure.io.tokenizer.Tokenizer;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.SparsityPlan;
import org.longexposure.model.TokenEncoders;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.sparsity.predict.OnlineSparsity;
import org.longexposure.sparsity.predict.PredictorFit;
import org.longexposure.sparsity.predict.Predictors;
import org.longexposure.train.LrSchedule;
import org.longexposure.train.SparseSteps;
import org.longexposure.train.TrainConfig;
import org.longexposure.train.Trainer;

/**
 * Auto mode's calibration rules compared on one training trajectory: LoRA (r 8, α 16, q_proj and v_proj) is
 * trained densely, step by step, exactly as {@code finetune} would order the data ({@code --pack}, shuffled with the
 * seed); every candidate rule ({@link OnlineSparsity.Settings}: calibration window, drift margin) keeps its own
 * {@link OnlineSparsity}, all starting from the same predictors fitted on the first micro-batches and refreshed
 * on the same refresh steps from the same dense ground truth (so their maps and temperatures are identical and
 * only the coverages and fallbacks differ). After every step each candidate's predictors in use are scored
 * ({@link OnlineSparsity#score}) on that step's forward, which none of them has seen: the recall a run with that
 * rule has between refreshes (on a refresh step: the outgoing predictor, the "stale" recall), and the predicted
 * density. Steps run dense, so the trajectory is the same for all candidates (a sparse run's differs from it by the
 * sparse steps' rounding and skipped mass, within 1 % in loss on the guard run).
 *
 * <p>Usage: {@code CalibrationBench MODEL_DIR TRAIN_JSONL [--steps 48] [--refresh 6] [--batch 4] [--seq 256]
 * [--lr 1e-3] [--threads 2] [--fit-batches 4] [--attn-mass 0.95] [--rules 1:false,3:false,3:true] [--commit SHA]
 * [--out FILE.json]}; each rule is {@code window:margin}.
 */
public final class CalibrationBench {
    private CalibrationBench() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: CalibrationBench MODEL_DIR TRAIN_JSONL [--steps 48] [--refresh 6] [--batch 4]"
                    + " [--seq 256] [--lr 1e-3] [--threads 2] [--fit-batches 4] [--attn-mass 0.95]"
                    + " [--rules 1:false,3:false,3:true] [--commit SHA] [--out FILE.json]");
            System.exit(2);
        }
        Path modelDir = Path.of(args[0]);
        Path data = Path.of(args[1]);
        int steps = 48;
        int refresh = 6;
        int batch = 4;
        int seq = 256;
        double lr = 1e-3;
        int threads = 2;
        int fitBatches = 4;
        double attnMass = 0.95;
        String commit = "unknown";
        String ruleList = "1:false,3:false,3:true";
        Path out = null;
        for (int i = 2; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--steps" -> steps = Integer.parseInt(v);
                case "--refresh" -> refresh = Integer.parseInt(v);
                case "--batch" -> batch = Integer.parseInt(v);
                case "--seq" -> seq = Integer.parseInt(v);
                case "--lr" -> lr = Double.parseDouble(v);
                case "--threads" -> threads = Integer.parseInt(v);
                case "--fit-batches" -> fitBatches = Integer.parseInt(v);
                case "--attn-mass" -> attnMass = Double.parseDouble(v);
                case "--rules" -> ruleList = v;
                case "--commit" -> commit = v;
                case "--out" -> out = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        double mlpRecall = 0.99;
        double denseAbove = OnlineSparsity.DENSE_ABOVE;
        Map<String, OnlineSparsity.Settings> rules = new LinkedHashMap<>();
        for (String rule : ruleList.split(",")) {
            String[] wm = rule.split(":");
            int window = Integer.parseInt(wm[0]);
            boolean margin = Boolean.parseBoolean(wm[1]);
            rules.put("window " + window + (margin ? ", drift margin" : ", no margin"), new OnlineSparsity.Settings(
                    OnlineSparsity.Mode.AUTO, attnMass, mlpRecall, denseAbove, window, margin));
        }

        ObjectNode result = BenchInfo.header("sparsity-calibration-between-refreshes", commit);
        ObjectNode config = result.putObject("config");
        config.put("model", modelDir.toString());
        config.put("data", data.toString());
        config.put("steps", steps);
        config.put("refresh_every", refresh);
        config.put("batch", batch);
        config.put("seq", seq);
        config.put("pack", true);
        config.put("lr", lr);
        config.put("schedule", "constant");
        config.put("lora", "r=8 alpha=16 dropout=0 q_proj,v_proj, seed 0");
        config.put("data_seed", 0);
        config.put("fit_batches", fitBatches);
        config.put("attn_block", 64);
        config.put("attn_mass", attnMass);
        config.put("mlp_recall", mlpRecall);
        config.put("dense_above", denseAbove);
        config.put("threads", threads);

        try (CpuBackend be = new CpuBackend(threads); CausalLm lm = Architecture.load(modelDir, be)) {
            Tokenizer tok = Tokenizer.load(modelDir);
            List<Example> examples = JsonlDataset.read(data, TokenEncoders.of(tok));
            int pad = TokenEncoders.of(tok).padId();
            Batcher.Rows rows = Batcher.pack(examples, seq);
            TrainableParams params = new TrainableParams();
            Lora.apply(lm, new LoraConfig(8, 16, 0f, List.of("q_proj", "v_proj"), false), be, params, 0);
            Trainer trainer = new Trainer(be, lm, params, new TrainConfig(LrSchedule.constant(lr), 0f, 0.9f, 0.999f,
                    1e-8f, 1.0f, 0f, 1), batch, seq);
            DataLoader peek = new DataLoader(rows.rows(), batch, seq, pad, true, 0);
            List<Batch> fit = new ArrayList<>();
            for (int i = 0; i < fitBatches; i++) {
                fit.add(peek.next());
            }
            Predictors start = PredictorFit.fit(be, lm, trainer.state(), fit, new PredictorFit.Config(64, 8, attnMass,
                    128, 64, mlpRecall));
            lm.sparsity(SparsityPlan.DENSE);
            List<OnlineSparsity> online = new ArrayList<>();
            for (OnlineSparsity.Settings s : rules.values()) {
                online.add(new OnlineSparsity(be, lm, start, s));
            }
            int layers = lm.config().numLayers();
            int n = rules.size();
            // [candidate][step][layer]
            double[][][] recall = new double[n][steps][];
            double[][][] density = new double[n][steps][];
            boolean[][][] dense = new boolean[n][steps][layers];
            ArrayNode losses = result.putArray("losses");
            DataLoader loader = new DataLoader(rows.rows(), batch, seq, pad, true, 0);
            for (int step = 1; step <= steps; step++) {
                Batch b = loader.next();
                losses.add(trainer.step(List.of(b)).loss());
                boolean due = SparseSteps.refreshDue(step, refresh, OnlineSparsity.Mode.AUTO);
                for (int c = 0; c < n; c++) {
                    OnlineSparsity o = online.get(c);
                    for (int l = 0; l < layers; l++) {
                        dense[c][step - 1][l] = o.attentionDense(l);
                    }
                    OnlineSparsity.Score sc = o.score(trainer.state(), b);
                    recall[c][step - 1] = sc.attnRecall();
                    density[c][step - 1] = sc.attnDensity();
                    if (due) {
                        o.refresh(trainer.state(), b);
                    }
                }
                System.err.printf("step %d/%d%s%n", step, steps, due ? " (refresh)" : "");
            }
            ArrayNode cands = result.putArray("rules");
            int c = 0;
            for (Map.Entry<String, OnlineSparsity.Settings> e : rules.entrySet()) {
                ObjectNode o = cands.addObject();
                o.put("rule", e.getKey());
                o.put("calibration_window", e.getValue().calibrationWindow());
                o.put("drift_margin", e.getValue().driftMargin());
                summarise(o, recall[c], density[c], dense[c], refresh, attnMass, layers);
                ArrayNode per = o.putArray("steps");
                for (int s = 0; s < steps; s++) {
                    ObjectNode so = per.addObject();
                    so.put("step", s + 1);
                    so.put("refresh", SparseSteps.refreshDue(s + 1, refresh, OnlineSparsity.Mode.AUTO));
                    ArrayNode r = so.putArray("attn_recall");
                    ArrayNode d = so.putArray("attn_predicted_density");
                    ArrayNode f = so.putArray("attn_dense");
                    for (int l = 0; l < layers; l++) {
                        r.add(recall[c][s][l]);
                        d.add(density[c][s][l]);
                        f.add(dense[c][s][l]);
                    }
                }
                c++;
            }
        }
        if (out != null) {
            BenchInfo.write(out, result);
        } else {
            System.out.println(BenchInfo.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(result));
        }
    }

    /**
     * Per layer, over the steps after the first refresh (each scored by a predictor calibrated on earlier
     * micro-batches only): mean and lowest recall, share of steps below the target, mean predicted density, and
     * the mean density a run would compute (1 where the fallback runs the layer dense).
     */
    private static void summarise(ObjectNode o, double[][] recall, double[][] density, boolean[][] dense,
                                  int refresh, double target, int layers) {
        ArrayNode ls = o.putArray("layers");
        for (int l = 0; l < layers; l++) {
            double sum = 0;
            double min = 1;
            int below = 0;
            int count = 0;
            double dens = 0;
            double run = 0;
            int sparseSteps = 0;
            double sparseSum = 0;
            double sparseMin = 1;
            int sparseBelow = 0;
            for (int s = 1; s < recall.length; s++) {
                double r = recall[s][l];
                sum += r;
                min = Math.min(min, r);
                below += r < target ? 1 : 0;
                dens += density[s][l];
                run += dense[s][l] ? 1 : density[s][l];
                count++;
                if (!dense[s][l] && !SparseSteps.refreshDue(s + 1, refresh, OnlineSparsity.Mode.AUTO)) {
                    sparseSteps++;
                    sparseSum += r;
                    sparseMin = Math.min(sparseMin, r);
                    sparseBelow += r < target ? 1 : 0;
                }
            }
            ObjectNode lo = ls.addObject();
            lo.put("layer", l);
            lo.put("steps_scored", count);
            lo.put("recall_mean", sum / count);
            lo.put("recall_min", min);
            lo.put("share_below_target", (double) below / count);
            lo.put("predicted_density_mean", dens / count);
            lo.put("run_density_mean", run / count);
            lo.put("sparse_steps", sparseSteps);
            if (sparseSteps > 0) {
                lo.put("sparse_steps_recall_mean", sparseSum / sparseSteps);
                lo.put("sparse_steps_recall_min", sparseMin);
                lo.put("sparse_steps_share_below_target", (double) sparseBelow / sparseSteps);
            }
        }
    }
}
