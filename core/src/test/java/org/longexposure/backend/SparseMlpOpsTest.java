package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.half;
import static org.longexposure.backend.HostTensors.i32;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.longexposure.backend.cpu.CpuActivation;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.backend.cpu.CpuGemm;
import org.longexposure.backend.cpu.CpuLinear;
import org.longexposure.backend.cpu.CpuSparseMlp;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.sparsity.mask.NeuronLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;
import org.longexposure.testkit.reference.RefSparseMlp;

/**
 * CpuSparseMlp: with a full layout it equals the dense fc1 → ReLU → fc2 path of CpuLinear and CpuActivation; on
 * random layouts (densities, token blocks, neuron blocks incl. a partial last one, F32/F16/BF16 weights, with and
 * without biases) it matches the float64 RefSparseMlp; it gives the same bits on 1 and 3 threads; it rejects
 * malformed layouts with a message naming the entry; it zeroes the unused compacted columns, never reads them, and
 * leaves the bias gradient of unlisted neurons untouched.
 */
class SparseMlpOpsTest {
    /** Two float32 results of the same math, rounded differently at most: the brief's float32 rounding bound. */
    private static final Tolerances.Tol F32_ROUNDING = new Tolerances.Tol(1e-5, 1e-4);
    /** Against float64: two chained K-term float dot products, each within the linear rows. */
    private static final Tolerances.Tol LINEAR_FORWARD = Tolerances.of("linear", FORWARD);
    private static final Tolerances.Tol LINEAR_GRAD = Tolerances.of("linear", GRAD);

    // --- (a) the full layout is the dense MLP

    @ParameterizedTest
    @CsvSource({
            "71, 37, 200, 32, 71, F32, true, 2",     // one token block; last neuron block of 8
            "71, 37, 200, 8, 7, F16, true, 1",       // 11 token blocks, the last of 1 row
            "130, 48, 96, 16, 64, BF16, false, 3",   // no biases
            "19, 20, 45, 1, 19, F32, true, 2"})      // BN = 1
    void fullLayoutEqualsTheDensePath(int n, int c, int h, int bn, int tokenBlock, DType wt, boolean bias,
                                      int threads) {
        Rng rng = new Rng(n * 1000L + h * 10L + bn);
        Data d = Data.random(rng, n, c, h, bias);
        try (Arena arena = Arena.ofShared(); CpuThreads pool = new CpuThreads(threads);
             CpuBackend layouts = new CpuBackend(1)) {
            CpuGemm gemm = new CpuGemm(pool);
            CpuLinear lin = new CpuLinear(pool, gemm);
            CpuActivation actOps = new CpuActivation(pool);
            Operands o = d.operands(arena, wt);

            // Dense: pre = fc1(x), act = relu(pre), out = fc2(act); dAct = dOut·W2, dPre = dAct ⊙ (act > 0),
            // dInp = dPre·W1, dB1 = Σ dPre, dB2 = Σ dOut.
            Tensor pre = zeros(arena, n, h);
            lin.linearForward(pre, o.x, o.w1, o.b1);
            Tensor act = zeros(arena, n, h);
            actOps.activationForward(act, pre, Activation.RELU);
            Tensor denseOut = zeros(arena, n, c);
            lin.linearForward(denseOut, act, o.w2, o.b2);
            Tensor dAct = zeros(arena, n, h);
            lin.linearBackwardInput(dAct, o.dOut, o.w2, 1f, false);
            Tensor dPre = zeros(arena, n, h);
            actOps.activationBackward(dPre, dAct, act, Activation.RELU);
            Tensor denseDInp = zeros(arena, n, c);
            lin.linearBackwardInput(denseDInp, dPre, o.w1, 1f, false);
            Tensor denseDB1 = f32(arena, d.dB1Prior, h);
            Tensor denseDB2 = f32(arena, d.dB2Prior, c);
            lin.linearBackwardWeight(null, denseDB1, dPre, act, 1f);
            lin.linearBackwardWeight(null, denseDB2, o.dOut, act, 1f);

            NeuronLayout layout = NeuronLayouts.full(n, tokenBlock, h, bn, layouts);
            assertThat(NeuronLayouts.density(layout, h)).isEqualTo(1.0);
            Result s = runSparse(pool, arena, o, layout, d);

            TensorAssert.assertClose("out", F32_ROUNDING, s.out, toDouble(denseOut), n, c);
            TensorAssert.assertClose("dInp", F32_ROUNDING, s.dInp, toDouble(denseDInp), n, c);
            TensorAssert.assertClose("dB1", F32_ROUNDING, s.dB1, toDouble(denseDB1), h);
            TensorAssert.assertClose("dB2", F32_ROUNDING, s.dB2, toDouble(denseDB2), c);
            // The compacted hidden of a full layout is the dense activation, then zeros past H.
            int width = layout.maxBlocks() * bn;
            float[] a = act.toFloatArray();
            double[] expected = new double[n * width];
            for (int i = 0; i < n; i++) {
                for (int u = 0; u < h; u++) {
                    expected[i * width + u] = a[i * h + u];
                }
            }
            TensorAssert.assertClose("hidden", F32_ROUNDING, s.hidden, expected, n, width);
        }
    }

