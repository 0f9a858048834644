package org.longexposure.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;
import static org.longexposure.cli.CliRun.DATA;
import static org.longexposure.cli.CliRun.MODEL;
import static org.longexposure.cli.CliRun.run;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --backend cuda} where no CUDA device can be opened (the development and CI machines): one line naming
 * what was tried, exit status 2, no stack trace, no CPU fallback; and the library-folder list from the option and
 * the environment variable.
 */
class BackendOptionTest {
    @Test
    void cudaThatCannotBeOpenedIsOneLineNamingWhatWasTried(@TempDir Path dir) {
        Path noLibs = dir.resolve("no-cuda-here");
        for (String cmd : List.of("eval", "generate")) {
            String[] args = cmd.equals("eval")
                    ? new String[]{"eval", "--model", MODEL.toString(), "--data", DATA.toString(), "--seq-len", "24",
                        "--batch-size", "2", "--backend", "cuda", "--cuda-lib-path", noLibs.toString()}
                    : new String[]{"generate", "--model", MODEL.toString(), "--prompt", "It was", "--max-new-tokens",
                        "2", "--backend", "cuda", "--cuda-lib-path", noLibs.toString()};
            CliRun.Result r = run(args);
            assumeThat(r.status()).as("a CUDA device is available here").isNotZero();
            assertThat(r.status()).as(r.err()).isEqualTo(Main.USER_ERROR);
            assertThat(r.err()).startsWith("error: --backend cuda: cannot open CUDA device 0: ")
                    .doesNotContain("\tat ").doesNotContain("Exception");
            assertThat(r.err().strip().lines()).hasSize(1);
            assertThat(r.out()).isEmpty();
            if (r.err().contains("could not load libcuda.so.1")) {
                assertThat(r.err()).contains(noLibs.resolve("libcuda.so.1").toString())
                        .contains("LONGEXPOSURE_CUDA_LIB_PATH");
            }
        }
    }

    @Test
    void negativeDeviceIsAUserError() {
        CliRun.Result r = run("generate", "--model", MODEL.toString(), "--prompt", "It", "--max-new-tokens", "1",
                "--backend", "cuda", "--device", "-3");
        assertThat(r.status()).isEqualTo(Main.USER_ERROR);
        assertThat(r.err()).startsWith("error: --device must be >= 0, got -3");
    }

    @Test
    void libraryFoldersComeFromTheOptionThenTheEnvironment() {
        assertThat(BackendOption.libDirs("/a/lib: /b/lib::", "/c:")).containsExactly(Path.of("/a/lib"),
                Path.of("/b/lib"), Path.of("/c"));
        assertThat(BackendOption.libDirs(null, null)).isEmpty();
        assertThat(BackendOption.libDirs(null, "/only/env")).containsExactly(Path.of("/only/env"));
    }
}
