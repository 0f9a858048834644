package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.BlockLayout;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The argument checks {@link CudaAttention} runs before it queues any kernel: head sizes without a kernel instance,
 * non-positive scales, wrong dtypes and foreign layouts are rejected with messages naming the operand and the
 * value. Host tensors stand in for device ones (no GPU needed: the checks read shapes and dtypes only).
 */
class CudaAttentionArgsTest {
    @Test
    void acceptsTheCompiledHeadSizesAndRejectsOthers() {
        try (Arena arena = Arena.ofConfined()) {
            for (int hs : new int[] {32, 64, 80, 96, 128}) {
                Tensor q = Tensor.allocateHost(arena, DType.BF16, 2, 5, 3 * hs);
                CudaAttention.Dims d = CudaAttention.Dims.of("attentionForward", q, 3, 0.1f);
                assertThat(d.HS()).isEqualTo(hs);
                assertThat(d.blocks()).isEqualTo(1);
            }
            Tensor q48 = Tensor.allocateHost(arena, DType.BF16, 2, 5, 96);
            assertThatThrownBy(() -> CudaAttention.Dims.of("attentionForward", q48, 2, 0.1f))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("HS = C / numHeads = 96 / 2 = 48").hasMessageContaining("80");
            assertThatThrownBy(() -> CudaAttention.Dims.of("attentionForward", q48, 5, 0.1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("divisor of C = 96");
        }
    }

    @Test
    void rejectsNonPositiveScaleWrongDtypesAndForeignLayouts() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor q = Tensor.allocateHost(arena, DType.BF16, 2, 130, 128);
            assertThatThrownBy(() -> CudaAttention.Dims.of("attentionForward", q, 2, 0f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("scale");
            assertThatThrownBy(() -> CudaAttention.Dims.of("attentionForward", q, 2, Float.NaN))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("scale");

            CudaAttention.Dims d = CudaAttention.Dims.of("attentionForward", q, 2, 0.125f);
            assertThat(d.blocks()).isEqualTo(3);
            Tensor f32 = Tensor.allocateHost(arena, DType.F32, 2, 130, 128);
            Tensor lse = Tensor.allocateHost(arena, DType.F32, 2, 2, 130);
            Tensor mask = Tensor.allocateHost(arena, DType.I32, 2, 130);
            assertThatThrownBy(() -> d.checkForward("attentionForward", f32, lse, q, q, mask))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("attentionForward out");
            d.checkForward("attentionForward", q, lse, q, q, mask);

            Tensor rowPtr = Tensor.allocateHost(arena, DType.I32, 2 * 5 + 1);
            Tensor colIdx = Tensor.allocateHost(arena, DType.I32, 1);
            BlockLayout by32 = new BlockLayout(32, 2, 130, rowPtr, colIdx);
            assertThatThrownBy(() -> d.checkLayout("blockSparseAttentionForward", by32))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("blockSize 64")
                    .hasMessageContaining("got blockSize 32");
            BlockLayout ok = new BlockLayout(64, 2, 130, Tensor.allocateHost(arena, DType.I32, 2 * 3 + 1), colIdx);
            d.checkLayout("blockSparseAttentionForward", ok);
        }
    }
}
