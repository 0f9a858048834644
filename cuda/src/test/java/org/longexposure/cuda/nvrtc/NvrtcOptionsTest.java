package org.longexposure.cuda.nvrtc;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NvrtcOptionsTest {
    @TempDir
    Path tmp;

    @Test
    void includeFoldersComeFromTheLibraryLocationThenToolkitHomes() throws IOException {
        // toolkit layout: <root>/lib64/libnvrtc.so.13 with headers in <root>/include
        Path toolkit = tmp.resolve("cuda-13.0");
        Path lib = Files.createDirectories(toolkit.resolve("lib64")).resolve("libnvrtc.so.13");
        Files.writeString(lib, "");
        header(toolkit.resolve("include"));
        // a second toolkit with headers under targets/, and a home without any headers
        Path other = tmp.resolve("other");
        header(other.resolve("targets/x86_64-linux/include"));
        Path bare = Files.createDirectories(tmp.resolve("bare/include"));

        List<Path> found = Nvrtc.includeCandidates(Optional.of(lib), List.of(bare.getParent(), other, toolkit));
        assertThat(found).containsExactly(toolkit.resolve("include"), other.resolve("targets/x86_64-linux/include"));
        assertThat(Nvrtc.includeCandidates(Optional.empty(), List.of(bare.getParent()))).isEmpty();
    }

    @Test
    void optionsNameTheArchitectureAndEveryIncludeFolder() {
        assertThat(Nvrtc.options("sm_90a", List.of(Path.of("/opt/cuda/include"))))
                .containsExactly("--gpu-architecture=sm_90a", "-std=c++17", "-lineinfo", "-I/opt/cuda/include");
    }

    private static void header(Path dir) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("cuda_bf16.h"), "// bf16");
    }
}
