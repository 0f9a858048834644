package org.longexposure.cuda.nvrtc;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Supplier;
import org.longexposure.cuda.CudaException;
import org.longexposure.cuda.NativeCalls;
import org.longexposure.cuda.NativeLibraries;

/**
 * FFM bindings of NVRTC (libnvrtc.so.13): compiles CUDA C++ source to a cubin for one GPU architecture at run
 * time. A failed compile throws a {@link CudaException} carrying the program log (the compiler's diagnostics).
 *
 * <p>The kernels include {@code cuda_bf16.h}. NVRTC needs the toolkit's include folder for it, so
 * {@link #includeCandidates} derives candidates from where libnvrtc was loaded and from toolkit folders the
 * caller names (e.g. CUDA_HOME, read by the cli); only folders that hold cuda_bf16.h are kept.
 */
public final class Nvrtc {
    public static final String SONAME = "libnvrtc.so.13";

    private final Optional<Path> libraryPath;
    private final MethodHandle nvrtcVersion;
    private final MethodHandle nvrtcCreateProgram;
    private final MethodHandle nvrtcCompileProgram;
    private final MethodHandle nvrtcGetCUBINSize;
    private final MethodHandle nvrtcGetCUBIN;
    private final MethodHandle nvrtcGetProgramLogSize;
    private final MethodHandle nvrtcGetProgramLog;
    private final MethodHandle nvrtcDestroyProgram;
    private final MethodHandle nvrtcGetErrorString;

