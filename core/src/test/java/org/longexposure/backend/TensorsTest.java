package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * {@link Tensors}: element copies through {@link Backend#write}/{@link Backend#read} on views of a device-like
 * backend, with F16/BF16 rounding to nearest-even (ties checked on values exactly halfway between neighbours).
 */
class TensorsTest {
    @Test
    void floatsRoundTripThroughViewsAndHalfTypesRoundToNearestEven() {
        try (FakeDeviceBackend be = new FakeDeviceBackend(1)) {
            Tensor f = be.allocate(DType.F32, 5, 3);
            float[] v = {1.5f, -2.25f, 3e-3f};
            Tensors.copyFrom(be, f.slice(3, 1), v);
            assertThat(Tensors.toFloats(be, f.slice(3, 1))).containsExactly(v);
            assertThat(Tensors.toFloats(be, f.slice(2, 1))).containsExactly(0, 0, 0);

            // 1 + 2^-8 lies halfway between the BF16 neighbours 1 and 1 + 2^-7: ties go to the even one, 1;
            // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6
            Tensor b = be.allocate(DType.BF16, 4);
            Tensors.copyFrom(be, b, new float[]{1 + 0x1p-8f, 1 + 3 * 0x1p-8f, -0x1p-9f * 1.25f, Float.NaN});
            float[] back = Tensors.toFloats(be, b);
            assertThat(back[0]).isEqualTo(1f);
            assertThat(back[1]).isEqualTo(1 + 0x1p-6f);
            assertThat(back[2]).isEqualTo(-0x1p-9f * 1.25f); // exactly representable: unchanged
            assertThat(back[3]).isNaN();

            Tensor h = be.allocate(DType.F16, 2);
            Tensors.copyFrom(be, h, new float[]{1 + 0x1p-11f, 65504f});
            assertThat(Tensors.toFloats(be, h)).containsExactly(1f, 65504f);
        }
    }

    @Test
    void intsRoundTripAndSizesAreChecked() {
        try (FakeDeviceBackend be = new FakeDeviceBackend(1); CpuBackend cpu = new CpuBackend(1)) {
            Tensor ids = be.allocate(DType.I32, 7);
            int[] v = {3, -1, 0, 7, Integer.MAX_VALUE, Integer.MIN_VALUE, 42};
            Tensors.copyFrom(be, ids, v);
            assertThat(Tensors.toInts(be, ids)).containsExactly(v);
            assertThatThrownBy(() -> Tensors.copyFrom(be, ids, new int[6]))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("6 values");
            assertThatThrownBy(() -> Tensors.copyFrom(be, ids, new float[7]))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("float tensor");
            Tensor up = Tensors.upload(be, cpu.allocate(DType.I32, 7));
            assertThat(Tensors.toInts(be, up)).containsOnly(0);
            assertThatThrownBy(() -> cpu.write(cpu.allocate(DType.F32, 2), cpu.allocate(DType.F32, 3).host()))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("12");
        }
    }
}
