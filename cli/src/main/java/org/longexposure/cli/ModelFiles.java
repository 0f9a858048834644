package org.longexposure.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.model.CausalLm;
import org.longexposure.model.TokenEncoders;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.peft.lora.Lora;
import org.longexposure.io.data.TokenEncoder;
import org.longexposure.io.tokenizer.Tokenizer;

/** Locating and checking the pieces of a model folder, and adapting its tokenizer to the data pipeline. */
final class ModelFiles {
    private ModelFiles() {
    }

    static Path requireModelDir(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw InputFormatException.file(dir, "model folder not found (expected a Hugging Face model folder with "
                    + "config.json and model.safetensors)");
        }
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            throw InputFormatException.file(dir.resolve("config.json"), "not found: the model folder needs an HF "
                    + "config.json");
        }
        return dir;
    }

    /** The tokenizer shipped in the model folder, checked against the model's vocabulary size. */
    static Tokenizer tokenizer(Path modelDir, int vocabSize) {
        Tokenizer tok = Tokenizer.load(modelDir);
        if (tok.vocabSize() > vocabSize) {
            throw InputFormatException.file(modelDir, "the tokenizer has " + tok.vocabSize()
                    + " tokens but the model's vocabulary has only " + vocabSize + " rows (tokenizer files "
                    + List.of("tokenizer.json", "vocab.json") + " do not fit this model)");
        }
        return tok;
    }

    /** Plugs the HF PEFT LoRA adapter in {@code adapterDir} into {@code lm}, with its weights. */
    static TrainableParams plugAdapter(CausalLm lm, Backend be, Path adapterDir) {
        LoraConfig cfg = PeftAdapterIO.readLoraConfig(adapterDir);
        TrainableParams params = new TrainableParams();
        Lora.apply(lm, cfg, be, params, 0);
        PeftAdapterIO.loadWeights(be, adapterDir, params);
        return params;
    }

    static TokenEncoder encoder(Tokenizer tok) {
        return TokenEncoders.of(tok);
    }
}