    // --- (b) random layouts against the float64 reference

    /**
     * Every (density, token block, BN) triple, each with two (weight dtype, bias) pairs that rotate with the triple,
     * so that every dtype meets every value of each other parameter, with and without biases.
     */
    static Stream<Arguments> randomCases() {
        List<Arguments> cases = new ArrayList<>();
        DType[] types = {DType.F32, DType.F16, DType.BF16};
        double[] densities = {0.05, 0.25, 0.6};
        int[] tokenBlocks = {0, 64, 7};
        int[] neuronBlocks = {1, 8, 32};
        long seed = 1000;
        for (int a = 0; a < 3; a++) {
            for (int b = 0; b < 3; b++) {
                for (int c = 0; c < 3; c++) {
                    // (a + b + c) mod 3 takes every value as any one index varies with the other two fixed.
                    int t = (a + b + c) % 3;
                    cases.add(Arguments.of(densities[a], tokenBlocks[b], neuronBlocks[c], types[t], true, seed++));
                    cases.add(Arguments.of(densities[a], tokenBlocks[b], neuronBlocks[c], types[(t + 1) % 3], false,
                            seed++));
                }
            }
        }
        return cases.stream();
    }

    /** tokenBlock 0 means one token block of all rows. N = 71, C = 37, H = 200 (BN = 32: a last block of 8). */
    @ParameterizedTest(name = "density {0}, token block {1}, BN {2}, {3}, bias {4}")
    @MethodSource("randomCases")
    void randomLayoutsMatchTheReference(double density, int tokenBlock, int bn, DType wt, boolean bias, long seed) {
        int n = 71;
        int c = 37;
        int h = 200;
        int tb = tokenBlock == 0 ? n : tokenBlock;
        Rng rng = new Rng(seed);
        Data d = Data.random(rng, n, c, h, bias);
        try (Arena arena = Arena.ofShared(); CpuThreads pool = new CpuThreads(2);
             CpuBackend layouts = new CpuBackend(1)) {
            Operands o = d.operands(arena, wt);
            NeuronLayout layout = NeuronLayouts.random(n, tb, h, bn, density, seed, layouts);
            Result s = runSparse(pool, arena, o, layout, d);

            RefSparseMlp.Layout ref = refLayout(layout);
            int width = ref.width();
            double[] w1 = Rng.toDouble(o.w1.toFloatArray()); // the rounded values the engine reads
            double[] w2 = Rng.toDouble(o.w2.toFloatArray());
            double[] b1 = bias ? Rng.toDouble(d.b1) : null;
            double[] b2 = bias ? Rng.toDouble(d.b2) : null;
            double[] out = new double[n * c];
            double[] hidden = new double[n * width];
            RefSparseMlp.forward(out, hidden, Rng.toDouble(d.x), w1, b1, w2, b2, ref, c, h);
            TensorAssert.assertClose("out", LINEAR_FORWARD, s.out, out, n, c);
            TensorAssert.assertClose("hidden", LINEAR_FORWARD, s.hidden, hidden, n, width);

            // The backward is checked given the engine's saved hidden state, whose signs fix the ReLU mask (a
            // pre-activation within rounding of 0 may fall on either side in float and in double).
            double[] dInp = new double[n * c];
            double[] dB1 = Rng.toDouble(d.dB1Prior);
            double[] dB2 = Rng.toDouble(d.dB2Prior);
            RefSparseMlp.backward(dInp, dB1, dB2, Rng.toDouble(d.dOut), Rng.toDouble(s.hidden), w1, w2, ref, c, h);
            TensorAssert.assertClose("dInp", LINEAR_GRAD, s.dInp, dInp, n, c);
            TensorAssert.assertClose("dB1", LINEAR_GRAD, s.dB1, dB1, h);
            TensorAssert.assertClose("dB2", LINEAR_GRAD, s.dB2, dB2, c);
        }
    }

