package org.longexposure.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.longexposure.backend.Backend;
import org.longexposure.backend.Tensors;
import org.longexposure.io.FileTrees;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.data.DataLoader;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.model.CausalLm;
import org.longexposure.peft.LoraConfig;
import org.longexposure.peft.TrainableParams;
import org.longexposure.sparsity.predict.OnlineSparsity;
import org.longexposure.tensor.Tensor;

/**
 * A resumable training checkpoint, {@code <out>/checkpoints/step-N/}: the adapter (HF PEFT layout), the AdamW
 * moments ({@code optimizer.safetensors}: {@code m/<name>}, {@code v/<name>}) and {@code trainer_state.json}
 * (optimizer step, data cursor, dropout-mask counters, the run's resolved configuration); for a run with online
 * sparsity also {@code sparsity/}, the {@link OnlineSparsity} state (current predictors with their dense fallbacks,
 * auto's calibration pool, the settings: {@link OnlineSparsity#save}). Written atomically: the folder is assembled
 * under a temporary name, synced, and renamed into place, so a killed run leaves either the whole checkpoint or none
 * of it. Resuming restores every piece of state the CPU step depends on, so a resumed run reproduces an
 * uninterrupted one bit for bit, sparse runs included.
 */
public final class Checkpoint {
    public static final String OPTIMIZER = "optimizer.safetensors";
    public static final String STATE = "trainer_state.json";
    /** The sub-folder holding the online sparsity state of a sparse run. */
    public static final String SPARSITY = "sparsity";
    private static final Pattern STEP_DIR = Pattern.compile("step-(\\d+)");
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Everything besides tensors that a resumed run needs.
     *
     * @param step            optimizer steps completed
     * @param cursor          where the data loader stands
     * @param dropoutCounters per LoRA layer, the number of dropout masks drawn
     * @param runConfig       the resolved run configuration (for display and compatibility checks)
     */
    public record State(int step, DataLoader.Cursor cursor, List<Long> dropoutCounters, JsonNode runConfig) {
    }

    private Checkpoint() {
    }

    /**
     * Writes {@code checkpointsDir/step-N} atomically and returns its path. The parameters and moments (tensors of
     * {@code be}) are copied to the host first.
     */
    public static Path save(Backend be, Path checkpointsDir, LoraConfig lora, TrainableParams params, AdamW adamw,
                            State state, String baseModel) {
        return save(be, checkpointsDir, lora, params, adamw, state, baseModel, null);
    }

