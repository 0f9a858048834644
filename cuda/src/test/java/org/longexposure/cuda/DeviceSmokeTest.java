package org.longexposure.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaEvent;
import org.longexposure.cuda.driver.CudaFunction;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Tensor;

/** Context, memory, copies and the smoke kernels on a real GPU; skipped (with the reason) where there is none. */
@Tag("gpu")
class DeviceSmokeTest {
    private static CudaBackend be;

    @BeforeAll
    static void open() {
        be = Gpu.openOrSkip();
    }

    @AfterAll
    static void close() {
        if (be != null) {
            be.close();
        }
    }

    @Test
    void contextDescribesTheDevice() {
        CudaContext ctx = be.context();
        System.err.println("device: " + ctx + ", driver " + ctx.driverVersion() + ", " + ctx.multiprocessorCount()
                + " SMs, " + (ctx.totalMemory() >> 20) + " MiB, shared/block opt-in "
                + ctx.maxSharedMemoryPerBlockOptin() + " B, cuBLASLt " + be.gemm().library().version());
        assertThat(ctx.computeCapability()).isGreaterThanOrEqualTo(70);
        assertThat(ctx.name()).isNotBlank();
        assertThat(ctx.multiprocessorCount()).isPositive();
        long[] info = ctx.memInfo();
        assertThat(info[0]).isPositive().isLessThanOrEqualTo(info[1]);
        assertThat(info[1]).isEqualTo(ctx.totalMemory());
        assertThat(ctx.driverVersion()).isGreaterThanOrEqualTo(13000);
    }

    @Test
    void bytesSurviveARoundTripThroughStagingChunks() {
        // 2.5 staging chunks plus an odd tail: both pinned buffers are reused, the last chunk is partial
        int bytes = (int) (20L << 20) + 13;
        byte[] data = new byte[bytes];
        new SplittableRandom(1).nextBytes(data);
        try (Arena a = Arena.ofConfined()) {
            DeviceStorage s = be.arena().allocateBytes(bytes);
            Tensor t = new Tensor(DType.F32, Shape.of(bytes / 4), s, 0);
            MemorySegment src = MemorySegment.ofArray(data);
            // write then read through the tensor API (the tail beyond bytes/4·4 is checked through the raw copy)
            be.write(t, src.asSlice(0, t.byteSize()));
            MemorySegment back = a.allocate(t.byteSize());
            be.read(t, back);
            assertThat(back.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(src.asSlice(0, t.byteSize())
                    .toArray(ValueLayout.JAVA_BYTE));
            // raw stream copies: device-to-device then back, from native memory
            MemorySegment nativeSrc = a.allocate(bytes);
            MemorySegment.copy(src, 0, nativeSrc, 0, bytes);
            DeviceStorage s2 = be.arena().allocateBytes(bytes);
            CudaStream st = be.stream();
            st.copyHostToDevice(s.address(), nativeSrc);
            st.copyDeviceToDevice(s2.address(), s.address(), bytes);
            MemorySegment out = a.allocate(bytes);
            st.copyDeviceToHost(out, s2.address());
            st.sync();
            assertThat(out.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(data);
        }
    }

    @Test
    void allocationsAreZeroedAndMemsetsFill() {
        Tensor t = be.allocate(DType.F32, 3, 1001);
        assertThat(Gpu.download(be, t)).containsOnly(0f);
        be.stream().memsetD32(CudaBackend.ptr(t) + 4, Float.floatToRawIntBits(1.5f), 2999);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment raw = a.allocate(t.byteSize());
            be.stream().copyDeviceToHost(raw, CudaBackend.ptr(t));
            be.stream().sync();
            float[] direct = raw.toArray(ValueLayout.JAVA_FLOAT);
            int firstSet = -1;
            int count = 0;
            for (int i = 0; i < direct.length; i++) {
                if (direct[i] == 1.5f) {
                    count++;
                    firstSet = firstSet < 0 ? i : firstSet;
                }
            }
            assertThat(new int[] {firstSet, count}).as("first index and count of 1.5 read without staging")
                    .containsExactly(1, 2999);
        }
        float[] v = Gpu.download(be, t);
        assertThat(v[0]).isZero();
        assertThat(v[1]).isEqualTo(1.5f);
        assertThat(v[2999]).isEqualTo(1.5f);
        assertThat(v[3000]).isZero();
        be.stream().memsetD8(CudaBackend.ptr(t), (byte) 0, 8);
        assertThat(Gpu.download(be, t)[1]).isZero();
    }

    @Test
    void smokeKernelsComputeOnTheDevice() {
        int n = 1_000_003;
        SplittableRandom rnd = new SplittableRandom(3);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextDouble(-4, 4);
        }
        Tensor y = be.allocate(DType.F32, n);
        Tensor xd = Gpu.upload(be, DType.F32, x, n);
        CudaFunction fill = be.kernels().function("smoke", "fill_f32");
        CudaFunction axpy = be.kernels().function("smoke", "axpy_f32");
        CudaEvent start = be.context().createEvent();
        CudaEvent end = be.context().createEvent();
        start.record(be.stream());
        be.stream().launch(fill, 264, 1, 1, 256, 1, 1, 0, KernelArgs.of(y, 0.75f, (long) n));
        be.stream().launch(axpy, 264, 1, 1, 256, 1, 1, 0, KernelArgs.of(y, xd, -2f, (long) n));
        end.record(be.stream());
        float[] got = Gpu.download(be, y);
        for (int i = 0; i < n; i++) {
            assertThat(got[i]).as("y[%d]", i).isEqualTo(Math.fma(-2f, x[i], 0.75f));
        }
        assertThat(end.elapsedMillisSince(start)).isPositive();
        start.close();
        end.close();
    }

