package org.longexposure.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.longexposure.backend.Backend;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.cuda.CudaException;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.cuda.backend.CudaOptions;
import picocli.CommandLine.Option;

/**
 * {@code --backend}, {@code --threads}, {@code --device} and {@code --cuda-lib-path}, shared by the commands that
 * compute. The CUDA libraries are looked up by soname through the loader first, then in the folders of
 * {@code --cuda-lib-path}, then in those of the environment variable {@value #LIB_PATH_ENV}. Opening CUDA never
 * falls back to the CPU: a device that cannot be opened is a one-line user error saying what was tried.
 */
final class BackendOption {
    /** Colon-separated folders searched for libcuda.so.1, libnvrtc and libcublasLt after the loader path. */
    static final String LIB_PATH_ENV = "LONGEXPOSURE_CUDA_LIB_PATH";

    @Option(names = "--backend", defaultValue = "cpu", description = "cpu or cuda (default: ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--threads", description = "CPU worker threads (default: all cores; cpu backend)")
    Integer threads;

    @Option(names = "--device", defaultValue = "0", description = "CUDA device ordinal (default: ${DEFAULT-VALUE};"
            + " cuda backend)")
    int device;

    @Option(names = "--cuda-lib-path", paramLabel = "DIR[:DIR]", description = "folders holding libcuda.so.1,"
            + " libnvrtc and libcublasLt when the loader does not find them (also: $" + LIB_PATH_ENV + ")")
    String cudaLibPath;

    /** The requested backend; never silently another one. */
    Backend open() {
        return switch (backend) {
            case "cpu" -> new CpuBackend(threads != null ? threads : Runtime.getRuntime().availableProcessors());
            case "cuda" -> openCuda(libDirs(cudaLibPath, System.getenv(LIB_PATH_ENV)));
            default -> throw new Main.UserException("--backend: unknown backend '" + backend
                    + "'; expected cpu or cuda");
        };
    }

    private Backend openCuda(List<Path> dirs) {
        if (device < 0) {
            throw new Main.UserException("--device must be >= 0, got " + device);
        }
        try {
            return CudaBackend.open(new CudaOptions(device, dirs, kernelCacheDir(), cudaHomes()));
        } catch (CudaException e) {
            String why = String.valueOf(e.getMessage()).strip().replaceAll("\\s*\\R\\s*", "; ");
            throw new Main.UserException("--backend cuda: cannot open CUDA device " + device + ": " + why);
        }
    }

    /**
     * Where kernels compiled at run time (GPUs without prebuilt cubins) are kept between runs:
     * {@code $XDG_CACHE_HOME/longexposure/kernels}, else {@code ~/.cache/longexposure/kernels}; null (no disk
     * cache) when neither is known.
     */
    private static Path kernelCacheDir() {
        String xdg = System.getenv("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank()) {
            return Path.of(xdg, "longexposure", "kernels");
        }
        String home = System.getProperty("user.home");
        return home == null || home.isBlank() ? null : Path.of(home, ".cache", "longexposure", "kernels");
    }

    /** CUDA toolkit folders named by {@code CUDA_HOME} and {@code CUDA_PATH} (NVRTC finds its headers there). */
    private static List<Path> cudaHomes() {
        List<Path> homes = new ArrayList<>();
        for (String var : new String[]{"CUDA_HOME", "CUDA_PATH"}) {
            String v = System.getenv(var);
            if (v != null && !v.isBlank()) {
                homes.add(Path.of(v.strip()));
            }
        }
        return List.copyOf(homes);
    }

    /** The folders of {@code --cuda-lib-path}, then those of the environment variable, empty entries dropped. */
    static List<Path> libDirs(String option, String env) {
        List<Path> dirs = new ArrayList<>();
        for (String list : new String[]{option, env}) {
            if (list == null) {
                continue;
            }
            for (String d : list.split(":")) {
                if (!d.isBlank()) {
                    dirs.add(Path.of(d.strip()));
                }
            }
        }
        return List.copyOf(dirs);
    }
}
