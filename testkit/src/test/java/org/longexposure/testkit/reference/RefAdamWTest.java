package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;
import org.longexposure.testkit.Rng;

/**
 * RefAdamW against AdamW written out independently the way torch's kernel phrases it (moments by lerp,
 * {@code m ← m + (1−β1)·(g − m)}, decay folded into the same update {@code p − lr·wd·p − lr·m̂/denom}) over
 * several steps, and the properties of the first step.
 */
class RefAdamWTest {
    private static final double LR = 1e-2;
    private static final double B1 = 0.9;
    private static final double B2 = 0.999;
    private static final double EPS = 1e-8;
    private static final double WD = 0.1;

    @Test
    void severalStepsMatchTheTextbookForm() {
        Rng rng = new Rng(12);
        int n = 23;
        double[] p = rng.normal(n);
        double[] m = new double[n];
        double[] v = new double[n];
        double[] p2 = p.clone();
        double[] m2 = new double[n];
        double[] v2 = new double[n];
        for (int t = 1; t <= 6; t++) {
            double[] g = rng.normal(n);
            RefAdamW.step(p, g, m, v, LR, B1, B2, EPS, WD, t);
            for (int i = 0; i < n; i++) {
                m2[i] = m2[i] + (1 - B1) * (g[i] - m2[i]);
                v2[i] = v2[i] + (1 - B2) * (g[i] * g[i] - v2[i]);
                double mHat = m2[i] / (1 - Math.pow(B1, t));
                double denom = Math.sqrt(v2[i]) / Math.sqrt(1 - Math.pow(B2, t)) + EPS;
                p2[i] = p2[i] - LR * WD * p2[i] - LR * mHat / denom;
            }
        }
        for (int i = 0; i < n; i++) {
            assertThat(p[i]).isCloseTo(p2[i], within(1e-13));
            assertThat(m[i]).isCloseTo(m2[i], within(1e-14));
            assertThat(v[i]).isCloseTo(v2[i], within(1e-14));
        }
    }

    @Test
    void firstStepMovesEachParameterByAboutLrAgainstItsGradientSign() {
        Rng rng = new Rng(2);
        double[] p = rng.normal(10);
        double[] g = rng.normal(10);
        double[] before = p.clone();
        RefAdamW.step(p, g, new double[10], new double[10], LR, B1, B2, EPS, 0, 1);
        for (int i = 0; i < 10; i++) {
            // m̂ = g and v̂ = g² on step 1, so the step is lr·g/(|g| + eps).
            assertThat(p[i] - before[i]).isCloseTo(-LR * g[i] / (Math.abs(g[i]) + EPS), within(1e-15));
        }
    }

    @Test
    void zeroGradientOnlyDecays() {
        double[] p = {1.5, -2, 0};
        RefAdamW.step(p, new double[3], new double[3], new double[3], LR, B1, B2, EPS, WD, 1);
        assertThat(p).containsExactly(1.5 * (1 - LR * WD), -2 * (1 - LR * WD), 0);
    }
}
