package org.longexposure.bench.step;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Arrays;
import java.util.List;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.Batch;
import org.longexposure.model.ModelConfig;
import org.longexposure.model.SparsityPlan;
import org.longexposure.model.opt.OptModel;
import org.longexposure.sparsity.predict.OnlineSparsity;
import org.longexposure.sparsity.predict.Predictors;
import org.longexposure.train.Trainer;

/**
 * The predictor refresh of {@code finetune --sparsity auto} at the benchmark's model shape (docs/SPARSITY.md section
 * 2): random predictors of the real shapes go into an {@link OnlineSparsity} (auto: calibration pool, drift margin,
 * dense fallbacks), then N times a dense training step followed by {@link OnlineSparsity#refresh} on its saved
 * activations, the refresh alone timed (wall clock, it ends with host work). Each refresh reads the q/k maps from
 * the model (frozen weights + LoRA delta), gets the true tile masses from the backend, factorises the heads,
 * calibrates attention, and, for a ReLU model, scores and calibrates the MLP predictor against the FFN activity.
 * The model's sparsity plan is dense before and after.
 */
final class RefreshBench {
    private RefreshBench() {
    }

    static void run(CudaStepBench.Sparse o, ModelConfig cfg, OptModel model, Trainer trainer, Backend be,
                    Batch batch, long seed, ObjectNode result) {
        Predictors p = Predictors.random(cfg, o.predictorRank(), o.attnBlock(), o.neuronBlock(),
                batch.batchSize() * batch.seqLen(), seed + 11);
        OnlineSparsity online = new OnlineSparsity(be, model, p, new OnlineSparsity.Settings(
                OnlineSparsity.Mode.AUTO, 0.95, 0.99, 0.85));
        model.sparsity(SparsityPlan.DENSE);
        double[] ms = new double[o.refreshes()];
        for (int i = 0; i < ms.length; i++) {
            trainer.step(List.of(batch));
            long t0 = System.nanoTime();
            online.refresh(trainer.state(), batch);
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        double[] sorted = ms.clone();
        Arrays.sort(sorted);
        ObjectNode r = result.putObject("refresh");
        r.put("what", "OnlineSparsity.refresh (auto) after a dense step, wall ms; random predictors, rank "
                + o.predictorRank() + ", attention tiles of " + o.attnBlock() + ", neuron blocks of "
                + o.neuronBlock() + (cfg.activation() == Activation.RELU ? " (MLP refreshed too)" : ""));
        r.put("ms_median", sorted[ms.length / 2]);
        r.put("ms_min", sorted[0]);
        ArrayNode all = r.putArray("ms_all");
        Arrays.stream(ms).forEach(all::add);
        System.out.printf("refresh: %.0f ms median over %d (min %.0f)%n", sorted[ms.length / 2], ms.length,
                sorted[0]);
    }
}
