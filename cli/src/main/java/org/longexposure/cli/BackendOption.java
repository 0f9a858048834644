package org.longexposure.cli;

import org.longexposure.backend.Backend;
import org.longexposure.backend.cpu.CpuBackend;
import picocli.CommandLine.Option;

/** {@code --backend} and {@code --threads}, shared by the commands that compute. */
final class BackendOption {
    @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--threads", description = "CPU worker threads (default: all cores)")
    Integer threads;

    /** The requested backend; never silently another one. */
    Backend open() {
        return switch (backend) {
            case "cpu" -> new CpuBackend(threads != null ? threads : Runtime.getRuntime().availableProcessors());
            case "cuda" -> throw new Main.UserException("--backend cuda: this build has no CUDA backend yet; "
                    + "use --backend cpu");
            default -> throw new Main.UserException("--backend: unknown backend '" + backend
                    + "'; expected cpu or cuda");
        };
    }
}