    // --- (b') a residual joins out in the second product

    /**
     * With a residual: out = residual + b2 + MLP against the float64 twin, the same as the forward without one
     * followed by ActivationOps.addForward within float32 rounding, the hidden state bit-equal, the residual left
     * as it was; residual = out itself works in place; a token block listing nothing gets residual + b2.
     */
    @ParameterizedTest(name = "token block {0}, BN {1}, density {2}, bias {3}")
    @CsvSource({"0, 32, 0.4, true", "7, 8, 0.25, false", "64, 32, 0.0, true"})
    void residualEqualsForwardThenAdd(int tokenBlock, int bn, double density, boolean bias) {
        int n = 71;
        int c = 37;
        int h = 200;
        int tb = tokenBlock == 0 ? n : tokenBlock;
        long seed = 77L + tokenBlock + bn;
        Rng rng = new Rng(seed);
        Data d = Data.random(rng, n, c, h, bias);
        float[] res = rng.normalFloats(n * c);
        try (Arena arena = Arena.ofShared(); CpuThreads pool = new CpuThreads(2); CpuBackend be = new CpuBackend(1)) {
            CpuSparseMlp mlp = new CpuSparseMlp(pool, new CpuGemm(pool));
            Operands o = d.operands(arena, DType.BF16);
            NeuronLayout layout = NeuronLayouts.random(n, tb, h, bn, density, seed, be);
            int width = layout.maxBlocks() * bn;
            Tensor r = f32(arena, res, n, c);
            Tensor fused = f32(arena, rng.normalFloats(n * c), n, c);
            Tensor hidden = zeros(arena, n, width);
            be.sparse().sparseMlpForward(fused, hidden, o.x, o.w1, o.b1, o.w2, o.b2, r, layout);
            float[] hFused = hidden.toFloatArray();
            Tensor unfused = f32(arena, rng.normalFloats(n * c), n, c);
            mlp.sparseMlpForward(unfused, hidden, o.x, o.w1, o.b1, o.w2, o.b2, layout);
            be.activation().addForward(unfused, unfused, r);

            RefSparseMlp.Layout ref = refLayout(layout);
            double[] out = new double[n * c];
            double[] hRef = new double[n * ref.width()];
            RefSparseMlp.forwardResidual(out, hRef, Rng.toDouble(d.x), Rng.toDouble(o.w1.toFloatArray()),
                    bias ? Rng.toDouble(d.b1) : null, Rng.toDouble(o.w2.toFloatArray()),
                    bias ? Rng.toDouble(d.b2) : null, Rng.toDouble(res), ref, c, h);
            TensorAssert.assertClose("out", LINEAR_FORWARD, fused.toFloatArray(), out, n, c);
            TensorAssert.assertClose("fused vs unfused", F32_ROUNDING, fused.toFloatArray(), toDouble(unfused), n, c);
            TensorAssert.assertBitIdentical("hidden", hFused, hidden.toFloatArray());
            assertThat(r.toFloatArray()).containsExactly(res);

            Tensor inPlace = f32(arena, res, n, c);
            mlp.sparseMlpForward(inPlace, hidden, o.x, o.w1, o.b1, o.w2, o.b2, inPlace, layout);
            TensorAssert.assertBitIdentical("in place", inPlace.toFloatArray(), fused.toFloatArray());
            assertThatThrownBy(() -> mlp.sparseMlpForward(zeros(arena, n, c), hidden, o.x, o.w1, o.b1, o.w2, o.b2,
                    zeros(arena, n, c + 1), layout)).hasMessageContaining("residual must be (N, C)");
        }
    }

