package org.longexposure.testkit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/** The shared closeness check: its boundary, its failure message, and the tolerance table's lookups. */
class TensorAssertTest {
    private static final Tolerances.Tol TOL = new Tolerances.Tol(1e-3, 1e-2);

    @Test
    void acceptsErrorsWithinAtolPlusRtolTimesRef() {
        double[] ref = {0, 1, -100, 5};
        // allowances: 1e-3, 1.1e-2, 1.001, 5.1e-2; each x sits just inside.
        float[] x = {0.0009f, 1.0109f, -100.99f, 4.9495f};
        assertThatCode(() -> TensorAssert.assertClose("op", TOL, x, ref, 2, 2)).doesNotThrowAnyException();
    }

    @Test
    void failureNamesOpShapeWorstIndexAndPairs() {
        double[] ref = {0, 1, 2, 3, 4, 5};
        float[] x = {0, 1, 2.5f, 3, 4, 5.001f};
        assertThatThrownBy(() -> TensorAssert.assertClose("layernorm", Tolerances.Kind.GRAD, x, ref, 2, 3))
                .isInstanceOf(AssertionError.class)
                .hasMessageContaining("layernorm GRAD F32")
                .hasMessageContaining("shape [2, 3]")
                .hasMessageContaining("max abs err 0.500000000 at [0, 2]")
                .hasMessageContaining("x=2.50000000 ref=2.00000000");
    }

    @Test
    void nanFailsUnlessBothAreNan() {
        assertThatThrownBy(() -> TensorAssert.assertClose("op", TOL, new float[] {Float.NaN}, new double[] {1}))
                .isInstanceOf(AssertionError.class);
        assertThatCode(() -> TensorAssert.assertClose("op", TOL, new float[] {Float.NaN},
                new double[] {Double.NaN})).doesNotThrowAnyException();
    }

    @Test
    void infinitiesMustMatchExactly() {
        assertThatThrownBy(() -> TensorAssert.assertClose("op", TOL, new float[] {5f},
                new double[] {Double.NEGATIVE_INFINITY})).isInstanceOf(AssertionError.class);
        assertThatThrownBy(() -> TensorAssert.assertClose("op", TOL, new float[] {Float.POSITIVE_INFINITY},
                new double[] {1e30})).isInstanceOf(AssertionError.class);
        assertThatCode(() -> TensorAssert.assertClose("op", TOL, new float[] {Float.NEGATIVE_INFINITY},
                new double[] {Double.NEGATIVE_INFINITY})).doesNotThrowAnyException();
    }

    @Test
    void relativeNormAndBitIdentity() {
        assertThat(TensorAssert.relativeNorm(new float[] {3, 4}, new double[] {3, 4.5}))
                .isCloseTo(0.5 / Math.sqrt(9 + 20.25), within(1e-15));
        assertThatThrownBy(() -> TensorAssert.assertBitIdentical("x", new float[] {0f}, new float[] {-0f}))
                .isInstanceOf(AssertionError.class).hasMessageContaining("element 0");
    }

    @Test
    void missingRowsFailListingTheKnownOnes() {
        assertThat(Tolerances.of("layernorm", Tolerances.Kind.FORWARD).rtol()).isPositive();
        assertThatThrownBy(() -> Tolerances.of("nosuchop", Tolerances.Kind.FORWARD))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("layernorm/GRAD");
        assertThatThrownBy(() -> Tolerances.of("layernorm", Tolerances.Kind.FORWARD, Tolerances.Precision.BF16))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("BF16");
    }
}
