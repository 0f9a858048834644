package org.longexposure.cli;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.longexposure.io.FileTrees;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.io.safetensors.ShardedCheckpoint;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.lora.Lora;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure merge}: folds a LoRA adapter into the base weights, {@code W' = W + scaling·B·A} (computed in
 * double, rounded once to the weight's own dtype), and writes a complete model folder ({@code model.safetensors},
 * the base's config, generation config and tokenizer files) that {@code from_pretrained} loads. Tensors the adapter
 * does not touch are copied bit for bit. In F16/BF16 checkpoints the merged model differs from base + adapter by
 * that one rounding of W' (the same is true of PEFT's {@code merge_and_unload}).
 */
@Command(name = "merge", mixinStandardHelpOptions = true, description = "Merge a LoRA adapter into the weights.")
final class MergeCommand implements Callable<Integer> {
    private static final List<String> COPIED = List.of("config.json", "generation_config.json", "tokenizer.json",
            "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json");

    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true)
    Path model;

    @Option(names = "--adapter", required = true)
    Path adapter;

    @Option(names = "--out", required = true)
    Path out;

    @Override
    public Integer call() throws IOException {
        ModelFiles.requireModelDir(model);
        LoraConfig cfg = PeftAdapterIO.readLoraConfig(adapter);
        Path abs = out.toAbsolutePath();
        if (Files.exists(abs)) {
            throw new Main.UserException("--out " + out + " already exists; choose a new folder");
        }
        Path weightsFile = adapter.resolve(PeftAdapterIO.WEIGHTS);
        Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp-merge");
        FileTrees.delete(tmp);
        Files.createDirectories(tmp);
        int merged = 0;
        try (Arena arena = Arena.ofShared(); ShardedCheckpoint base = ShardedCheckpoint.open(model);
             SafetensorsFile lora = SafetensorsFile.open(weightsFile)) {
            Map<String, String> adapted = new HashMap<>(); // "<path>.weight" -> module path
            for (String key : lora.names()) {
                if (!key.endsWith(".lora_A.weight") || !key.startsWith("base_model.model.")) {
                    continue;
                }
                String path = key.substring("base_model.model.".length(), key.length() - ".lora_A.weight".length());
                adapted.put(path + ".weight", path);
            }
            Map<String, Tensor> outTensors = new LinkedHashMap<>();
            for (String name : base.names()) {
                String path = adapted.get(name);
                if (path == null && name.startsWith("decoder.")) {
                    path = adapted.get("model." + name); // old OPT names without the "model." prefix
                }
                Tensor w = base.tensor(name);
                if (path == null) {
                    outTensors.put(name, w);
                    continue;
                }
                outTensors.put(name, mergedWeight(arena, w, lora, weightsFile, path, cfg.scaling()));
                merged++;
            }
            if (merged != adapted.size()) {
                throw InputFormatException.file(weightsFile, "the adapter adapts " + adapted.size()
                        + " modules but only " + merged + " of their weights exist in " + model);
            }
            SafetensorsWriter.write(tmp.resolve("model.safetensors"), outTensors, Map.of("format", "pt"));
        }
        for (String f : COPIED) {
            if (Files.isRegularFile(model.resolve(f))) {
                Files.copy(model.resolve(f), tmp.resolve(f));
            }
        }
        Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
        spec.commandLine().getOut().printf("merged %d LoRA modules into %s%n", merged, out);
        return 0;
    }

    /** W + s·B·A in double, rounded once to W's dtype. W (N, K), A (R, K), B (N, R). */
    private static Tensor mergedWeight(Arena arena, Tensor w, SafetensorsFile lora, Path file, String path,
                                       float scaling) {
        Tensor a = lora.tensor(Lora.key(path, "lora_A"));
        Tensor b = lora.tensor(Lora.key(path, "lora_B"));
        int n = w.shape().idim(0);
        int k = w.shape().idim(1);
        int r = a.shape().idim(0);
        if (a.shape().idim(1) != k || b.shape().idim(0) != n || b.shape().idim(1) != r) {
            throw InputFormatException.tensor(file, Lora.key(path, "lora_A"), "shapes A " + a.shape() + ", B "
                    + b.shape() + " do not fit the weight " + w.shape());
        }
        float[] av = a.toFloatArray();
        float[] bv = b.toFloatArray();
        Tensor outW = Tensor.allocateHost(arena, w.dtype(), n, k);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < k; j++) {
                double d = 0;
                for (int q = 0; q < r; q++) {
                    d += (double) bv[i * r + q] * av[q * k + j];
                }
                long idx = (long) i * k + j;
                store(outW, idx, w.getFloat(idx) + scaling * d);
            }
        }
        return outW;
    }

    private static void store(Tensor t, long i, double v) {
        switch (t.dtype()) {
            case F32 -> t.setFloat(i, (float) v);
            case F16 -> t.host().setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16((float) v));
            case BF16 -> {
                int bits = Float.floatToRawIntBits((float) v);
                t.host().setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                        (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16));
            }
            default -> throw new IllegalStateException("cannot merge into a " + t.dtype() + " weight");
        }
    }

}