    // --- (c) determinism

    @ParameterizedTest
    @CsvSource({"400, 400, 0.6, 32, F16", "400, 100, 0.3, 8, F32", "397, 13, 0.5, 24, BF16"})
    void resultsDoNotDependOnTheThreadCount(int n, int tokenBlock, double density, int bn, DType wt) {
        int c = 130;
        int h = 1000;
        Rng rng = new Rng(n + tokenBlock);
        Data d = Data.random(rng, n, c, h, true);
        Result[] results = new Result[2];
        int[] threadCounts = {1, 3};
        try (Arena arena = Arena.ofShared(); CpuBackend layouts = new CpuBackend(1)) {
            Operands o = d.operands(arena, wt);
            NeuronLayout layout = NeuronLayouts.random(n, tokenBlock, h, bn, density, 5, layouts);
            for (int t = 0; t < 2; t++) {
                try (CpuThreads pool = new CpuThreads(threadCounts[t])) {
                    results[t] = runSparse(pool, arena, o, layout, d);
                }
            }
        }
        TensorAssert.assertBitIdentical("out", results[0].out, results[1].out);
        TensorAssert.assertBitIdentical("hidden", results[0].hidden, results[1].hidden);
        TensorAssert.assertBitIdentical("dInp", results[0].dInp, results[1].dInp);
        TensorAssert.assertBitIdentical("dB1", results[0].dB1, results[1].dB1);
        TensorAssert.assertBitIdentical("dB2", results[0].dB2, results[1].dB2);
    }

    // --- (d) malformed layouts

