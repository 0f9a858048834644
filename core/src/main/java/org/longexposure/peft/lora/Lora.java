package org.longexposure.peft.lora;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.model.CausalLm;
import org.longexposure.model.Linear;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TargetModules;
import org.longexposure.peft.TrainableParams;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Plugs LoRA layers into a model's target linears and registers A and B as trainable. Initialisation follows
 * PEFT: A ~ Kaiming-uniform with a = √5, i.e. U(−1/√K, 1/√K); B = 0 (so training starts at the base model). A, B
 * and their gradients are F32 tensors of the backend.
 */
public final class Lora {
    private Lora() {
    }

    /** PEFT's on-disk key of a LoRA matrix: {@code base_model.model.<path>.lora_A.weight}. */
    public static String key(String modulePath, String matrix) {
        return "base_model.model." + modulePath + "." + matrix + ".weight";
    }

    /**
     * Injects LoRA into every linear of {@code model} selected by {@code cfg.targetModules()}, registering the
     * matrices in {@code params}. Must run before {@link CausalLm#allocate}.
     *
     * @param seed seeds A's initialisation and the dropout masks
     */
    public static List<LoraLayer> apply(CausalLm model, LoraConfig cfg, Backend be, TrainableParams params,
                                        long seed) {
        List<Linear> targets = TargetModules.resolve(cfg.targetModules(), model.linears());
        SplittableRandom rng = new SplittableRandom(seed);
        List<LoraLayer> layers = new ArrayList<>();
        int index = 0;
        for (Linear lin : targets) {
            int k = lin.inFeatures();
            Tensor a = be.allocate(DType.F32, cfg.r(), k);
            Tensor b = be.allocate(DType.F32, lin.outFeatures(), cfg.r());
            double bound = 1.0 / Math.sqrt(k);
            float[] init = new float[Math.toIntExact(a.numel())]; // drawn on the host, written once
            for (int i = 0; i < init.length; i++) {
                init[i] = (float) rng.nextDouble(-bound, bound);
            }
            Tensors.copyFrom(be, a, init);
            TrainableParams.Param pa = params.add(be, key(lin.path(), "lora_A"), a);
            TrainableParams.Param pb = params.add(be, key(lin.path(), "lora_B"), b);
            LoraLayer layer = new LoraLayer(lin, cfg.r(), cfg.scaling(), cfg.dropout(), seed + 1 + index, a, b,
                    pa.grad(), pb.grad());
            lin.plug(layer);
            layers.add(layer);
            index++;
        }
        return List.copyOf(layers);
    }
}
