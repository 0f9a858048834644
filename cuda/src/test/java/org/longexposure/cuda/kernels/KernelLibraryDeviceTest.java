package org.longexposure.cuda.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.cuda.Gpu;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/** The NVRTC path of {@link KernelLibrary}: compile the bundled source, cache it on disk, reuse the cache. */
@Tag("gpu")
class KernelLibraryDeviceTest {
    @TempDir
    Path cache;

    @Test
    void nvrtcCompilesTheBundledSourceAndCachesTheCubin() throws IOException {
        try (CudaBackend be = Gpu.openOrSkip()) {
            int n = 1003;
            Tensor y = be.allocate(DType.F32, n);
            try (KernelLibrary lib = new KernelLibrary(be.context(), cache, List.of(), false)) {
                be.stream().launch(lib.function("smoke", "fill_f32"), 4, 1, 1, 256, 1, 1, 0,
                        KernelArgs.of(y, -3.25f, (long) n));
                assertThat(Gpu.download(be, y)).containsOnly(-3.25f);
            }
            List<Path> files;
            try (Stream<Path> s = Files.list(cache)) {
                files = s.toList();
            }
            String arch = KernelLibrary.archFor(be.context().computeCapability());
            assertThat(files).singleElement().satisfies(
                    p -> assertThat(p.getFileName().toString()).matches("[0-9a-f]{64}\\." + arch + "\\.cubin"));
            long modified = Files.getLastModifiedTime(files.getFirst()).toMillis();
            try (KernelLibrary again = new KernelLibrary(be.context(), cache, List.of(), false)) {
                be.stream().launch(again.function("smoke", "fill_f32"), 4, 1, 1, 256, 1, 1, 0,
                        KernelArgs.of(y, 2f, (long) n));
                assertThat(Gpu.download(be, y)).containsOnly(2f);
            }
            assertThat(Files.getLastModifiedTime(files.getFirst()).toMillis()).isEqualTo(modified);
        }
    }
}
