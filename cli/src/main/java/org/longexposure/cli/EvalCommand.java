package org.longexposure.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.Batcher;
import org.longexposure.io.data.Example;
import org.longexposure.io.data.JsonlDataset;
import org.longexposure.io.data.TokenEncoder;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.MlpPermutation;
import org.longexposure.sparsity.predict.OnlineSparsity;
import org.longexposure.sparsity.predict.Predictors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure eval}: the mean loss over every predicted token of a JSONL dataset (as Hugging Face computes
 * it for one batch holding all of them), printed as one JSON line {@code {"loss", "tokens", "perplexity"}}. With
 * {@code --predictors} the model runs sparse ({@link OnlineSparsity}, mode on, the dense fallbacks recorded with
 * the predictors honoured) and the line adds the realised attention and MLP density per layer.
 */
@Command(name = "eval", mixinStandardHelpOptions = true, description = "Mean loss and perplexity on a dataset.")
final class EvalCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true)
    Path model;

    @Option(names = "--adapter", description = "HF PEFT LoRA adapter folder")
    Path adapter;

    @Option(names = "--data", required = true)
    Path data;

    @Option(names = "--seq-len", defaultValue = "512")
    int seqLen;

    @Option(names = "--batch-size", defaultValue = "4")
    int batchSize;

    @Option(names = "--pack", description = "pack samples into full rows (as finetune --pack)")
    boolean pack;

    @Option(names = "--predictors", description = "run sparse with these predictors (their calibrated coverages; "
            + "the layer parts they mark dense, auto's fallback, run dense; a " + MlpPermutation.FILE + " inside is "
            + "applied), e.g. a sparse finetune's <out>/predictors")
    Path predictors;

    @Mixin
    BackendOption backendOption;

    @Override
    public Integer call() {
        ModelFiles.requireModelDir(model);
        MlpPermutation perm = null;
        if (predictors != null) {
            if (!Files.isRegularFile(predictors.resolve(Predictors.JSON))) {
                throw new Main.UserException("--predictors " + predictors + ": no " + Predictors.JSON + " there");
            }
            if (Files.isRegularFile(predictors.resolve(MlpPermutation.FILE))) {
                perm = MlpPermutation.load(predictors.resolve(MlpPermutation.FILE));
            }
        }
        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(model, be, perm)) {
            TokenEncoder enc = ModelFiles.encoder(ModelFiles.tokenizer(model, lm.config().vocabSize()));
            if (adapter != null) {
                ModelFiles.plugAdapter(lm, be, adapter);
            }
            OnlineSparsity online = null;
            if (predictors != null) {
                try {
                    online = new OnlineSparsity(be, lm, Predictors.load(predictors), new OnlineSparsity.Settings(
                            OnlineSparsity.Mode.ON, 1, 1, 1));
                } catch (IllegalArgumentException e) {
                    throw new Main.UserException("--predictors " + predictors + ": " + e.getMessage());
                }
                lm.sparsity(online);
            }
            ForwardState state = lm.allocate(batchSize, seqLen);
            List<Example> examples = JsonlDataset.read(data, enc);
            List<Example> rows = (pack ? Batcher.pack(examples, seqLen) : Batcher.truncate(examples, seqLen)).rows();
            Evaluation ev = Evaluation.runRows(b -> lm.forwardLoss(state, b, 0f, false), rows, batchSize, seqLen,
                    enc.padId());
            ObjectNode o = new ObjectMapper().createObjectNode();
            o.put("loss", ev.loss());
            o.put("tokens", ev.tokens());
            o.put("perplexity", Math.exp(ev.loss()));
            if (online != null) {
                // realised densities over the whole evaluation, per layer
                OnlineSparsity.StepDensity d = online.takeStep();
                ArrayNode a = o.putArray("attn_density");
                ArrayNode m = o.putArray("mlp_density");
                for (int l = 0; l < d.attn().length; l++) {
                    a.add(d.attn()[l]);
                    m.add(d.mlp()[l]);
                }
            }
            spec.commandLine().getOut().println(o);
        }
        return 0;
    }
}
