package org.longexposure.io.peft;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.FileTrees;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.JsonText;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TargetModules;
import org.longexposure.peft.TrainableParams;
import org.longexposure.tensor.Tensor;

/**
 * Hugging Face PEFT adapter folders: {@code adapter_config.json} + {@code adapter_model.safetensors}, keys
 * {@code base_model.model.<module path>.lora_A.weight} (R, K) and {@code .lora_B.weight} (N, R). Foreign configs
 * are read leniently (unknown keys are ignored; settings we cannot honour are errors naming the field); we write
 * only the keys we mean.
 */
public final class PeftAdapterIO {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Largest LoRA rank accepted from a file (a bound against absurd allocations, far above practical ranks). */
    static final int MAX_RANK = 65536;

    private PeftAdapterIO() {
    }

    /** Reads a LoRA {@code adapter_config.json}. */
    public static LoraConfig readLoraConfig(Path dir) {
        Path file = dir.resolve(CONFIG);
        if (!Files.isRegularFile(file)) {
            throw InputFormatException.file(file, "adapter config not found (expected an HF PEFT adapter folder"
                    + " with " + CONFIG + " and " + WEIGHTS + ")");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (JacksonException e) {
            throw JsonText.syntaxError(file, "adapter config", e);
        } catch (IOException e) {
            throw InputFormatException.file(file, "cannot be read: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw InputFormatException.file(file, "expected a JSON object");
        }
        String type = root.path("peft_type").asText("LORA");
        if (!type.equalsIgnoreCase("LORA")) {
            throw InputFormatException.field(file, "peft_type", "'" + type + "' is not supported; expected LORA");
        }
        String bias = root.path("bias").asText("none");
        if (!bias.equals("none")) {
            throw InputFormatException.field(file, "bias", "'" + bias + "' is not supported yet; expected none");
        }
        if (root.path("fan_in_fan_out").asBoolean(false)) {
            throw InputFormatException.field(file, "fan_in_fan_out", "true is not supported for this architecture");
        }
        for (String key : List.of("use_dora", "lora_bias")) {
            if (root.path(key).asBoolean(false)) {
                throw InputFormatException.field(file, key, "true is not supported (plain LoRA only)");
            }
        }
        for (String key : List.of("layers_to_transform", "exclude_modules", "modules_to_save",
                "trainable_token_indices", "target_parameters")) {
            JsonNode n = root.get(key);
            if (n != null && !n.isNull() && !(n.isContainerNode() && n.isEmpty())) {
                throw InputFormatException.field(file, key, "is not supported yet (found " + n + "); expected null");
            }
        }
        int r = intField(file, root, "r", 8);
        if (r < 1 || r > MAX_RANK) {
            throw InputFormatException.field(file, "r", "rank " + r + " is outside [1, " + MAX_RANK + "]");
        }
        float alpha = (float) numberField(file, root, "lora_alpha", 8);
        float dropout = (float) numberField(file, root, "lora_dropout", 0);
        boolean rslora = root.path("use_rslora").asBoolean(false);
        List<String> targets = new ArrayList<>();
        JsonNode tm = root.get("target_modules");
        if (tm == null || tm.isNull()) {
            targets.addAll(LoraConfig.DEFAULT_TARGETS);
        } else if (tm.isTextual()) {
            targets.add(tm.asText());
        } else if (tm.isArray()) {
            for (int i = 0; i < tm.size(); i++) {
                if (!tm.get(i).isTextual()) {
                    throw InputFormatException.field(file, "target_modules[" + i + "]", "expected a module name "
                            + "(a string), found " + JsonText.describe(tm.get(i)));
                }
                targets.add(tm.get(i).asText());
            }
        } else {
            throw InputFormatException.field(file, "target_modules", "expected a list of names or a regex string");
        }
        for (String target : targets) {
            try {
                TargetModules.check(target);
            } catch (IllegalArgumentException e) {
                throw InputFormatException.field(file, "target_modules", e.getMessage());
            }
        }
        for (String key : List.of("rank_pattern", "alpha_pattern")) {
            JsonNode n = root.get(key);
            if (n != null && n.isObject() && !n.isEmpty()) {
                throw InputFormatException.field(file, key, "per-module ranks/alphas are not supported yet (found "
                        + n + ")");
            }
        }
        try {
            return new LoraConfig(r, alpha, dropout, targets, rslora);
        } catch (IllegalArgumentException e) {
            throw InputFormatException.file(file, e.getMessage());
        }
    }

    /**
     * Copies the adapter's LoRA matrices into the matching trainable parameters (tensors of {@code be}, converted
     * to their dtype). Every parameter must be present with the same shape, and the file must hold no LoRA tensor
     * without a parameter.
     */
    public static void loadWeights(Backend be, Path dir, TrainableParams params) {
        Path file = dir.resolve(WEIGHTS);
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            Set<String> unused = new TreeSet<>(st.names());
            for (TrainableParams.Param p : params.all()) {
                String key = p.name();
                if (!st.contains(key)) {
                    throw InputFormatException.tensor(file, key, "missing from the adapter (it has "
                            + st.names().size() + " tensors)");
                }
                Tensor src = st.tensor(key);
                if (!src.shape().equals(p.value().shape())) {
                    throw InputFormatException.tensor(file, key, "shape " + src.shape() + " does not match the model: "
                            + "expected " + p.value().shape());
                }
                Tensors.copyFrom(be, p.value(), src.toFloatArray());
                unused.remove(key);
            }
            if (!unused.isEmpty()) {
                throw InputFormatException.tensor(file, unused.iterator().next(), "tensor does not belong to any "
                        + "adapted module of this model/config (" + unused.size() + " such tensors)");
            }
        }
    }

    /**
     * Writes {@code params} as an HF PEFT LoRA adapter folder, atomically: everything goes to a sibling temporary
     * folder that is renamed into place (an existing folder is replaced).
     *
     * @param be        the backend holding the parameters
     * @param baseModel recorded as {@code base_model_name_or_path}
     */
    public static void write(Backend be, Path dir, LoraConfig cfg, TrainableParams params, String baseModel) {
        Path abs = dir.toAbsolutePath();
        Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        Path old = abs.resolveSibling(abs.getFileName() + ".old-" + ProcessHandle.current().pid());
        try {
            FileTrees.delete(tmp);
            Files.createDirectories(tmp);
            writeFiles(be, tmp, cfg, params, baseModel);
            if (Files.exists(abs)) {
                Files.move(abs, old, StandardCopyOption.ATOMIC_MOVE);
            }
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            FileTrees.delete(old);
        } catch (IOException e) {
            throw new UncheckedIOException("writing adapter to " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes the two adapter files into the existing folder {@code dir} (not atomic as a pair). The parameters
     * (tensors of {@code be}) are copied to the host first.
     */
    public static void writeFiles(Backend be, Path dir, LoraConfig cfg, TrainableParams params, String baseModel)
            throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            params.all().forEach(p -> tensors.put(p.name(), Tensors.toHost(be, p.value(), arena)));
            SafetensorsWriter.write(dir.resolve(WEIGHTS), tensors, Map.of("format", "pt"));
        }
        Files.writeString(dir.resolve(CONFIG), JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsString(configJson(cfg, baseModel)));
    }

    static ObjectNode configJson(LoraConfig cfg, String baseModel) {
        ObjectNode o = JSON.createObjectNode();
        o.put("peft_type", "LORA");
        o.put("task_type", "CAUSAL_LM");
        o.put("base_model_name_or_path", baseModel);
        o.put("r", cfg.r());
        o.put("lora_alpha", cfg.alpha());
        o.put("lora_dropout", cfg.dropout());
        o.put("use_rslora", cfg.useRslora());
        ArrayNode tm = o.putArray("target_modules");
        cfg.targetModules().forEach(tm::add);
        o.put("bias", "none");
        o.put("fan_in_fan_out", false);
        o.put("inference_mode", true);
        o.put("init_lora_weights", true);
        o.putNull("modules_to_save");
        return o;
    }

    private static int intField(Path file, JsonNode root, String key, int dflt) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.canConvertToExactIntegral() || !n.canConvertToInt()) {
            throw InputFormatException.field(file, key, "expected an integer, got " + n);
        }
        return n.asInt();
    }

    private static double numberField(Path file, JsonNode root, String key, double dflt) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw InputFormatException.field(file, key, "expected a number, got " + n);
        }
        if (!(Math.abs(n.asDouble()) <= Float.MAX_VALUE)) {  // read as float: larger would become infinite
            throw InputFormatException.field(file, key, "expected a finite number in float range, got " + n);
        }
        return n.asDouble();
    }

}
