package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.cuda.CudaException;
import org.longexposure.cuda.Gpu;
import org.longexposure.cuda.driver.CudaGraph;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/** Backend-level services of {@link CudaBackend}: fillUniform, adoptWeight, write/read checks, stream capture. */
@Tag("gpu")
class CudaBackendDeviceTest extends DeviceTestBase {

    @Test
    void fillUniformIsBitIdenticalToTheCpuBackend() {
        for (DType d : new DType[] {DType.F32, DType.BF16, DType.F16, DType.F64}) {
            Tensor g = gpu.allocate(d, 7, 1031);
            Tensor c = cpu.allocate(d, 7, 1031);
            gpu.fillUniform(g, -0.37f, 1.9f, 0x5EEDL);
            cpu.fillUniform(c, -0.37f, 1.9f, 0x5EEDL);
            assertThat(bytes(g)).as("%s", d).isEqualTo(c.host().toArray(ValueLayout.JAVA_BYTE));
        }
    }

    @Test
    void adoptWeightRoundsToBf16LikeTheHost() {
        SplittableRandom rnd = new SplittableRandom(9);
        try (Arena a = Arena.ofConfined()) {
            Tensor f32 = Tensor.allocateHost(a, DType.F32, 33, 65);
            Tensor f16 = Tensor.allocateHost(a, DType.F16, 33, 65);
            for (int i = 0; i < f32.numel(); i++) {
                float v = (float) rnd.nextDouble(-3, 3);
                f32.setFloat(i, v);
                f16.host().setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(v));
            }
            Tensor w32 = gpu.adoptWeight(f32, "w32");
            Tensor w16 = gpu.adoptWeight(f16, "w16");
            assertThat(w32.dtype()).isEqualTo(DType.BF16);
            assertThat(w32.shape()).isEqualTo(f32.shape());
            float[] got32 = Gpu.download(gpu, w32);
            float[] got16 = Gpu.download(gpu, w16);
            for (int i = 0; i < got32.length; i++) {
                assertThat(got32[i]).isEqualTo(org.longexposure.cuda.Bf16.round(f32.getFloat(i)));
                assertThat(got16[i]).isEqualTo(org.longexposure.cuda.Bf16.round(f16.getFloat(i)));
            }
        }
    }

    /**
     * A captured graph runs nothing until launched and then replays the captured kernels with their arguments; a
     * synchronisation inside the capture fails it with the driver's error and leaves the stream usable.
     */
    @Test
    void capturedGraphReplaysItsKernels() {
        Tensor t = Gpu.upload(gpu, DType.F32, new float[] {1, 2, 3}, 3);
        try (CudaGraph graph = gpu.stream().capture(() -> gpu.optim().scale(t, 2f))) {
            assertThat(Gpu.download(gpu, t)).containsExactly(1f, 2f, 3f);
            gpu.stream().launch(graph);
            assertThat(Gpu.download(gpu, t)).containsExactly(2f, 4f, 6f);
            gpu.stream().launch(graph);
            assertThat(Gpu.download(gpu, t)).containsExactly(4f, 8f, 12f);
        }
        assertThatThrownBy(() -> gpu.stream().capture(gpu::sync)).isInstanceOf(CudaException.class)
                .hasMessageContaining("CUDA_ERROR_STREAM_CAPTURE");
        gpu.optim().scale(t, 0.5f);
        assertThat(Gpu.download(gpu, t)).containsExactly(2f, 4f, 6f);
    }

    @Test
    void writeAndReadCheckSizes() {
        Tensor t = gpu.allocate(DType.BF16, 10);
        try (Arena a = Arena.ofConfined()) {
            assertThatThrownBy(() -> gpu.write(t, a.allocate(21))).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("host segment has 21");
            assertThatThrownBy(() -> gpu.read(t, a.allocate(19))).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("host segment has 19");
        }
        assertThat(gpu.activationDType()).isEqualTo(DType.BF16);
        assertThat(gpu.name()).isEqualTo("cuda");
    }

    private byte[] bytes(Tensor t) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(t.byteSize());
            gpu.read(t, host);
            return host.toArray(ValueLayout.JAVA_BYTE);
        }
    }
}