    @Test
    void malformedLayoutsAreRejectedWithTheOffendingEntry() {
        int n = 10;
        int c = 6;
        int h = 20; // BN = 8: blocks 0, 1 and a last block 2 of 4 neurons
        Rng rng = new Rng(3);
        Data d = Data.random(rng, n, c, h, true);
        try (Arena arena = Arena.ofShared(); CpuThreads pool = new CpuThreads(1)) {
            CpuSparseMlp mlp = new CpuSparseMlp(pool, new CpuGemm(pool));
            Operands o = d.operands(arena, DType.F32);
            // Token blocks of 4 rows: 3 of them.
            record Bad(int[] rowPtr, int[] blockIdx, int maxBlocks, String message) {
            }
            List<Bad> bad = List.of(
                    new Bad(new int[] {1, 1, 2, 3}, new int[] {0, 1, 2}, 2, "rowPtr[0] must be 0, got 1"),
                    new Bad(new int[] {0, 2, 1, 3}, new int[] {0, 1, 2}, 2, "rowPtr[2] = 1 < rowPtr[1] = 2"),
                    new Bad(new int[] {0, 1, 2, 4}, new int[] {0, 1, 2}, 2, "rowPtr[3] = 4 exceeds the 3 entries"),
                    new Bad(new int[] {0, 3, 3, 3}, new int[] {0, 1, 2}, 2, "token block 0 lists 3 neuron blocks, "
                            + "more than maxBlocks = 2"),
                    new Bad(new int[] {0, 1, 2, 3}, new int[] {0, 3, 1}, 1, "blockIdx[1] = 3 (token block 1) is out of "
                            + "range: H = 20 with BN = 8 has 3 neuron blocks"),
                    new Bad(new int[] {0, 1, 2, 3}, new int[] {0, -1, 1}, 1, "blockIdx[1] = -1"),
                    new Bad(new int[] {0, 2, 2, 3}, new int[] {1, 1, 0}, 2, "token block 0 must be strictly "
                            + "ascending, but blockIdx[1] = 1 follows 1"),
                    new Bad(new int[] {0, 2, 2, 3}, new int[] {2, 0, 0}, 2, "blockIdx[1] = 0 follows 2"));
            for (Bad b : bad) {
                NeuronLayout layout = new NeuronLayout(8, 4, n, b.maxBlocks, i32(arena, b.rowPtr, b.rowPtr.length),
                        i32(arena, b.blockIdx, b.blockIdx.length));
                Tensor hidden = zeros(arena, n, b.maxBlocks * 8L);
                assertThatThrownBy(() -> mlp.sparseMlpForward(zeros(arena, n, c), hidden, o.x, o.w1, o.b1, o.w2,
                        o.b2, layout)).as(b.message).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("sparseMlpForward").hasMessageContaining(b.message);
                assertThatThrownBy(() -> mlp.sparseMlpBackward(zeros(arena, n, c), null, null, o.dOut, hidden, o.w1,
                        o.w2, layout)).as(b.message).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("sparseMlpBackward").hasMessageContaining(b.message);
            }

            NeuronLayout good = new NeuronLayout(8, 4, n, 1, i32(arena, new int[] {0, 1, 2, 3}, 4),
                    i32(arena, new int[] {0, 1, 2}, 3));
            Tensor hidden = zeros(arena, n, 8);
            assertThatThrownBy(() -> mlp.sparseMlpForward(zeros(arena, n, c), zeros(arena, n, 16), o.x, o.w1, o.b1,
                    o.w2, o.b2, good)).hasMessageContaining("hidden must be (N, maxBlocks·BN) = (10, 8)");
            NeuronLayout otherRows = new NeuronLayout(8, 4, 11, 1, i32(arena, new int[] {0, 1, 2, 3}, 4),
                    i32(arena, new int[] {0, 1, 2}, 3));
            assertThatThrownBy(() -> mlp.sparseMlpForward(zeros(arena, n, c), hidden, o.x, o.w1, o.b1, o.w2, o.b2,
                    otherRows)).hasMessageContaining("out must be (N, C) = (11, 6)");
            assertThatThrownBy(() -> mlp.sparseMlpForward(zeros(arena, n, c), hidden, o.x, o.w1, o.b1, o.w1, o.b2,
                    good)).hasMessageContaining("w2 must be (C, H) = (6, 20)");
            assertThatThrownBy(() -> mlp.sparseMlpBackward(zeros(arena, n, c), zeros(arena, h + 1), null, o.dOut,
                    hidden, o.w1, o.w2, good)).hasMessageContaining("dB1");
            mlp.sparseMlpForward(zeros(arena, n, c), hidden, o.x, o.w1, o.b1, o.w2, o.b2, good);
        }
    }

    // --- (e) what the layout leaves out is neither written (beyond the zero padding) nor read

