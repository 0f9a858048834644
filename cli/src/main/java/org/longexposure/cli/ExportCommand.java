package org.longexposure.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.peft.PeftAdapterIO;
import org.longexposure.train.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code longexposure export}: the adapter of a training checkpoint as a Hugging Face PEFT adapter folder
 * ({@code adapter_config.json} + {@code adapter_model.safetensors}), written atomically. {@code --checkpoint} is a
 * {@code checkpoints/step-N} folder, or a run folder (its newest checkpoint is used).
 */
@Command(name = "export", mixinStandardHelpOptions = true, description = "Checkpoint -> HF PEFT adapter folder.")
final class ExportCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--checkpoint", required = true)
    Path checkpoint;

    @Option(names = "--out", required = true)
    Path out;

    @Override
    public Integer call() throws IOException {
        Path ckpt = resolve(checkpoint);
        PeftAdapterIO.readLoraConfig(ckpt); // validates the config before anything is written
        Path abs = out.toAbsolutePath();
        if (Files.exists(abs)) {
            throw new Main.UserException("--out " + out + " already exists; choose a new folder");
        }
        Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp-export");
        Files.createDirectories(tmp);
        for (String f : new String[]{PeftAdapterIO.CONFIG, PeftAdapterIO.WEIGHTS}) {
            Files.copy(ckpt.resolve(f), tmp.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
        spec.commandLine().getOut().println("exported " + ckpt + " -> " + out);
        return 0;
    }

    static Path resolve(Path dir) {
        if (Files.isRegularFile(dir.resolve(Checkpoint.STATE))) {
            return dir;
        }
        return Checkpoint.latest(dir.resolve("checkpoints")).orElseThrow(() -> InputFormatException.file(dir,
                "not a checkpoint (no " + Checkpoint.STATE + ") and no checkpoints/step-N inside"));
    }
}
