package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The backend-independent argument checks every backend's ops share: each rejects a bad operand with a message naming
 * the op, the operand and what was expected, and lets a good one through with the sizes it derives. Awkward sizes
 * (5, 7, 3) throughout.
 */
class OpShapesTest {
    @Test
    void dtypeNamesTheOperandAndTheDTypesAllowed() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor bf = Tensor.allocateHost(arena, DType.BF16, 5, 7);
            assertThat(OpShapes.dtype("op", "x", bf, DType.BF16)).isSameAs(bf);
            assertThat(OpShapes.dtype("op", "x", bf, DType.F32, DType.BF16)).isSameAs(bf);
            assertThatThrownBy(() -> OpShapes.dtype("op", "x", null, DType.F32))
                    .isInstanceOf(IllegalArgumentException.class).hasMessage("op: x must not be null");
            assertThatThrownBy(() -> OpShapes.dtype("op", "x", bf, DType.F32))
                    .isInstanceOf(IllegalArgumentException.class).hasMessage("op: x must be f32, got bf16[5, 7]");
            assertThatThrownBy(() -> OpShapes.dtype("op", "x", bf, DType.F32, DType.I32))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("op: x must be one of [f32, i32], got bf16[5, 7]");
        }
    }

    @Test
    void sizesAreCheckedAgainstWhatTheOpExpects() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.allocateHost(arena, DType.F32, 5, 7);
            Tensor b = Tensor.allocateHost(arena, DType.F32, 7, 5);
            Tensor scalar = Tensor.allocateHost(arena, DType.F32);
            OpShapes.sameShape("op", "a", a, "a", a);
            assertThatThrownBy(() -> OpShapes.sameShape("op", "b", b, "a", a))
                    .hasMessage("op: b has shape [7, 5] but a has shape [5, 7]; they must match");
            OpShapes.numel("op", "a", a, 35, "(M, C)");
            assertThatThrownBy(() -> OpShapes.numel("op", "a", a, 36, "(M, C)"))
                    .hasMessage("op: a has shape [5, 7] but must hold 36 elements: (M, C)");
            assertThat(OpShapes.lastDim("op", "a", a)).isEqualTo(7);
            assertThatThrownBy(() -> OpShapes.lastDim("op", "s", scalar))
                    .hasMessage("op: s must have at least one dimension, got []");
            assertThat(OpShapes.toInt("op", "rows", 5L)).isEqualTo(5);
            assertThatThrownBy(() -> OpShapes.toInt("op", "rows", 1L << 31))
                    .hasMessage("op: rows = 2147483648 exceeds 2147483647");
            OpShapes.positive("op", "block", 1);
            assertThatThrownBy(() -> OpShapes.positive("op", "block", 0)).hasMessage("op: block must be >= 1, got 0");
        }
    }

    @Test
    void linearOperandsGiveMNKOrANamedMismatch() {
        try (Arena arena = Arena.ofConfined()) {
            // y (M, N) = x (M, K) · Wᵀ, W (N, K) with M = 2·3 rows over leading dims, N = 5, K = 7
            Tensor y = Tensor.allocateHost(arena, DType.F32, 2, 3, 5);
            Tensor x = Tensor.allocateHost(arena, DType.F32, 6, 7);
            Tensor w = Tensor.allocateHost(arena, DType.BF16, 5, 7);
            assertThat(OpShapes.linear("lin", y, x, w, DType.F32)).isEqualTo(new OpShapes.LinearDims(6, 5, 7));
            assertThatThrownBy(() -> OpShapes.linear("lin", y, x, Tensor.allocateHost(arena, DType.F32, 35),
                    DType.F32)).hasMessage("lin: weight must be 2-D (N, K), got [35]");
            Tensor xShort = Tensor.allocateHost(arena, DType.F32, 5, 7);
            assertThatThrownBy(() -> OpShapes.linear("lin", y, xShort, w, DType.F32))
                    .hasMessage("lin: shapes do not match: out/dOut [2, 3, 5], inp/dInp [5, 7], weight [5, 7]"
                            + " (expected (M, N), (M, K), (N, K))");
            assertThatThrownBy(() -> OpShapes.linear("lin", y, x, w, DType.BF16))
                    .hasMessage("lin (M, N) operand: expected dtype bf16, got f32");

            // backward weight: dOut (M, N), inp (M, K)
            assertThat(OpShapes.linearBackwardWeight(y, x, DType.F32)).isEqualTo(new OpShapes.LinearDims(6, 5, 7));
            assertThatThrownBy(() -> OpShapes.linearBackwardWeight(y, xShort, DType.F32))
                    .hasMessage("linearBackwardWeight: dOut [2, 3, 5] and inp [5, 7] have different row counts");
            assertThatThrownBy(() -> OpShapes.linearBackwardWeight(w, xShort, DType.F32))
                    .hasMessage("linearBackwardWeight dOut: expected dtype f32, got bf16");
        }
    }

    @Test
    void embeddingAndLossShapes() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor table = Tensor.allocateHost(arena, DType.F32, 11, 7);
            Tensor ids = Tensor.allocateHost(arena, DType.I32, 3, 5);
            OpShapes.embeddingTable("emb", "table", table);
            assertThatThrownBy(() -> OpShapes.embeddingTable("emb", "table", ids.view(15)))
                    .hasMessage("emb: table must be (V, C), got shape [15]");
            OpShapes.embeddingRows("emb", "out", Tensor.allocateHost(arena, DType.F32, 3, 5, 7), ids, 15, 7);
            assertThatThrownBy(() -> OpShapes.embeddingRows("emb", "out", table, ids, 15, 7))
                    .hasMessage("emb: out has shape [11, 7], expected (N, C) = [15, 7] from ids [3, 5] and the"
                            + " table's (V, C)");

            assertThat(OpShapes.vocab("ce", "logits", table)).isEqualTo(7);
            assertThatThrownBy(() -> OpShapes.vocab("ce", "logits", Tensor.allocateHost(arena, DType.F32, 3, 0)))
                    .hasMessage("ce: logits has shape [3, 0]; the vocabulary (last) dimension must be >= 1");
        }
    }
}