    private Nvrtc(SymbolLookup lib, Optional<Path> libraryPath) {
        this.libraryPath = libraryPath;
        nvrtcVersion = bind(lib, "nvrtcVersion", JAVA_INT, ADDRESS, ADDRESS);
        nvrtcCreateProgram = bind(lib, "nvrtcCreateProgram", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                ADDRESS);
        nvrtcCompileProgram = bind(lib, "nvrtcCompileProgram", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        nvrtcGetCUBINSize = bind(lib, "nvrtcGetCUBINSize", JAVA_INT, ADDRESS, ADDRESS);
        nvrtcGetCUBIN = bind(lib, "nvrtcGetCUBIN", JAVA_INT, ADDRESS, ADDRESS);
        nvrtcGetProgramLogSize = bind(lib, "nvrtcGetProgramLogSize", JAVA_INT, ADDRESS, ADDRESS);
        nvrtcGetProgramLog = bind(lib, "nvrtcGetProgramLog", JAVA_INT, ADDRESS, ADDRESS);
        nvrtcDestroyProgram = bind(lib, "nvrtcDestroyProgram", JAVA_INT, ADDRESS);
        nvrtcGetErrorString = bind(lib, "nvrtcGetErrorString", ADDRESS, JAVA_INT);
    }

    /** Loads libnvrtc.so.13 (loader search path, then {@code libDirs}). */
    public static Nvrtc load(List<Path> libDirs) {
        SymbolLookup lib = NativeLibraries.find(SONAME, libDirs);
        return new Nvrtc(lib, NativeLibraries.loadedPath(SONAME));
    }

    /** The file libnvrtc was loaded from, when the platform tells. */
    public Optional<Path> libraryPath() {
        return libraryPath;
    }

    /** "major.minor" of NVRTC. */
    public String version() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment major = a.allocate(JAVA_INT);
            MemorySegment minor = a.allocate(JAVA_INT);
            call("nvrtcVersion", () -> "", () -> (int) nvrtcVersion.invokeExact(major, minor));
            return major.get(JAVA_INT, 0) + "." + minor.get(JAVA_INT, 0);
        }
    }

    /**
     * Compiles {@code source} (named {@code name} in diagnostics) with {@code options} to a cubin. {@code headers}
     * maps include names (as written in {@code #include "..."}) to their text, so bundled headers need no folder.
     */
    public byte[] compileToCubin(String name, String source, Map<String, String> headers, List<String> options) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment progOut = a.allocate(ADDRESS);
            List<String> names = new ArrayList<>(headers.keySet());
            MemorySegment headerTexts = stringArray(a, names.stream().map(headers::get).toList());
            MemorySegment headerNames = stringArray(a, names);
            MemorySegment src = a.allocateFrom(source);
            MemorySegment cname = a.allocateFrom(name);
            call("nvrtcCreateProgram", () -> name, () -> (int) nvrtcCreateProgram.invokeExact(progOut, src, cname,
                    names.size(), headerTexts, headerNames));
            MemorySegment prog = progOut.get(ADDRESS, 0);
            try {
                MemorySegment opts = stringArray(a, options);
                int rc;
                try {
                    rc = (int) nvrtcCompileProgram.invokeExact(prog, options.size(), opts);
                } catch (Throwable t) {
                    throw new CudaException("nvrtcCompileProgram(" + name + "): " + t, t);
                }
                if (rc != 0) {
                    throw new CudaException("nvrtcCompileProgram(" + name + ", options " + options + "): "
                            + errorString(rc) + "\n" + log(a, prog), rc);
                }
                MemorySegment size = a.allocate(JAVA_LONG);
                call("nvrtcGetCUBINSize", () -> name, () -> (int) nvrtcGetCUBINSize.invokeExact(prog, size));
                MemorySegment cubin = a.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
                call("nvrtcGetCUBIN", () -> name, () -> (int) nvrtcGetCUBIN.invokeExact(prog, cubin));
                return cubin.asSlice(0, size.get(JAVA_LONG, 0)).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            } finally {
                call("nvrtcDestroyProgram", () -> name, () -> (int) nvrtcDestroyProgram.invokeExact(progOut));
            }
        }
    }

    /**
     * Compiler options for architecture {@code arch} (e.g. "sm_90a"): C++17, line info, and one {@code -I} per
     * include folder. No fast-math flag: kernels choose their approximate intrinsics explicitly.
     */
    public static List<String> options(String arch, List<Path> includeDirs) {
        List<String> o = new ArrayList<>();
        o.add("--gpu-architecture=" + arch);
        o.add("-std=c++17");
        o.add("-lineinfo");
        for (Path p : includeDirs) {
            o.add("-I" + p);
        }
        return o;
    }

    /**
     * Toolkit include folders that hold cuda_bf16.h, in preference order: next to the loaded library
     * ({@code <lib dir>/../include}, {@code <lib dir>/../targets/x86_64-linux/include}, and the
     * {@code nvidia/cu13/include} layout of Python wheels), then {@code <home>/include} and
     * {@code <home>/targets/x86_64-linux/include} for every toolkit folder in {@code cudaHomes}.
     */
    public static List<Path> includeCandidates(Optional<Path> libraryPath, List<Path> cudaHomes) {
        Set<Path> candidates = new LinkedHashSet<>();
        libraryPath.map(Path::getParent).ifPresent(libDir -> {
            Path up = libDir.getParent();
            if (up != null) {
                candidates.add(up.resolve("include"));
                candidates.add(up.resolve("targets/x86_64-linux/include"));
                candidates.add(up.resolve("targets/sbsa-linux/include"));
                Path wheelRoot = up.getParent();
                if (wheelRoot != null) {
                    candidates.add(wheelRoot.resolve("cuda_runtime/include"));
                }
            }
        });
        for (Path home : cudaHomes) {
            candidates.add(home.resolve("include"));
            candidates.add(home.resolve("targets/x86_64-linux/include"));
        }
        return candidates.stream()
                .map(Path::normalize)
                .filter(p -> Files.isRegularFile(p.resolve("cuda_bf16.h")))
                .distinct()
                .toList();
    }

    private String log(Arena a, MemorySegment prog) {
        try {
            MemorySegment size = a.allocate(JAVA_LONG);
            if ((int) nvrtcGetProgramLogSize.invokeExact(prog, size) != 0) {
                return "(no program log)";
            }
            MemorySegment text = a.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
            if ((int) nvrtcGetProgramLog.invokeExact(prog, text) != 0) {
                return "(no program log)";
            }
            return text.getString(0);
        } catch (Throwable t) {
            return "(program log unavailable: " + t + ")";
        }
    }

    private String errorString(int rc) {
        try {
            return NativeCalls.cString((MemorySegment) nvrtcGetErrorString.invokeExact(rc));
        } catch (Throwable t) {
            return "nvrtcResult " + rc;
        }
    }

    private static MemorySegment stringArray(Arena a, List<String> values) {
        MemorySegment arr = a.allocate(ADDRESS, Math.max(1, values.size()));
        for (int i = 0; i < values.size(); i++) {
            arr.setAtIndex(ADDRESS, i, a.allocateFrom(values.get(i)));
        }
        return arr;
    }

    private void call(String function, Supplier<String> args, NativeCalls.StatusCall c) {
        NativeCalls.check(function, args, c, this::errorString);
    }

    private static MethodHandle bind(SymbolLookup lib, String name, MemoryLayout result, MemoryLayout... args) {
        return NativeCalls.bind(lib, SONAME, name, result, args);
    }
}
