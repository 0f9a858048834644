package org.longexposure.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Shape arithmetic, including the empty-last-dimension case (a compacted hidden state with no listed blocks). */
class ShapeTest {
    @Test
    void rowsIsTheProductOfAllButTheLastDimension() {
        assertThat(Shape.of().rows()).isEqualTo(1);
        assertThat(Shape.of(7).rows()).isEqualTo(1);
        assertThat(Shape.of(3, 5).rows()).isEqualTo(3);
        assertThat(Shape.of(2, 3, 5).rows()).isEqualTo(6);
        assertThat(Shape.of(13, 0).rows()).isEqualTo(13);
        assertThat(Shape.of(13, 0).numel()).isZero();
    }
}
