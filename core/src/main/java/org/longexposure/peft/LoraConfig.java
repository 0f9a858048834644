package org.longexposure.peft;

import java.util.List;

/**
 * LoRA hyperparameters, as PEFT's {@code LoraConfig}: rank {@code r}, {@code lora_alpha}, {@code lora_dropout},
 * {@code target_modules} (module-name suffixes, or one regular expression matched against whole module paths),
 * {@code use_rslora} (scaling α/√r instead of α/r).
 *
 * @param r             rank R ≥ 1
 * @param alpha         lora_alpha
 * @param dropout       lora_dropout in [0, 1)
 * @param targetModules names matched as PEFT does; see {@link TargetModules}
 * @param useRslora     rank-stabilised scaling
 */
public record LoraConfig(int r, float alpha, float dropout, List<String> targetModules, boolean useRslora)
        implements PeftConfig {

    /** PEFT's default targets for OPT (and Llama): the query and value projections. */
    public static final List<String> DEFAULT_TARGETS = List.of("q_proj", "v_proj");

    public LoraConfig {
        if (r < 1) {
            throw new IllegalArgumentException("LoRA rank r must be >= 1, got " + r);
        }
        if (!(dropout >= 0f && dropout < 1f)) {
            throw new IllegalArgumentException("lora_dropout must be in [0, 1), got " + dropout);
        }
        if (targetModules.isEmpty()) {
            throw new IllegalArgumentException("target_modules must name at least one module");
        }
        targetModules = List.copyOf(targetModules);
    }

    /** The factor applied to {@code (x·Aᵀ)·Bᵀ}: α/r, or α/√r with rsLoRA. */
    public float scaling() {
        return useRslora ? (float) (alpha / Math.sqrt(r)) : alpha / r;
    }
}
