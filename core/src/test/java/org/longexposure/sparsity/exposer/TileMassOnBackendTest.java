package org.longexposure.sparsity.exposer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.reference.RefAttention;

/**
 * {@code PredictOps.attentionTileMass} on the CPU (through {@link TileMass.OnBackend}, the form the predictor fit,
 * refresh and the Exposer use) against {@link TileMass#perSequence}, the float64 definition: bit for bit, on a
 * partial last block, padded tokens (a whole padded block in one sequence) and 3 heads of an odd width, with a
 * consistent log-sum-exp (each real query row's masses then add up to 1), twice through the same buffers with a
 * smaller micro-batch second. Bad operands name the op and the operand.
 */
class TileMassOnBackendTest {
    @Test
    void theBackendsMassesAreTheFloat64Definition() {
        try (CpuBackend be = new CpuBackend(2)) {
            TileMass.OnBackend onBackend = new TileMass.OnBackend(be);
            for (int[] dims : new int[][] {{3, 70, 3, 5, 16}, {2, 33, 2, 4, 8}}) {
                int bsz = dims[0];
                int t = dims[1];
                int nh = dims[2];
                int hs = dims[3];
                int block = dims[4];
                SplittableRandom rng = new SplittableRandom(t);
                int c = nh * hs;
                float[] q = new float[bsz * t * c];
                float[] k = new float[bsz * t * c];
                for (int i = 0; i < q.length; i++) {
                    q[i] = (float) rng.nextDouble(-2, 2);
                    k[i] = (float) rng.nextDouble(-2, 2);
                }
                int[] mask = new int[bsz * t];
                for (int b = 0; b < bsz; b++) {
                    for (int i = 0; i < t; i++) {
                        mask[b * t + i] = i < t - 20 * b ? 1 : 0;
                    }
                }
                float[] lse = logSumExp(q, k, mask, bsz, t, nh, hs);
                double[][][][] expect = TileMass.perSequence(q, k, lse, mask, bsz, t, nh, hs, block);
                double[][][][] got = onBackend.perSequence(f32(be, q, (long) bsz * t, c), f32(be, k, bsz, t, c),
                        f32(be, lse, bsz, nh, t), mask, bsz, t, nh, block);
                assertThat(got).isDeepEqualTo(expect);
                double rowSum = 0;
                for (double m : got[0][nh - 1][1]) {
                    rowSum += m;
                }
                assertThat(rowSum).isCloseTo(block, org.assertj.core.data.Offset.offset(1e-5));   // lse rounded to float
            }
        }
    }

    @Test
    void badOperandsNameTheOpAndTheOperand() {
        try (CpuBackend be = new CpuBackend(1)) {
            Tensor q = be.allocate(DType.F32, 2 * 10, 8);
            Tensor mass = be.allocate(DType.F64, 2 * 2 * 3 * 3);
            Tensor mask = be.allocate(DType.I32, 20);
            assertThatThrownBy(() -> be.predict().attentionTileMass(mass, q, q, be.allocate(DType.F32, 2, 2, 9),
                    mask, 2, 10, 2, 4)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("attentionTileMass").hasMessageContaining("lse");
            assertThatThrownBy(() -> be.predict().attentionTileMass(mass, q, q, be.allocate(DType.F32, 2, 3, 10),
                    mask, 2, 10, 3, 4)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("numHeads = 3");
        }
    }

    /** lse (B, NH, T) of the float64 reference attention on these q and k, rounded to float. */
    static float[] logSumExp(float[] q, float[] k, int[] mask, int bsz, int t, int nh, int hs) {
        double[] qd = new double[q.length];
        double[] kd = new double[k.length];
        for (int i = 0; i < q.length; i++) {
            qd[i] = q[i];
            kd[i] = k[i];
        }
        double[] lse = new double[bsz * nh * t];
        RefAttention.forward(new double[q.length], lse, qd, kd, new double[q.length], mask, bsz, t, nh, hs,
                1.0 / Math.sqrt(hs));
        float[] out = new float[lse.length];
        for (int i = 0; i < lse.length; i++) {
            out[i] = (float) lse[i];
        }
        return out;
    }

    private static Tensor f32(CpuBackend be, float[] v, long... dims) {
        return be.allocate(DType.F32, dims).copyFrom(v);
    }
}
