package org.longexposure.cuda.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class KernelLibraryTest {
    @Test
    void cacheKeyCoversSourceHeadersOptionsAndArchitecture() {
        String src = "extern \"C\" __global__ void k() {}";
        Map<String, String> h = Map.of("common.cuh", "#define X 1");
        List<String> opts = List.of("--gpu-architecture=sm_89", "-std=c++17");
        String key = KernelLibrary.cacheFileName(src, h, opts, "sm_89");
        assertThat(key).matches("[0-9a-f]{64}\\.sm_89\\.cubin");
        assertThat(KernelLibrary.cacheFileName(src, Map.of("common.cuh", "#define X 1"), List.copyOf(opts), "sm_89"))
                .isEqualTo(key);
        assertThat(KernelLibrary.cacheFileName(src + " ", h, opts, "sm_89")).isNotEqualTo(key);
        assertThat(KernelLibrary.cacheFileName(src, Map.of("common.cuh", "#define X 2"), opts, "sm_89"))
                .isNotEqualTo(key);
        assertThat(KernelLibrary.cacheFileName(src, h, List.of("--gpu-architecture=sm_89"), "sm_89"))
                .isNotEqualTo(key);
        assertThat(KernelLibrary.cacheFileName(src, h, opts, "sm_120")).endsWith(".sm_120.cubin");
        // parts are length-prefixed: moving a character between source and header name changes the key
        assertThat(KernelLibrary.cacheFileName("ab", Map.of("c", ""), List.of(), "sm_89"))
                .isNotEqualTo(KernelLibrary.cacheFileName("a", Map.of("bc", ""), List.of(), "sm_89"));
    }

    @Test
    void architectureIsTheArchSpecificOneOnHopperOnly() {
        assertThat(KernelLibrary.archFor(90)).isEqualTo("sm_90a");
        assertThat(KernelLibrary.archFor(89)).isEqualTo("sm_89");
        assertThat(KernelLibrary.archFor(100)).isEqualTo("sm_100");
    }

    @Test
    void buildBundlesEveryKernelAsSourceAndHopperCubin() throws IOException {
        for (String stem : List.of("smoke", "linear")) {
            byte[] cubin = resource(stem + ".sm_90a.cubin");
            assertThat(cubin).as("prebuilt %s cubin", stem).isNotNull();
            assertThat(new byte[] {cubin[0], cubin[1], cubin[2], cubin[3]}).as("ELF magic")
                    .containsExactly(0x7F, 'E', 'L', 'F');
            assertThat(resource(stem + ".cu")).as("bundled %s source", stem).isNotNull();
        }
        String smokeElf = new String(resource("smoke.sm_90a.cubin"), StandardCharsets.ISO_8859_1);
        assertThat(smokeElf).contains("fill_f32", "axpy_f32", "scale_rows_f64");
    }

    @Test
    void localHeadersAreCollectedTransitively() throws IOException {
        assertThat(KernelLibrary.headersOf("#include <cuda_bf16.h>\nextern \"C\" __global__ void k() {}"))
                .isEmpty();
        // attention.cu includes mma.cuh, which includes common.cuh: NVRTC must receive both
        String attention = new String(resource("attention.cu"), StandardCharsets.UTF_8);
        Map<String, String> headers = KernelLibrary.headersOf(attention);
        assertThat(headers).containsOnlyKeys("mma.cuh", "common.cuh");
        assertThat(headers.get("common.cuh")).isEqualTo(new String(resource("common.cuh"), StandardCharsets.UTF_8));
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = KernelLibrary.class.getResourceAsStream(KernelLibrary.RESOURCE_DIR + name)) {
            return in == null ? null : in.readAllBytes();
        }
    }
}
