package org.longexposure.testkit.reference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * Proves {@link RefAttention}: the forward against closed forms on a tiny case, the backward against central
 * differences of {@code L = Σ out·W} in float64 on awkward shapes with padding (including sequences whose first key
 * is padding, so that some query rows see no key at all).
 */
class RefAttentionTest {
    private static final int B = 2;
    private static final int NH = 3;
    private static final int HS = 5;
    private static final int C = NH * HS;

    @ParameterizedTest
    @ValueSource(ints = {5, 6, 7, 8, 9})
    void backwardMatchesCentralDifferences(int T) {
        SplittableRandom rnd = new SplittableRandom(1000 + T);
        int n = B * T * C;
        double[] q = gaussian(rnd, n, 1.5);
        double[] k = gaussian(rnd, n, 1.5);
        double[] v = gaussian(rnd, n, 1.0);
        double[] w = gaussian(rnd, n, 1.0);
        double scale = 1 / Math.sqrt(HS);
        // Sequence 0: right padding plus a hole; sequence 1: first key padding (rows 0.. before the next real key
        // see nothing) plus a hole.
        int[] keyMask = new int[B * T];
        for (int t = 0; t < T; t++) {
            keyMask[t] = t < T - 2 && t != 2 ? 1 : 0;
            keyMask[T + t] = t >= 2 && t != T - 2 ? 1 : 0;
        }

        double[] dQ = new double[n];
        double[] dK = new double[n];
        double[] dV = new double[n];
        RefAttention.backward(dQ, dK, dV, w, q, k, v, keyMask, B, T, NH, HS, scale);

        DoubleSupplier loss = () -> {
            double[] out = new double[n];
            RefAttention.forward(out, new double[B * NH * T], q, k, v, keyMask, B, T, NH, HS, scale);
            double s = 0;
            for (int i = 0; i < n; i++) {
                s += out[i] * w[i];
            }
            return s;
        };
        assertClose("dQ", dQ, centralDifferences(q, loss));
        assertClose("dK", dK, centralDifferences(k, loss));
        assertClose("dV", dV, centralDifferences(v, loss));

        // Rows 0 and 1 of sequence 1 see no key: zero output, lse = -inf, zero dQ. Padded keys get zero dK, dV.
        double[] out = new double[n];
        double[] lse = new double[B * NH * T];
        RefAttention.forward(out, lse, q, k, v, keyMask, B, T, NH, HS, scale);
        for (int h = 0; h < NH; h++) {
            for (int i = 0; i < 2; i++) {
                assertEquals(Double.NEGATIVE_INFINITY, lse[(NH + h) * T + i]);
                for (int d = 0; d < HS; d++) {
                    int at = (T + i) * C + h * HS + d;
                    assertEquals(0.0, out[at]);
                    assertEquals(0.0, dQ[at]);
                }
            }
        }
        for (int bt = 0; bt < B * T; bt++) {
            if (keyMask[bt] == 0) {
                for (int c = 0; c < C; c++) {
                    assertEquals(0.0, dK[bt * C + c]);
                    assertEquals(0.0, dV[bt * C + c]);
                }
            }
        }
    }

