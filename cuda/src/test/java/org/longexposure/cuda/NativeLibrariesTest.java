package org.longexposure.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NativeLibrariesTest {
    @TempDir
    Path tmp;

    @Test
    void failureListsEveryPlaceTriedAndWhy() throws IOException {
        String soname = "liblongexposure-absent.so.7";
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        Path bogus = Files.createDirectories(tmp.resolve("bogus"));
        Files.createDirectories(bogus.resolve(soname)); // present, but not a loadable file

        assertThatThrownBy(() -> NativeLibraries.find(soname, List.of(empty, bogus)))
                .isInstanceOf(CudaException.class)
                .hasMessageStartingWith("could not load " + soname + ": tried ")
                .hasMessageContaining(soname + " via the loader search path")
                .hasMessageContaining(empty.resolve(soname) + " (no such file)")
                .hasMessageContaining(bogus.resolve(soname).toString() + " (")
                .hasMessageContaining("--cuda-lib-path")
                .hasMessageContaining("LONGEXPOSURE_CUDA_LIB_PATH");
    }

    @Test
    void findsALibraryTheLoaderKnows() {
        // libc is present on every Linux machine the project builds on
        assertThat(NativeLibraries.find("libc.so.6", List.of()).find("strlen")).isPresent();
        assertThat(NativeLibraries.loadedPath("libc.so.6")).hasValueSatisfying(
                p -> assertThat(p.getFileName().toString()).startsWith("libc.so.6"));
    }
}
