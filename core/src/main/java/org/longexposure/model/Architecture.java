package org.longexposure.model;

import java.nio.file.Path;
import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.config.HfConfig;
import org.longexposure.model.opt.OptConfig;
import org.longexposure.model.opt.OptModel;

/** The registry of supported architectures: HF {@code model_type} → config mapping and model loader. */
public final class Architecture {
    /** The {@code model_type} values this build can load. */
    public static final List<String> SUPPORTED = List.of("opt");

    private Architecture() {
    }

    /** Interprets an HF config, or fails naming the unsupported {@code model_type} and the supported ones. */
    public static ModelConfig config(HfConfig hf) {
        String type = hf.modelType();
        return switch (type) {
            case "opt" -> OptConfig.from(hf);
            default -> throw unsupported(hf, type);
        };
    }

    /** Loads the model in {@code dir} (config.json + safetensors weights), frozen, for {@code backend}. */
    public static CausalLm load(Path dir, Backend backend) {
        return load(dir, backend, null);
    }

    /**
     * Loads the model in {@code dir} with each layer's FFN neurons reordered by {@code permutation} (null: as
     * stored); the function is unchanged (see {@link MlpPermutation}).
     */
    public static CausalLm load(Path dir, Backend backend, MlpPermutation permutation) {
        HfConfig hf = HfConfig.read(dir.resolve("config.json"));
        ModelConfig cfg = config(hf);
        return switch (cfg.modelType()) {
            case "opt" -> OptModel.load(dir, cfg, backend, permutation);
            default -> throw unsupported(hf, cfg.modelType());
        };
    }

    private static InputFormatException unsupported(HfConfig hf, String type) {
        return InputFormatException.field(hf.path().orElse(null), "model_type",
                "unsupported model_type '" + type + "'; supported: " + SUPPORTED);
    }
}
