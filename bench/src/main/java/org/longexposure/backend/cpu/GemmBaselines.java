package org.longexposure.backend.cpu;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Two unblocked matrix products that {@code GemmBenchMain} times next to {@link CpuGemm}, to show what the
 * blocking buys: C (M, N) = A (M, K) · B (K, N), all F32 row-major arrays. Benchmark code only; it sits in this
 * package of the bench module because only this package may use the Vector API.
 */
public final class GemmBaselines {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private GemmBaselines() {
    }

    /** The preferred float species the kernels run with, e.g. {@code Species[float, 16, S_512_BIT]}. */
    public static String vectorSpecies() {
        return S.toString();
    }

    /** The textbook triple loop: one dot product of a row of A and a column of B per element of C. */
    public static void naiveScalar(int m, int n, int k, float[] a, float[] b, float[] c) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                float s = 0;
                for (int p = 0; p < k; p++) {
                    s += a[i * k + p] * b[p * n + j];
                }
                c[i * n + j] = s;
            }
        }
    }

    /**
     * A straightforward Vector API loop: row i of C accumulates a[i][p]·(row p of B), a vector at a time. Every
     * step loads and stores C and streams all of B per row of A, so it is bound by memory traffic, not by FMAs.
     */
    public static void naiveVector(int m, int n, int k, float[] a, float[] b, float[] c) {
        int lanes = S.length();
        int nv = n - n % lanes;
        for (int i = 0; i < m; i++) {
            Arrays.fill(c, i * n, i * n + n, 0f);
            for (int p = 0; p < k; p++) {
                FloatVector av = FloatVector.broadcast(S, a[i * k + p]);
                int bRow = p * n;
                int cRow = i * n;
                int j = 0;
                for (; j < nv; j += lanes) {
                    FloatVector cv = FloatVector.fromArray(S, c, cRow + j);
                    av.fma(FloatVector.fromArray(S, b, bRow + j), cv).intoArray(c, cRow + j);
                }
                for (; j < n; j++) {
                    c[cRow + j] += a[i * k + p] * b[bRow + j];
                }
            }
        }
    }
}
