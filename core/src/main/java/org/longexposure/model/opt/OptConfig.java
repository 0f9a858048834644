package org.longexposure.model.opt;

import org.longexposure.backend.Activation;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.config.HfConfig;
import org.longexposure.model.ModelConfig;

/**
 * Maps an HF {@code OPTConfig} to our {@link ModelConfig}. Defaults follow {@code transformers}' OPTConfig; OPT
 * looks learned positions up at {@code id + 2} and, in pre-LN models, ends with a final LayerNorm unless
 * {@code _remove_final_layer_norm}.
 */
public final class OptConfig {
    /** OPT's learned-position offset (fairseq heritage). */
    public static final int POSITION_OFFSET = 2;

    private OptConfig() {
    }

    public static ModelConfig from(HfConfig hf) {
        int hidden = hf.getInt("hidden_size", 768);
        int heads = hf.getInt("num_attention_heads", 12);
        if (heads <= 0 || hidden % heads != 0) {
            throw InputFormatException.field(hf.path().orElse(null), "num_attention_heads",
                    "hidden_size " + hidden + " is not divisible by num_attention_heads " + heads);
        }
        boolean preLn = hf.getBoolean("do_layer_norm_before", true);
        boolean removeFinal = hf.getBoolean("_remove_final_layer_norm", false);
        ModelConfig cfg = new ModelConfig(
                "opt",
                positive(hf, "vocab_size", hf.getInt("vocab_size", 50272)),
                positive(hf, "hidden_size", hidden),
                positive(hf, "num_hidden_layers", hf.getInt("num_hidden_layers", 12)),
                heads,
                positive(hf, "ffn_dim", hf.getInt("ffn_dim", 3072)),
                positive(hf, "max_position_embeddings", hf.getInt("max_position_embeddings", 2048)),
                POSITION_OFFSET,
                positive(hf, "word_embed_proj_dim", hf.getInt("word_embed_proj_dim", hidden)),
                preLn,
                preLn && !removeFinal,
                hf.getBoolean("enable_bias", true),
                activation(hf),
                1e-5f,
                hf.getBoolean("layer_norm_elementwise_affine", true),
                hf.getBoolean("tie_word_embeddings", true),
                hf.getInt("pad_token_id", 1),
                hf.getInt("bos_token_id", 2),
                hf.getInt("eos_token_id", 2));
        return cfg;
    }

    private static Activation activation(HfConfig hf) {
        String name = hf.getString("activation_function", "relu");
        try {
            return Activation.fromHf(name);
        } catch (IllegalArgumentException e) {
            throw InputFormatException.field(hf.path().orElse(null), "activation_function", e.getMessage());
        }
    }

    private static int positive(HfConfig hf, String field, int v) {
        if (v <= 0) {
            throw InputFormatException.field(hf.path().orElse(null), field, "must be a positive integer, got " + v);
        }
        return v;
    }
}