    /** NH = 2 heads of size 1, T = 3: every output is a one- or two-term softmax written out by hand. */
    @Test
    void forwardMatchesClosedForms() {
        int t = 3;
        int nh = 2;
        double scale = 0.7;
        double[] q = {0.3, -1.1, 0.8, 0.4, -0.5, 1.6, 1.2, 0.1, -0.7, 0.9, 0.2, -0.3};
        double[] k = {1.4, 0.6, -0.9, 0.5, 0.7, -1.3, -0.2, 1.1, 0.8, 0.3, -1.5, 0.9};
        double[] v = {2.0, -1.0, 0.5, 3.0, -2.5, 1.5, 0.25, 0.75, -1.25, 2.25, 4.0, -3.0};
        int[] keyMask = {1, 0, 1, 0, 1, 1};
        double[] out = new double[12];
        double[] lse = new double[2 * nh * t];
        RefAttention.forward(out, lse, q, k, v, keyMask, 2, t, nh, 1, scale);
        for (int h = 0; h < nh; h++) {
            // Sequence 0, mask [1, 0, 1]: rows 0 and 1 see key 0 only; row 2 sees keys 0 and 2.
            double s00 = scale * q[h] * k[h];
            double s10 = scale * q[nh + h] * k[h];
            double s20 = scale * q[2 * nh + h] * k[h];
            double s22 = scale * q[2 * nh + h] * k[2 * nh + h];
            assertEquals(v[h], out[h], 1e-15);
            assertEquals(s00, lse[h * t], 1e-15);
            assertEquals(v[h], out[nh + h], 1e-15);
            assertEquals(s10, lse[h * t + 1], 1e-15);
            double z = Math.exp(s20) + Math.exp(s22);
            assertEquals((Math.exp(s20) * v[h] + Math.exp(s22) * v[2 * nh + h]) / z, out[2 * nh + h], 1e-14);
            assertEquals(Math.log(z), lse[h * t + 2], 1e-14);
            // Sequence 1, mask [0, 1, 1]: row 0 sees nothing; row 1 sees key 1; row 2 sees keys 1 and 2.
            int o = 3 * nh;
            assertEquals(0.0, out[o + h]);
            assertEquals(Double.NEGATIVE_INFINITY, lse[(nh + h) * t]);
            assertEquals(v[o + nh + h], out[o + nh + h], 1e-15);
            assertEquals(scale * q[o + nh + h] * k[o + nh + h], lse[(nh + h) * t + 1], 1e-15);
            double a = scale * q[o + 2 * nh + h] * k[o + nh + h];
            double c = scale * q[o + 2 * nh + h] * k[o + 2 * nh + h];
            double z1 = Math.exp(a) + Math.exp(c);
            assertEquals((Math.exp(a) * v[o + nh + h] + Math.exp(c) * v[o + 2 * nh + h]) / z1, out[o + 2 * nh + h],
                    1e-14);
            assertEquals(Math.log(z1), lse[(nh + h) * t + 2], 1e-14);
        }
    }

    @Test
    void rejectsWrongLengthsNamingTheArgument() {
        double[] x = new double[2 * 3 * 4];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> RefAttention.forward(
                x, new double[2 * 2 * 3 - 1], x, x, x, new int[6], 2, 3, 2, 2, 1.0));
        assertTrue(e.getMessage().startsWith("lse"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> RefAttention.backward(
                x, x, x, x, x, x, x, new int[5], 2, 3, 2, 2, 1.0));
        assertTrue(e.getMessage().startsWith("keyMask"), e.getMessage());
    }

    /** ∂L/∂x_i ≈ (L(x + h·e_i) − L(x − h·e_i)) / 2h, perturbing {@code x} in place and restoring it. */
    private static double[] centralDifferences(double[] x, DoubleSupplier loss) {
        double h = 1e-5;
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double x0 = x[i];
            x[i] = x0 + h;
            double plus = loss.getAsDouble();
            x[i] = x0 - h;
            double minus = loss.getAsDouble();
            x[i] = x0;
            g[i] = (plus - minus) / (2 * h);
        }
        return g;
    }

    /** Fails with the worst index unless {@code |a − e| ≤ 1e-7 + 1e-6·|e|} everywhere. */
    private static void assertClose(String what, double[] actual, double[] expected) {
        double atol = 1e-7;
        double rtol = 1e-6;
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < actual.length; i++) {
            double excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
            if (!(excess <= worstExcess)) {
                worst = i;
                worstExcess = excess;
            }
        }
        if (worst >= 0) {
            fail(what + ": analytic vs central differences differ beyond atol=" + atol + ", rtol=" + rtol
                    + " at index " + worst + ": " + actual[worst] + " vs " + expected[worst]);
        }
    }

    private static double[] gaussian(SplittableRandom rnd, int n, double std) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            // Box-Muller: two uniforms give one standard normal.
            a[i] = std * Math.sqrt(-2 * Math.log(1 - rnd.nextDouble())) * Math.cos(2 * Math.PI * rnd.nextDouble());
        }
        return a;
    }
}