    @Test
    void unlistedColumnsAreZeroedNeverReadAndUnlistedBiasGradientsUntouched() {
        int n = 23;
        int c = 19;
        int h = 50;
        int bn = 8; // blocks 0..6, the last of 2 neurons
        Rng rng = new Rng(42);
        Data d = Data.random(rng, n, c, h, true);
        // Token blocks of 6 rows (the last of 5): {1, 6}, {}, {0, 2, 3}, {2}. Blocks 4 and 5 are listed by nobody.
        boolean[][] keep = new boolean[4][7];
        keep[0][1] = keep[0][6] = true;
        keep[2][0] = keep[2][2] = keep[2][3] = true;
        keep[3][2] = true;
        float[] dB1Prior = d.dB1Prior.clone();
        dB1Prior[32] = -0.0f; // an unlisted neuron whose -0 an accidental "+= 0" would turn into +0
        dB1Prior[41] = Float.NaN;
        try (Arena arena = Arena.ofShared(); CpuThreads pool = new CpuThreads(2);
             CpuBackend layouts = new CpuBackend(1)) {
            CpuSparseMlp mlp = new CpuSparseMlp(pool, new CpuGemm(pool));
            Operands o = d.operands(arena, DType.BF16);
            NeuronLayout layout = NeuronLayouts.fromBooleans(keep, n, 6, h, bn, layouts);
            assertThat(layout.maxBlocks()).isEqualTo(3);
            int width = 3 * bn;
            float[] nan = new float[n * width];
            Arrays.fill(nan, Float.NaN);
            Tensor hidden = f32(arena, nan, n, width);
            Tensor out = f32(arena, rng.normalFloats(n * c), n, c);
            mlp.sparseMlpForward(out, hidden, o.x, o.w1, o.b1, o.w2, o.b2, layout);
            float[] hv = hidden.toFloatArray();
            int[] realWidth = {bn + 2, 0, 3 * bn, bn};
            for (int i = 0; i < n; i++) {
                for (int col = 0; col < width; col++) {
                    float v = hv[i * width + col];
                    if (col < realWidth[i / 6]) {
                        assertThat(v).as("hidden[%d, %d]", i, col).isNotNaN().isGreaterThanOrEqualTo(0f);
                    } else {
                        assertThat(Float.floatToRawIntBits(v)).as("padding hidden[%d, %d]", i, col).isZero();
                    }
                }
            }
            // Rows of the empty token block: hidden all zero, out = b2.
            for (int i = 6; i < 12; i++) {
                for (int k = 0; k < c; k++) {
                    assertThat(out.toFloatArray()[i * c + k]).isEqualTo(d.b2[k]);
                }
            }

            Tensor dInp = zeros(arena, n, c);
            Tensor dB1 = f32(arena, dB1Prior, h);
            mlp.sparseMlpBackward(dInp, dB1, null, o.dOut, hidden, o.w1, o.w2, layout);
            // The same backward with garbage in the padding columns of hidden: nothing changes.
            float[] dirty = hv.clone();
            for (int i = 0; i < n; i++) {
                for (int col = realWidth[i / 6]; col < width; col++) {
                    dirty[i * width + col] = i % 2 == 0 ? Float.NaN : 1e30f;
                }
            }
            Tensor dInp2 = f32(arena, rng.normalFloats(n * c), n, c);
            Tensor dB1Again = f32(arena, dB1Prior, h);
            mlp.sparseMlpBackward(dInp2, dB1Again, null, o.dOut, f32(arena, dirty, n, width), o.w1, o.w2, layout);
            TensorAssert.assertBitIdentical("dInp", dInp.toFloatArray(), dInp2.toFloatArray());
            TensorAssert.assertBitIdentical("dB1", dB1.toFloatArray(), dB1Again.toFloatArray());

            float[] g = dB1.toFloatArray();
            for (int u = 4 * bn; u < 6 * bn; u++) {
                assertThat(Float.floatToRawIntBits(g[u])).as("unlisted dB1[%d]", u)
                        .isEqualTo(Float.floatToRawIntBits(dB1Prior[u]));
            }
            // The empty token block's rows get a zero input gradient.
            float[] di = dInp.toFloatArray();
            for (int i = 6 * c; i < 12 * c; i++) {
                assertThat(di[i]).isZero();
            }
        }
    }

