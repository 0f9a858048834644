package org.longexposure.train;

import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.peft.TrainableParams;

/**
 * {@code torch.optim.AdamW} over the trainable parameters (fused per tensor in {@code OptimOps}): decoupled
 * weight decay, bias-corrected moments. The step count is part of the resumable state.
 */
public final class AdamW {
    private final float beta1;
    private final float beta2;
    private final float eps;
    private final float weightDecay;
    private long step;

    public AdamW(float beta1, float beta2, float eps, float weightDecay) {
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    /** torch's defaults: betas (0.9, 0.999), eps 1e-8, with the given weight decay. */
    public static AdamW withWeightDecay(float weightDecay) {
        return new AdamW(0.9f, 0.999f, 1e-8f, weightDecay);
    }

    public void update(Backend be, TrainableParams params, float lr) {
        step++;
        List<TrainableParams.Param> all = params.all();
        be.optim().adamwUpdate(all.stream().map(TrainableParams.Param::value).toList(),
                all.stream().map(TrainableParams.Param::grad).toList(),
                all.stream().map(TrainableParams.Param::m).toList(),
                all.stream().map(TrainableParams.Param::v).toList(), lr, beta1, beta2, eps, weightDecay, step);
    }

    public long step() {
        return step;
    }

    public void setStep(long step) {
        this.step = step;
    }
}
