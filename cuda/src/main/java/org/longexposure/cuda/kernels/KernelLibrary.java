package org.longexposure.cuda.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.longexposure.cuda.CudaException;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.CudaModule;
import org.longexposure.cuda.nvrtc.Nvrtc;

/**
 * The module's kernels, loaded lazily by file stem ({@code layernorm}, {@code smoke}, ...). Each stem is one
 * {@code cuda/src/main/cuda/<stem>.cu}; the build puts {@code <stem>.sm_90a.cubin} (nvcc) and the sources on the
 * class path under {@code org/longexposure/cuda/kernels/}.
 *
 * <p>On an SM 9.0 device the prebuilt cubin is loaded. On any other device (or when the jar was built without
 * cubins) the bundled source is compiled with NVRTC for that device's architecture; with a cache folder, the
 * cubin is kept there under {@code sha256(source, headers, options).<arch>.cubin}, written atomically, so
 * the next start skips the compile and a changed source or option never reuses a stale binary.
 */
public final class KernelLibrary implements AutoCloseable {
    static final String RESOURCE_DIR = "/org/longexposure/cuda/kernels/";
    static final String PREBUILT_ARCH = "sm_90a";
    static final int PREBUILT_CC = 90;
    private static final Pattern LOCAL_INCLUDE = Pattern.compile("^\\s*#\\s*include\\s+\"([^\"]+)\"",
            Pattern.MULTILINE);

    private final CudaContext ctx;
    private final Path cacheDir;
    private final List<Path> cudaHomes;
    private final boolean usePrebuilt;
    private final Map<String, CudaModule> modules = new HashMap<>();
    private Nvrtc nvrtc;

    /** Prebuilt cubins, else NVRTC compiles kept in memory only. */
    public KernelLibrary(CudaContext ctx) {
        this(ctx, null, List.of());
    }

    /**
     * @param cacheDir  folder for NVRTC-compiled cubins (created when needed), or null for no disk cache
     * @param cudaHomes toolkit folders searched for cuda_bf16.h besides the one next to libnvrtc
     */
    public KernelLibrary(CudaContext ctx, Path cacheDir, List<Path> cudaHomes) {
        this(ctx, cacheDir, cudaHomes, true);
    }

    /** With {@code usePrebuilt} false every module goes through NVRTC (tests of that path on a Hopper device). */
    KernelLibrary(CudaContext ctx, Path cacheDir, List<Path> cudaHomes, boolean usePrebuilt) {
        this.ctx = ctx;
        this.cacheDir = cacheDir;
        this.cudaHomes = List.copyOf(cudaHomes);
        this.usePrebuilt = usePrebuilt;
    }

    /** Kernel {@code symbol} of file {@code stem}, e.g. ("layernorm", "layernorm_forward_bf16"). */
    public CudaFunction function(String stem, String symbol) {
        return module(stem).function(symbol);
    }

    /** The loaded module of file {@code stem}, loading (or compiling) it on first use. */
    public CudaModule module(String stem) {
        CudaModule m = modules.get(stem);
        if (m == null) {
            m = load(stem);
            modules.put(stem, m);
        }
        return m;
    }

    /** The architecture NVRTC targets for compute capability {@code cc}: sm_90a on Hopper, else sm_XY. */
    static String archFor(int cc) {
        return cc == PREBUILT_CC ? PREBUILT_ARCH : "sm_" + cc;
    }

    private CudaModule load(String stem) {
        int cc = ctx.computeCapability();
        if (cc == PREBUILT_CC && usePrebuilt) {
            byte[] cubin = resource(stem + "." + PREBUILT_ARCH + ".cubin");
            if (cubin != null) {
                return ctx.loadModule(cubin, stem + "." + PREBUILT_ARCH + ".cubin");
            }
        }
        String fileName = stem + ".cu";
        byte[] src = resource(fileName);
        if (src == null) {
            throw new CudaException("no kernel source " + RESOURCE_DIR + fileName + " on the class path (and no "
                    + "prebuilt cubin for sm_" + cc + ")");
        }
        String source = new String(src, StandardCharsets.UTF_8);
        Map<String, String> headers = headersOf(source);
        String arch = archFor(cc);
        byte[] cubin = compileCached(fileName, source, headers, arch);
        return ctx.loadModule(cubin, stem + "." + arch + ".cubin");
    }

    private byte[] compileCached(String fileName, String source, Map<String, String> headers, String arch) {
        if (nvrtc == null) {
            nvrtc = Nvrtc.load(ctx.libDirs());
        }
        List<Path> includes = Nvrtc.includeCandidates(nvrtc.libraryPath(), cudaHomes);
        List<String> options = Nvrtc.options(arch, includes);
        if (cacheDir == null) {
            return nvrtc.compileToCubin(fileName, source, headers, options);
        }
        Path cached = cacheDir.resolve(cacheFileName(source, headers, options, arch));
        try {
            if (Files.isRegularFile(cached)) {
                return Files.readAllBytes(cached);
            }
            byte[] cubin = nvrtc.compileToCubin(fileName, source, headers, options);
            writeAtomically(cached, cubin);
            return cubin;
        } catch (IOException e) {
            throw new UncheckedIOException("kernel cache " + cached + ": " + e.getMessage(), e);
        }
    }

    /**
     * {@code sha256(source, headers by name, options).<arch>.cubin}: every input of the compile is in the key, each
     * part length-prefixed so that no two different inputs concatenate to the same bytes.
     */
    static String cacheFileName(String source, Map<String, String> headers, List<String> options, String arch) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        List<String> parts = new ArrayList<>();
        parts.add(source);
        new TreeMap<>(headers).forEach((k, v) -> {
            parts.add(k);
            parts.add(v);
        });
        parts.addAll(options);
        parts.add(arch);
        for (String p : parts) {
            byte[] b = p.getBytes(StandardCharsets.UTF_8);
            sha.update(ByteBuffer.allocate(Integer.BYTES).putInt(b.length).array());
            sha.update(b);
        }
        return HexFormat.of().formatHex(sha.digest()) + "." + arch + ".cubin";
    }

    /** The bundled headers {@code source} includes with {@code #include "..."}, transitively, by include name. */
    static Map<String, String> headersOf(String source) {
        Map<String, String> found = new TreeMap<>();
        Deque<String> todo = new ArrayDeque<>();
        todo.add(source);
        while (!todo.isEmpty()) {
            Matcher m = LOCAL_INCLUDE.matcher(todo.pop());
            while (m.find()) {
                String name = m.group(1);
                if (!found.containsKey(name)) {
                    byte[] h = resource(name);
                    if (h == null) {
                        throw new CudaException("kernel header " + RESOURCE_DIR + name + " not on the class path");
                    }
                    String text = new String(h, StandardCharsets.UTF_8);
                    found.put(name, text);
                    todo.add(text);
                }
            }
        }
        return found;
    }

    private static void writeAtomically(Path target, byte[] bytes) throws IOException {
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), target.getFileName().toString(), ".tmp");
        try {
            Files.write(tmp, bytes);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static byte[] resource(String name) {
        try (InputStream in = KernelLibrary.class.getResourceAsStream(RESOURCE_DIR + name)) {
            return in == null ? null : in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading kernel resource " + name, e);
        }
    }

    @Override
    public void close() {
        List<CudaModule> all = new ArrayList<>(modules.values());
        modules.clear();
        for (CudaModule m : all) {
            m.close();
        }
    }
}
