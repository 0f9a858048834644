package org.longexposure.sparsity.mask;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.tensor.Tensor;

/**
 * NeuronLayouts: the CSR structure of full, random and explicit layouts (rowPtr, ascending block ids, maxBlocks),
 * seeded reproducibility, the density definition (counted by hand here, partial last block and short last token
 * block included) and the argument checks.
 */
class NeuronLayoutsTest {
    @Test
    void fullListsEveryBlockForEveryTokenBlock() {
        try (CpuBackend backend = new CpuBackend(1)) {
            NeuronLayout l = NeuronLayouts.full(10, 4, 20, 8, backend); // 3 token blocks, 3 neuron blocks
            assertThat(l.numTokenBlocks()).isEqualTo(3);
            assertThat(l.maxBlocks()).isEqualTo(3);
            assertThat(ints(l.rowPtr())).containsExactly(0, 3, 6, 9);
            assertThat(ints(l.blockIdx())).containsExactly(0, 1, 2, 0, 1, 2, 0, 1, 2);
            assertThat(NeuronLayouts.density(l, 20)).isEqualTo(1.0);
        }
    }

    @ParameterizedTest
    @CsvSource({"71, 7, 200, 8, 0.25, 6", "512, 512, 4096, 128, 0.13, 4", "30, 30, 50, 32, 0.05, 1",
            "9, 2, 16, 4, 0.0, 0"})
    void randomListsTheRoundedCountOfDistinctAscendingBlocks(int rows, int tokenBlock, int ffn, int bn,
                                                            double density, int expectedCount) {
        try (CpuBackend backend = new CpuBackend(1)) {
            NeuronLayout l = NeuronLayouts.random(rows, tokenBlock, ffn, bn, density, 17, backend);
            NeuronLayout again = NeuronLayouts.random(rows, tokenBlock, ffn, bn, density, 17, backend);
            NeuronLayout other = NeuronLayouts.random(rows, tokenBlock, ffn, bn, density, 18, backend);
            int nb = NeuronLayouts.blockCount(ffn, bn);
            int[] ptr = ints(l.rowPtr());
            int[] idx = ints(l.blockIdx());
            assertThat(l.maxBlocks()).isEqualTo(expectedCount);
            for (int r = 0; r < l.numTokenBlocks(); r++) {
                assertThat(ptr[r + 1] - ptr[r]).isEqualTo(expectedCount);
                for (int e = ptr[r]; e < ptr[r + 1]; e++) {
                    assertThat(idx[e]).isBetween(0, nb - 1);
                    if (e > ptr[r]) {
                        assertThat(idx[e]).isGreaterThan(idx[e - 1]);
                    }
                }
            }
            assertThat(ints(again.blockIdx())).containsExactly(idx);
            if (expectedCount > 0 && nb >= 8) { // two seeds could draw the same few blocks
                assertThat(ints(other.blockIdx())).isNotEqualTo(idx);
            }
        }
    }

    @Test
    void fromBooleansAndDensityCountRealNeuronsAndRows() {
        try (CpuBackend backend = new CpuBackend(1)) {
            // 10 rows in token blocks of 4 (4, 4, 2); H = 20 in blocks of 8 (8, 8, 4).
            boolean[][] keep = {{true, false, true}, {false, false, false}, {false, true, false}};
            NeuronLayout l = NeuronLayouts.fromBooleans(keep, 10, 4, 20, 8, backend);
            assertThat(ints(l.rowPtr())).containsExactly(0, 2, 2, 3);
            assertThat(ints(l.blockIdx())).containsExactly(0, 2, 1);
            assertThat(l.maxBlocks()).isEqualTo(2);
            // (4 rows · 12 neurons + 0 + 2 rows · 8 neurons) / (10 · 20)
            assertThat(NeuronLayouts.density(l, 20)).isEqualTo((4 * 12 + 2 * 8) / 200.0);

            NeuronLayout empty = NeuronLayouts.fromBooleans(new boolean[1][3], 3, 3, 20, 8, backend);
            assertThat(empty.maxBlocks()).isZero();
            assertThat(empty.blockIdx().numel()).isEqualTo(1);
            assertThat(NeuronLayouts.density(empty, 20)).isZero();
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (CpuBackend backend = new CpuBackend(1)) {
            assertThatThrownBy(() -> NeuronLayouts.random(8, 4, 16, 4, 1.5, 1, backend))
                    .hasMessageContaining("density must be in [0, 1], got 1.5");
            assertThatThrownBy(() -> NeuronLayouts.full(8, 0, 16, 4, backend))
                    .hasMessageContaining("tokenBlock must be >= 1, got 0");
            assertThatThrownBy(() -> NeuronLayouts.fromBooleans(new boolean[3][4], 8, 4, 16, 4, backend))
                    .hasMessageContaining("8 rows in blocks of 4 give 2, got 3");
            assertThatThrownBy(() -> NeuronLayouts.fromBooleans(new boolean[2][5], 8, 4, 16, 4, backend))
                    .hasMessageContaining("row 0").hasMessageContaining("give 4, got 5");
            NeuronLayout l = NeuronLayouts.full(8, 4, 16, 4, backend);
            assertThatThrownBy(() -> NeuronLayouts.density(l, 12)).hasMessageContaining("out of range");
        }
    }

    private static int[] ints(Tensor t) {
        int[] a = new int[Math.toIntExact(t.numel())];
        for (int i = 0; i < a.length; i++) {
            a[i] = t.getInt(i);
        }
        return a;
    }
}