    @Test
    void doubleIntAndLongArgumentsReachTheKernel() {
        int rows = 5;
        int cols = 37;
        long ld = 41;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment in = a.allocate(8L * rows * ld);
            MemorySegment factor = a.allocate(8L * rows);
            for (int i = 0; i < rows * ld; i++) {
                in.setAtIndex(ValueLayout.JAVA_DOUBLE, i, i * 0.5);
            }
            for (int r = 0; r < rows; r++) {
                factor.setAtIndex(ValueLayout.JAVA_DOUBLE, r, r - 1.25);
            }
            DeviceStorage din = be.arena().allocateBytes(in.byteSize());
            DeviceStorage dout = be.arena().allocateBytes(in.byteSize());
            DeviceStorage dfac = be.arena().allocateBytes(factor.byteSize());
            be.stream().copyHostToDevice(din.address(), in);
            be.stream().copyHostToDevice(dfac.address(), factor);
            be.stream().launch(be.kernels().function("smoke", "scale_rows_f64"), 1, rows, 1, 32, 1, 1, 0,
                    KernelArgs.of(dout, din, dfac, 1e-3, rows, cols, ld));
            MemorySegment out = a.allocate(in.byteSize());
            be.stream().copyDeviceToHost(out, dout.address());
            be.stream().sync();
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < ld; c++) {
                    double want = c < cols ? (r - 1.25) * ((r * ld + c) * 0.5) + 1e-3 : 0;
                    assertThat(out.getAtIndex(ValueLayout.JAVA_DOUBLE, r * ld + c)).as("(%d,%d)", r, c)
                            .isEqualTo(want);
                }
            }
        }
    }

    @Test
    void driverErrorsNameTheCallAndTheError() {
        assertThatThrownBy(() -> be.context().memAlloc(1L << 50)).isInstanceOf(CudaException.class)
                .hasMessageStartingWith("cuMemAlloc_v2(" + (1L << 50) + " bytes): CUDA_ERROR_OUT_OF_MEMORY");
        assertThatThrownBy(() -> be.kernels().function("smoke", "no_such_kernel")).isInstanceOf(CudaException.class)
                .hasMessageContaining("cuModuleGetFunction(no_such_kernel): CUDA_ERROR_NOT_FOUND");
    }
}
