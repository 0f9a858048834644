package org.longexposure.testkit.reference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;
import org.longexposure.testkit.Rng;

/** RefGradClip: the norm is over all tensors together, and clipping scales to max_norm (up to torch's 1e-6). */
class RefGradClipTest {
    @Test
    void totalNormIsTheNormOfTheConcatenation() {
        Rng rng = new Rng(1);
        double[] a = rng.normal(7);
        double[] b = rng.normal(3);
        double s = 0;
        for (double x : a) {
            s += x * x;
        }
        for (double x : b) {
            s += x * x;
        }
        assertThat(RefGradClip.totalNorm(a, b)).isCloseTo(Math.sqrt(s), within(1e-14));
        assertThat(RefGradClip.sumOfSquares(a) + RefGradClip.sumOfSquares(b)).isCloseTo(s, within(1e-13));
    }

    @Test
    void clipsToMaxNormWhenAbove() {
        Rng rng = new Rng(2);
        double[] a = rng.normal(7, 0, 3);
        double[] b = rng.normal(5, 0, 3);
        double total = RefGradClip.clip(1.0, a, b);
        assertThat(total).isGreaterThan(1);
        assertThat(RefGradClip.totalNorm(a, b)).isCloseTo(total / (total + 1e-6), within(1e-14));
    }

    @Test
    void leavesGradientsAloneWhenBelow() {
        double[] a = {0.1, -0.2};
        double total = RefGradClip.clip(5.0, a);
        assertThat(total).isCloseTo(Math.sqrt(0.05), within(1e-15));
        assertThat(a).containsExactly(0.1, -0.2);
    }
}
