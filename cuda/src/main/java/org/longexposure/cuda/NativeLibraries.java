package org.longexposure.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Finds the CUDA shared libraries (libcuda.so.1, libnvrtc.so.13, libcublasLt.so.13) without hard-coded install
 * paths: first by soname through the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache, RUNPATH), then as
 * {@code dir/soname} in each folder the caller passes (from {@code --cuda-lib-path} or
 * {@code LONGEXPOSURE_CUDA_LIB_PATH}, read by the cli). Libraries stay loaded for the life of the process.
 */
public final class NativeLibraries {
    private NativeLibraries() {
    }

    /**
     * A lookup over the library {@code soname}, or a {@link CudaException} listing every place tried and why it
     * failed.
     */
    public static SymbolLookup find(String soname, List<Path> extraDirs) {
        List<String> tried = new ArrayList<>();
        try {
            return SymbolLookup.libraryLookup(soname, Arena.global());
        } catch (IllegalArgumentException e) {
            tried.add(soname + " via the loader search path (" + reason(e) + ")");
        }
        for (Path dir : extraDirs) {
            Path candidate = dir.resolve(soname);
            if (!Files.exists(candidate)) {
                tried.add(candidate + " (no such file)");
                continue;
            }
            try {
                return SymbolLookup.libraryLookup(candidate, Arena.global());
            } catch (IllegalArgumentException e) {
                tried.add(candidate + " (" + reason(e) + ")");
            }
        }
        throw new CudaException(failureMessage(soname, tried));
    }

    /** The message of a failed lookup: what was looked for, each place tried, and how to point at the library. */
    static String failureMessage(String soname, List<String> tried) {
        return "could not load " + soname + ": tried " + String.join("; ", tried)
                + "; set --cuda-lib-path or LONGEXPOSURE_CUDA_LIB_PATH to the folder holding it";
    }

    /**
     * Where the loaded library whose file name starts with {@code soname} lives, read from /proc/self/maps (Linux);
     * empty when not loaded or not knowable. NVRTC uses it to find the toolkit's include folder next to it.
     */
    public static Optional<Path> loadedPath(String soname) {
        Path maps = Path.of("/proc/self/maps");
        if (!Files.isReadable(maps)) {
            return Optional.empty();
        }
        try (var lines = Files.lines(maps)) {
            return lines.map(l -> l.indexOf('/') >= 0 ? l.substring(l.indexOf('/')).trim() : "")
                    .filter(p -> !p.isEmpty() && Path.of(p).getFileName().toString().startsWith(soname))
                    .map(Path::of)
                    .findFirst();
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    private static String reason(IllegalArgumentException e) {
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }
}
