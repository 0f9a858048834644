package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.backend.HostTensors.f32;
import static org.longexposure.backend.HostTensors.i32;
import static org.longexposure.backend.HostTensors.zeros;
import static org.longexposure.testkit.Tolerances.Kind.FORWARD;
import static org.longexposure.testkit.Tolerances.Kind.GRAD;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.longexposure.backend.cpu.CpuLoss;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.reference.RefCrossEntropy;

/**
 * CpuLoss against RefCrossEntropy: awkward vocabularies (1, 1003, OPT's 50272), label smoothing on and off,
 * ignored rows (weight 0, target −100), logits shifted far from zero, dLogits aliasing logits, determinism.
 */
class LossOpsTest {
    /** A random problem: logits N(0, 2²) with some rows shifted by ±40, every third row ignored. */
    private record Problem(int n, int v, float[] logits, int[] targets, float[] weights) {
        static Problem of(int n, int v, long seed) {
            Rng rng = new Rng(seed);
            float[] logits = rng.normalFloats(n * v, 0, 2);
            for (int i = 1; i < n; i += 4) {
                float shift = i % 8 == 1 ? 40f : -40f;
                for (int c = 0; c < v; c++) {
                    logits[i * v + c] += shift;
                }
            }
            int[] targets = rng.ints(n, v);
            int count = 0;
            for (int i = 0; i < n; i++) {
                if (n > 1 && i % 3 == 2) {
                    targets[i] = -100;
                } else {
                    count++;
                }
            }
            float[] weights = new float[n];
            for (int i = 0; i < n; i++) {
                weights[i] = targets[i] < 0 ? 0f : 1f / count;
            }
            return new Problem(n, v, logits, targets, weights);
        }
    }

    /** The engine's forward and backward (dLogits separate, and in place over a copy of the logits). */
    private record Result(double total, float[] losses, float[] lse, float[] dLogits, float[] dInPlace) {
    }

    private static Result run(Problem p, float eps, int threadCount) {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(threadCount)) {
            CpuLoss loss = new CpuLoss(threads);
            Tensor logits = f32(arena, p.logits(), p.n(), p.v());
            Tensor targets = i32(arena, p.targets(), p.n());
            Tensor weights = f32(arena, p.weights(), p.n());
            Tensor losses = zeros(arena, p.n());
            Tensor lse = zeros(arena, p.n());
            double total = loss.crossEntropyForward(losses, lse, logits, targets, weights, eps);
            Tensor d = zeros(arena, p.n(), p.v());
            loss.crossEntropyBackward(d, logits, lse, targets, weights, eps);
            loss.crossEntropyBackward(logits, logits, lse, targets, weights, eps);
            return new Result(total, losses.toFloatArray(), lse.toFloatArray(), d.toFloatArray(),
                    logits.toFloatArray());
        }
    }

    @ParameterizedTest(name = "N={0} V={1} eps={2}")
    @CsvSource({
        "1, 1, 0.0",
        "1, 1003, 0.1",
        "7, 1003, 0.0",
        "7, 1003, 0.1",
        "33, 1003, 0.0",
        "33, 13, 0.3",
        "3, 50272, 0.0",
        "3, 50272, 0.1",
    })
    void forwardAndBackwardMatchReference(int n, int v, float eps) {
        Problem p = Problem.of(n, v, 100L * n + v);
        Result r = run(p, eps, 2);
        double[] losses = new double[n];
        double[] lse = new double[n];
        double[] w = Rng.toDouble(p.weights());
        double total = RefCrossEntropy.forward(losses, lse, Rng.toDouble(p.logits()), p.targets(), w, eps, n, v);
        double[] dLogits = new double[n * v];
        RefCrossEntropy.backward(dLogits, Rng.toDouble(p.logits()), lse, p.targets(), w, eps, n, v);

        TensorAssert.assertClose("cross_entropy", FORWARD, r.losses(), losses, n);
        TensorAssert.assertClose("cross_entropy", FORWARD, r.lse(), lse, n);
        TensorAssert.assertClose("cross_entropy", FORWARD, r.total(), total);
        TensorAssert.assertClose("cross_entropy", GRAD, r.dLogits(), dLogits, n, v);
        TensorAssert.assertBitIdentical("dLogits == logits", r.dLogits(), r.dInPlace());
    }

    @Test
    void resultsAreBitIdenticalForOneTwoAndThreeThreads() {
        Problem p = Problem.of(33, 1003, 4);
        Result one = run(p, 0.1f, 1);
        for (int t : new int[] {2, 3}) {
            Result r = run(p, 0.1f, t);
            TensorAssert.assertBitIdentical("losses", one.losses(), r.losses());
            TensorAssert.assertBitIdentical("lse", one.lse(), r.lse());
            TensorAssert.assertBitIdentical("dLogits", one.dLogits(), r.dLogits());
            if (Double.doubleToRawLongBits(one.total()) != Double.doubleToRawLongBits(r.total())) {
                throw new AssertionError("total differs with " + t + " threads: " + one.total() + " vs " + r.total());
            }
        }
    }

    @Test
    void targetOutsideTheVocabularyOnAWeightedRowIsRejected() {
        try (Arena arena = Arena.ofShared(); CpuThreads threads = new CpuThreads(1)) {
            CpuLoss loss = new CpuLoss(threads);
            assertThatThrownBy(() -> loss.crossEntropyForward(zeros(arena, 2), zeros(arena, 2), zeros(arena, 2, 5),
                    i32(arena, new int[] {-100, 5}, 2), f32(arena, new float[] {0f, 0.5f}, 2), 0f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("targets[1] = 5");
            assertThatThrownBy(() -> loss.crossEntropyForward(zeros(arena, 3), zeros(arena, 2), zeros(arena, 2, 5),
                    i32(arena, new int[] {0, 1}, 2), f32(arena, new float[] {1f, 1f}, 2), 0f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("losses has shape [3]");
        }
    }
}