    // --- helpers

    /** Inputs as float arrays: x, weights scaled by 1/sqrt(fan-in) so that activations stay of order 1. */
    private record Data(int n, int c, int h, float[] x, float[] w1, float[] b1, float[] w2, float[] b2,
                        float[] dOut, float[] dB1Prior, float[] dB2Prior, boolean bias) {
        static Data random(Rng rng, int n, int c, int h, boolean bias) {
            return new Data(n, c, h, rng.normalFloats(n * c), rng.normalFloats(h * c, 0, 1 / Math.sqrt(c)),
                    rng.normalFloats(h, 0, 0.5), rng.normalFloats(c * h, 0, 1 / Math.sqrt(h)),
                    rng.normalFloats(c, 0, 0.5), rng.normalFloats(n * c), rng.normalFloats(h), rng.normalFloats(c),
                    bias);
        }

        Operands operands(Arena arena, DType wt) {
            return new Operands(f32(arena, x, n, c), weight(arena, wt, w1, h, c), bias ? f32(arena, b1, h) : null,
                    weight(arena, wt, w2, c, h), bias ? f32(arena, b2, c) : null, f32(arena, dOut, n, c));
        }

        private static Tensor weight(Arena arena, DType wt, float[] w, int rows, int cols) {
            return wt == DType.F32 ? f32(arena, w, rows, cols) : half(arena, wt, w, rows, cols);
        }
    }

    private record Operands(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2, Tensor dOut) {
    }

    private record Result(float[] out, float[] hidden, float[] dInp, float[] dB1, float[] dB2) {
    }

    /** Forward then backward on fresh buffers (outputs pre-filled with garbage, bias gradients with the priors). */
    private static Result runSparse(CpuThreads pool, Arena arena, Operands o, NeuronLayout layout, Data d) {
        CpuSparseMlp mlp = new CpuSparseMlp(pool, new CpuGemm(pool));
        int n = d.n;
        int c = d.c;
        int width = layout.maxBlocks() * layout.neuronBlock();
        float[] garbage = new float[n * Math.max(c, width)];
        Arrays.fill(garbage, 7.5f);
        Tensor out = f32(arena, Arrays.copyOf(garbage, n * c), n, c);
        Tensor hidden = f32(arena, Arrays.copyOf(garbage, n * width), n, width);
        mlp.sparseMlpForward(out, hidden, o.x, o.w1, o.b1, o.w2, o.b2, layout);
        Tensor dInp = f32(arena, Arrays.copyOf(garbage, n * c), n, c);
        Tensor dB1 = f32(arena, d.dB1Prior, d.h);
        Tensor dB2 = f32(arena, d.dB2Prior, c);
        mlp.sparseMlpBackward(dInp, dB1, dB2, o.dOut, hidden, o.w1, o.w2, layout);
        return new Result(out.toFloatArray(), hidden.toFloatArray(), dInp.toFloatArray(), dB1.toFloatArray(),
                dB2.toFloatArray());
    }

    private static RefSparseMlp.Layout refLayout(NeuronLayout l) {
        int[] rowPtr = new int[l.numTokenBlocks() + 1];
        for (int r = 0; r < rowPtr.length; r++) {
            rowPtr[r] = l.rowPtr().getInt(r);
        }
        int[] blockIdx = new int[Math.toIntExact(l.blockIdx().numel())];
        for (int e = 0; e < blockIdx.length; e++) {
            blockIdx[e] = l.blockIdx().getInt(e);
        }
        return new RefSparseMlp.Layout(l.rows(), l.tokenBlock(), l.neuronBlock(), l.maxBlocks(), rowPtr, blockIdx);
    }

    private static double[] toDouble(Tensor t) {
        return Rng.toDouble(t.toFloatArray());
    }
}