    /**
     * As {@link #save(Backend, Path, LoraConfig, TrainableParams, AdamW, State, String)}, with the online sparsity
     * state of a sparse run ({@code sparsity} not null) in the same folder and under the same rename.
     */
    public static Path save(Backend be, Path checkpointsDir, LoraConfig lora, TrainableParams params, AdamW adamw,
                            State state, String baseModel, OnlineSparsity sparsity) {
        Path target = checkpointsDir.resolve("step-" + state.step());
        Path tmp = checkpointsDir.resolve(".tmp-step-" + state.step());
        try {
            Files.createDirectories(checkpointsDir);
            FileTrees.delete(tmp);
            Files.createDirectories(tmp);
            PeftAdapterIO.writeFiles(be, tmp, lora, params, baseModel);
            try (Arena arena = Arena.ofConfined()) {
                Map<String, Tensor> moments = new LinkedHashMap<>();
                for (TrainableParams.Param p : params.all()) {
                    moments.put("m/" + p.name(), Tensors.toHost(be, p.m(), arena));
                    moments.put("v/" + p.name(), Tensors.toHost(be, p.v(), arena));
                }
                SafetensorsWriter.write(tmp.resolve(OPTIMIZER), moments, Map.of("adamw_step",
                        Long.toString(adamw.step())));
            }
            if (sparsity != null) {
                sparsity.save(tmp.resolve(SPARSITY));
            }
            ObjectNode s = JSON.createObjectNode();
            s.put("step", state.step());
            s.put("adamw_step", adamw.step());
            s.put("epoch", state.cursor().epoch());
            s.put("position", state.cursor().position());
            ArrayNode counters = s.putArray("dropout_counters");
            state.dropoutCounters().forEach(counters::add);
            s.set("run_config", state.runConfig());
            Path stateFile = tmp.resolve(STATE);
            Files.writeString(stateFile, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(s));
            try (FileChannel ch = FileChannel.open(stateFile, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            FileTrees.delete(target);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException("writing checkpoint " + target + ": " + e.getMessage(), e);
        }
    }

    /** The complete checkpoint with the highest step under {@code checkpointsDir}, if any. */
    public static Optional<Path> latest(Path checkpointsDir) {
        if (!Files.isDirectory(checkpointsDir)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(checkpointsDir)) {
            return s.filter(p -> STEP_DIR.matcher(p.getFileName().toString()).matches())
                    .filter(p -> Files.isRegularFile(p.resolve(STATE)))
                    .max(Comparator.comparingInt(Checkpoint::stepOf));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** All complete checkpoints, oldest first. */
    public static List<Path> all(Path checkpointsDir) {
        if (!Files.isDirectory(checkpointsDir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(checkpointsDir)) {
            return new ArrayList<>(s.filter(p -> STEP_DIR.matcher(p.getFileName().toString()).matches())
                    .filter(p -> Files.isRegularFile(p.resolve(STATE)))
                    .sorted(Comparator.comparingInt(Checkpoint::stepOf)).toList());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static int stepOf(Path p) {
        Matcher m = STEP_DIR.matcher(p.getFileName().toString());
        return m.matches() ? Integer.parseInt(m.group(1)) : -1;
    }

    /** The run configuration saved in the checkpoint {@code dir} (read before restoring, to check it fits). */
    public static JsonNode runConfig(Path dir) {
        return readState(dir.resolve(STATE)).path("run_config");
    }

    private static JsonNode readState(Path stateFile) {
        try {
            return JSON.readTree(stateFile.toFile());
        } catch (IOException e) {
            throw InputFormatException.file(stateFile, "unreadable checkpoint state: " + e.getMessage());
        }
    }

    /**
     * Restores parameters, moments (tensors of {@code be}) and optimizer step from {@code dir}; returns the
     * non-tensor state.
     */
    public static State load(Backend be, Path dir, TrainableParams params, AdamW adamw) {
        PeftAdapterIO.loadWeights(be, dir, params);
        Path optFile = dir.resolve(OPTIMIZER);
        try (SafetensorsFile f = SafetensorsFile.open(optFile)) {
            for (TrainableParams.Param p : params.all()) {
                copy(be, f, optFile, "m/" + p.name(), p.m());
                copy(be, f, optFile, "v/" + p.name(), p.v());
            }
        }
        JsonNode s = readState(dir.resolve(STATE));
        adamw.setStep(s.path("adamw_step").asLong());
        List<Long> counters = new ArrayList<>();
        s.path("dropout_counters").forEach(n -> counters.add(n.asLong()));
        return new State(s.path("step").asInt(), new DataLoader.Cursor(s.path("epoch").asInt(),
                s.path("position").asInt()), counters, s.path("run_config"));
    }

    /** Whether the checkpoint {@code dir} holds an online sparsity state. */
    public static boolean hasSparsity(Path dir) {
        return Files.isRegularFile(dir.resolve(SPARSITY).resolve(OnlineSparsity.STATE_JSON));
    }

    /**
     * Restores the online sparsity state of the checkpoint {@code dir} for {@code lm} (adapters plugged and
     * restored) with the run's {@code settings}, which must be those it was saved with.
     *
     * @throws InputFormatException     when the checkpoint has no sparsity state or a file of it is malformed
     * @throws IllegalArgumentException naming the setting and both values when the settings differ
     */
    public static OnlineSparsity loadSparsity(Backend be, CausalLm lm, Path dir, OnlineSparsity.Settings settings) {
        if (!hasSparsity(dir)) {
            throw InputFormatException.file(dir, "holds no " + SPARSITY + "/" + OnlineSparsity.STATE_JSON
                    + ": the checkpoint is of a dense run, or was written before sparse runs saved their state");
        }
        return OnlineSparsity.load(be, lm, dir.resolve(SPARSITY), settings);
    }

    private static void copy(Backend be, SafetensorsFile f, Path file, String name, Tensor dst) {
        if (!f.contains(name)) {
            throw InputFormatException.tensor(file, name, "missing from the checkpoint");
        }
        Tensor src = f.tensor(name);
        if (!src.shape().equals(dst.shape())) {
            throw InputFormatException.tensor(file, name, "shape " + src.shape() + ", expected " + dst.shape());
        }
        Tensors.copyFrom(be, dst, src.toFloatArray());
    }

}
