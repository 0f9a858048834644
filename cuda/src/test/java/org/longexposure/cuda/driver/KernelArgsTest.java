package org.longexposure.cuda.driver;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Tensor;

class KernelArgsTest {
    @Test
    void marshalsEachValueBehindItsOwnPointer() {
        Tensor dev = new Tensor(DType.F32, Shape.of(3, 5), new DeviceStorage(0x7000_0000_1000L, 4096), 12);
        KernelArgs args = KernelArgs.of(0x7f12_3456_7890L, 17, -2.5f, Math.PI, dev, -1L,
                new DeviceStorage(0x7000_0000_2000L, 64));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = args.marshal(a);
            assertThat(args.size()).isEqualTo(7);
            assertThat(at(params, 0).get(JAVA_LONG, 0)).isEqualTo(0x7f12_3456_7890L);
            assertThat(at(params, 1).get(JAVA_INT, 0)).isEqualTo(17);
            assertThat(at(params, 2).get(JAVA_FLOAT, 0)).isEqualTo(-2.5f);
            assertThat(at(params, 3).get(JAVA_DOUBLE, 0)).isEqualTo(Math.PI);
            assertThat(at(params, 4).get(JAVA_LONG, 0)).isEqualTo(0x7000_0000_1000L + 12);
            assertThat(at(params, 5).get(JAVA_LONG, 0)).isEqualTo(-1L);
            assertThat(at(params, 6).get(JAVA_LONG, 0)).isEqualTo(0x7000_0000_2000L);
            for (int i = 0; i < 7; i++) {
                assertThat(params.getAtIndex(ADDRESS, i).address() % 8).as("slot %d aligned", i).isZero();
            }
            // distinct slots: no two parameters share storage
            assertThat(params.getAtIndex(ADDRESS, 1).address() - params.getAtIndex(ADDRESS, 0).address())
                    .isEqualTo(8);
        }
        assertThat(args.toString()).isEqualTo("(0x7f1234567890, 17, -2.5f, 3.141592653589793, 0x70000000100c, -1, "
                + "0x700000002000)");
    }

    @Test
    void rejectsHostTensorsAndUnknownTypes() {
        try (Arena a = Arena.ofConfined()) {
            Tensor host = Tensor.allocateHost(a, DType.F32, 4);
            assertThatThrownBy(() -> KernelArgs.of(1, host)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("not in device memory");
        }
        assertThatThrownBy(() -> KernelArgs.of(1, "x")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("kernel argument 1").hasMessageContaining("java.lang.String");
        assertThatThrownBy(() -> KernelArgs.of(1, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("kernel argument 1 is null");
        assertThatThrownBy(() -> KernelArgs.of((short) 3)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("java.lang.Short");
    }

    @Test
    void emptyArgumentListMarshalsToAValidArray() {
        try (Arena a = Arena.ofConfined()) {
            assertThat(KernelArgs.of().marshal(a).address()).isNotZero();
        }
    }

    private static MemorySegment at(MemorySegment params, int i) {
        return params.getAtIndex(ADDRESS, i).reinterpret(8);
    }
}
