package org.longexposure.sparsity.mask;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.tensor.DType;

/**
 * {@link BlockLayouts}: the CSR it writes (checked element by element against the boolean grid it came from), the
 * full layout, the exact tile counts and forced tiles of random layouts, seeding, and the density measure.
 */
class BlockLayoutsTest {
    private static CpuBackend backend;

    @BeforeAll
    static void open() {
        backend = new CpuBackend(1);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    @Test
    void fromBooleansWritesAscendingCsrRows() {
        // NH = 2, T = 10, block 4: nQB = 3.
        boolean[][][] keep = new boolean[2][3][3];
        keep[0][0][0] = true;
        keep[0][2][0] = true;
        keep[0][2][2] = true;
        keep[1][1][1] = true;
        keep[1][1][0] = true;
        BlockLayout l = BlockLayouts.fromBooleans(keep, 10, 4, backend);
        assertThat(l.blockSize()).isEqualTo(4);
        assertThat(l.numHeads()).isEqualTo(2);
        assertThat(l.seqLen()).isEqualTo(10);
        assertThat(l.rowPtr().dtype()).isEqualTo(DType.I32);
        int[] rowPtr = new int[7];
        for (int i = 0; i < 7; i++) {
            rowPtr[i] = l.rowPtr().getInt(i);
        }
        assertThat(rowPtr).containsExactly(0, 1, 1, 3, 3, 5, 5);
        int[] colIdx = new int[5];
        for (int i = 0; i < 5; i++) {
            colIdx[i] = l.colIdx().getInt(i);
        }
        assertThat(colIdx).containsExactly(0, 0, 2, 0, 1);
        assertThat(BlockLayouts.toBooleans(l)).isDeepEqualTo(keep);
        assertThat(BlockLayouts.density(l)).isEqualTo(5.0 / 12);
    }

    @Test
    void fullListsEveryCausalTile() {
        BlockLayout l = BlockLayouts.full(3, 37, 5, backend);
        boolean[][][] keep = BlockLayouts.toBooleans(l);
        for (boolean[][] head : keep) {
            for (int qb = 0; qb < 8; qb++) {
                for (int kb = 0; kb < 8; kb++) {
                    assertThat(head[qb][kb]).isEqualTo(kb <= qb);
                }
            }
        }
        assertThat(BlockLayouts.density(l)).isEqualTo(1.0);
    }

    @Test
    void randomHasExactTileCountsForcedTilesAndIsSeeded() {
        int nQB = 16;
        int causal = nQB * (nQB + 1) / 2;
        for (double density : new double[] {0.05, 0.13, 0.3, 0.7}) {
            for (int flags = 0; flags < 4; flags++) {
                boolean diag = (flags & 1) != 0;
                boolean first = (flags & 2) != 0;
                BlockLayout l = BlockLayouts.random(4, 16 * 7 - 3, 7, density, 11, diag, first, backend);
                boolean[][][] keep = BlockLayouts.toBooleans(l);
                int forced = (diag ? nQB : 0) + (first ? nQB : 0) - (diag && first ? 1 : 0);
                int expected = Math.max(forced, (int) Math.round(density * causal));
                for (boolean[][] head : keep) {
                    int count = 0;
                    for (int qb = 0; qb < nQB; qb++) {
                        assertThat(head[qb][qb] || !diag).as("diagonal tile %d", qb).isTrue();
                        assertThat(head[qb][0] || !first).as("column-0 tile %d", qb).isTrue();
                        for (int kb = 0; kb < nQB; kb++) {
                            count += head[qb][kb] ? 1 : 0;
                        }
                    }
                    assertThat(count).as("tiles per head, density %s, flags %d", density, flags)
                            .isEqualTo(expected);
                }
                assertThat(BlockLayouts.density(l)).isEqualTo((double) expected / causal);
            }
        }
        boolean[][][] a = BlockLayouts.toBooleans(BlockLayouts.random(2, 50, 5, 0.3, 5, false, false, backend));
        boolean[][][] b = BlockLayouts.toBooleans(BlockLayouts.random(2, 50, 5, 0.3, 5, false, false, backend));
        boolean[][][] c = BlockLayouts.toBooleans(BlockLayouts.random(2, 50, 5, 0.3, 6, false, false, backend));
        assertThat(a).isDeepEqualTo(b);
        assertThat(a).isNotEqualTo(c);
        assertThat(a[0]).as("heads draw independently").isNotEqualTo(a[1]);
    }

    @Test
    void rejectsBadArguments() {
        boolean[][][] above = new boolean[1][2][2];
        above[0][0][1] = true;
        assertThatThrownBy(() -> BlockLayouts.fromBooleans(above, 8, 4, backend))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("keep[0][0][1]")
                .hasMessageContaining("above the diagonal");
        assertThatThrownBy(() -> BlockLayouts.fromBooleans(new boolean[1][3][3], 8, 4, backend))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("expected 2 query-block rows");
        assertThatThrownBy(() -> BlockLayouts.random(1, 8, 4, 1.5, 1, true, true, backend))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("density");
        assertThatThrownBy(() -> BlockLayouts.full(1, 8, 0, backend))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("blockSize");
    }
}
