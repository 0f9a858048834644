package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link CudaSparse}'s choice between the direct kernels and gather + cuBLASLt, a rule on host-known values only:
 * direct iff min(tokenBlock, N) is under {@link CudaOptions#sparseMlpGemmRows()} and the direct kernels support
 * the layout (token block a multiple of 64, neuron block 64 or 128). No GPU needed.
 */
class CudaSparsePathRuleTest {
    private static final int RULE = CudaOptions.DEFAULT_SPARSE_MLP_GEMM_ROWS;

    @Test
    void smallSupportedTokenBlocksRunDirectLargeOnesGather() {
        assertThat(CudaSparse.useDirect(128, 128, 4096, RULE)).isTrue();
        assertThat(CudaSparse.useDirect(64, 64, 333, RULE)).isTrue();
        assertThat(CudaSparse.useDirect(RULE - 64, 128, 4096, RULE)).isTrue();
        assertThat(CudaSparse.useDirect(RULE, 128, 4096, RULE)).isFalse();
        // one token block of the whole micro-batch: its rows decide
        assertThat(CudaSparse.useDirect(4096, 128, 4096, RULE)).isFalse();
        assertThat(CudaSparse.useDirect(4096, 128, 200, RULE)).isTrue();
        assertThat(CudaSparse.useDirect(4096, 128, RULE, RULE)).isFalse();
    }

    @Test
    void layoutsTheDirectKernelsCannotRunAlwaysGather() {
        assertThat(CudaSparse.directSupports(100, 128)).isFalse();
        assertThat(CudaSparse.directSupports(192, 32)).isFalse();
        assertThat(CudaSparse.directSupports(192, 64)).isTrue();
        assertThat(CudaSparse.useDirect(100, 128, 4096, Integer.MAX_VALUE)).isFalse();
        assertThat(CudaSparse.useDirect(128, 32, 4096, Integer.MAX_VALUE)).isFalse();
        assertThat(CudaSparse.useDirect(128, 128, 4096, 0)).isFalse();
    }

    @Test
    void optionsCarryTheThresholdAndRejectNegatives() {
        CudaOptions o = CudaOptions.defaults();
        assertThat(o.sparseMlpGemmRows()).isEqualTo(RULE);
        assertThat(o.withSparseMlpGemmRows(0).sparseMlpGemmRows()).isZero();
        assertThat(o.withSparseMlpGemmRows(0).withDevice(1).sparseMlpGemmRows()).isZero();
        assertThatThrownBy(() -> new CudaOptions(0, List.of(), null, List.of(), true, -1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("sparseMlpGemmRows");
    }
}
