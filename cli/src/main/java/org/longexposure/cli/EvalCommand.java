package org.longexposure.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.longexposure.backend.Backend;
import org.longexposure.io.data.JsonlDataset;
import org.longexposure.io.data.TokenEncoder;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure eval}: the mean loss over every predicted token of a JSONL dataset (as Hugging Face computes
 * it for one batch holding all of them), printed as one JSON line {@code {"loss", "tokens", "perplexity"}}.
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

    @Mixin
    BackendOption backendOption;

    @Override
    public Integer call() {
        ModelFiles.requireModelDir(model);
        try (Backend be = backendOption.open(); CausalLm lm = Architecture.load(model, be)) {
            TokenEncoder enc = ModelFiles.encoder(ModelFiles.tokenizer(model, lm.config().vocabSize()));
            if (adapter != null) {
                ModelFiles.plugAdapter(lm, be, adapter);
            }
            ForwardState state = lm.allocate(batchSize, seqLen);
            Evaluation ev = Evaluation.run(b -> lm.forwardLoss(state, b, 0f, false), JsonlDataset.read(data, enc),
                    batchSize, seqLen, enc.padId());
            ObjectNode o = new ObjectMapper().createObjectNode();
            o.put("loss", ev.loss());
            o.put("tokens", ev.tokens());
            o.put("perplexity", Math.exp(ev.loss()));
            spec.commandLine().getOut().println(o);
        }
        return 0;
    }
}
