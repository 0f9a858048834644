package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.Tensors;
import org.longexposure.cuda.Gpu;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The bf16 shadows of F32 GEMM operands ({@link Bf16Shadows}): after every kind of write to an F32 LoRA weight or
 * bias, the next product must read the new value. The oracle is the same product on a freshly uploaded tensor
 * holding the F32 values read back after the write (a tensor never seen before, so its shadow is rounded from
 * scratch): the two outputs must be bit-equal, and differ from the output before the write.
 */
@Tag("gpu")
class Bf16ShadowsDeviceTest {
    private static CudaBackend gpu;

    @BeforeAll
    static void open() {
        gpu = Gpu.openOrSkip();
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
    }

    private static final int M = 19;
    private static final int K = 45;
    private static final int N = 23;

    private final SplittableRandom rnd = new SplittableRandom(7);
    private final Tensor x = Gpu.upload(gpu, DType.BF16, Gpu.randomBf16(rnd, M * K, 1f), M, K);

    /** out = x·Wᵀ + b with an F32 weight (N, K) and F32 bias (N). */
    private float[] forward(Tensor w, Tensor b) {
        Tensor out = gpu.allocate(DType.BF16, M, N);
        gpu.linear().linearForward(out, x, w, b);
        return Gpu.download(gpu, out);
    }

    /** The same product on fresh copies of w's and b's current F32 values. */
    private float[] forwardOnFreshCopies(Tensor w, Tensor b) {
        Tensor wFresh = Gpu.upload(gpu, DType.F32, Gpu.download(gpu, w), N, K);
        Tensor bFresh = Gpu.upload(gpu, DType.F32, Gpu.download(gpu, b), N);
        return forward(wFresh, bFresh);
    }

    private void checkMutation(String what, boolean mutatesBias, Consumer<Tensor> mutate) {
        Tensor w = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N * K, 0.3f), N, K);
        Tensor b = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N, 0.5f), N);
        float[] before = forward(w, b);
        assertThat(forward(w, b)).as("%s: a repeated product", what).containsExactly(before);
        mutate.accept(mutatesBias ? b : w);
        float[] after = forward(w, b);
        assertThat(after).as("%s: the product after the write", what).containsExactly(forwardOnFreshCopies(w, b));
        assertThat(after).as("%s: the write changed the product", what).isNotEqualTo(before);
    }

    @Test
    void backendWriteAndTheAdapterLoadPathReachTheNextProduct() {
        checkMutation("write weight", false, t -> Tensors.copyFrom(gpu, t, Gpu.randomBf16(rnd, N * K, 0.3f)));
        checkMutation("write bias", true, t -> Tensors.copyFrom(gpu, t, Gpu.randomBf16(rnd, N, 0.5f)));
    }

    @Test
    void aWriteIntoAnOverlappingViewReachesTheNextProduct() {
        // the weight is rows [2, 2 + N) of a larger F32 tensor; a write to rows [0, 3) touches its first row only
        Tensor big = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, (N + 5) * K, 0.3f), N + 5, K);
        Tensor w = big.slice(2, N);
        Tensor b = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N, 0.5f), N);
        float[] before = forward(w, b);
        Tensors.copyFrom(gpu, big.slice(0, 3), Gpu.randomBf16(rnd, 3 * K, 5f));
        float[] after = forward(w, b);
        assertThat(after).containsExactly(forwardOnFreshCopies(w, b));
        assertThat(after).isNotEqualTo(before);
    }

    @Test
    void fillZeroScaleAndPointwiseWritesReachTheNextProduct() {
        checkMutation("fillUniform", false, t -> gpu.fillUniform(t, -0.5f, 0.5f, 11));
        checkMutation("zero", false, t -> gpu.optim().zero(t));
        checkMutation("zero list", true, t -> gpu.optim().zero(List.of(t)));
        checkMutation("scale", false, t -> gpu.optim().scale(t, -1.5f));
        checkMutation("scale list", true, t -> gpu.optim().scale(List.of(t), 3f));
        checkMutation("accumulate", false, t -> gpu.activation().accumulate(t,
                Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N * K, 0.3f), N, K)));
        checkMutation("linearBackwardWeight", false, t -> gpu.linear().linearBackwardWeight(t, null,
                Gpu.upload(gpu, DType.BF16, Gpu.randomBf16(rnd, M * N, 1f), M, N), x, 0.5f));
    }

    @Test
    void adamwUpdatesReachTheNextProduct() {
        for (boolean list : new boolean[] {false, true}) {
            checkMutation("adamw list=" + list, false, t -> {
                Tensor g = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N * K, 1f), N, K);
                Tensor m = gpu.allocate(DType.F32, N, K);
                Tensor v = gpu.allocate(DType.F32, N, K);
                if (list) {
                    gpu.optim().adamwUpdate(List.of(t), List.of(g), List.of(m), List.of(v), 0.05f, 0.9f, 0.999f,
                            1e-8f, 0.01f, 1);
                } else {
                    gpu.optim().adamwUpdate(t, g, m, v, 0.05f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
                }
            });
        }
    }

    /**
     * A shadow is rounded once per value: repeated products read it without a rounding launch, and the list
     * AdamW refreshes it inside its own kernel (no rounding launch before the next product either).
     */
    @Test
    void aShadowIsRoundedOncePerValue() {
        Tensor w = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N * K, 0.3f), N, K);
        Tensor b = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N, 0.5f), N);
        Bf16Shadows shadows = gpu.shadows();
        long c0 = shadows.conversions();
        forward(w, b);
        assertThat(shadows.conversions() - c0).as("first product: weight and bias rounded").isEqualTo(2);
        forward(w, b);
        forward(w, b);
        assertThat(shadows.conversions() - c0).as("repeated products").isEqualTo(2);

        Tensor g = Gpu.upload(gpu, DType.F32, Gpu.randomBf16(rnd, N * K, 1f), N, K);
        Tensor m = gpu.allocate(DType.F32, N, K);
        Tensor v = gpu.allocate(DType.F32, N, K);
        gpu.optim().adamwUpdate(List.of(w), List.of(g), List.of(m), List.of(v), 0.05f, 0.9f, 0.999f, 1e-8f, 0f, 1);
        long afterStep = shadows.conversions();
        float[] got = forward(w, b);
        assertThat(shadows.conversions()).as("the list AdamW wrote the shadow").isEqualTo(afterStep);
        long fresh = shadows.conversions();
        assertThat(got).containsExactly(forwardOnFreshCopies(w, b));
        assertThat(shadows.conversions() - fresh).as("fresh copies are rounded").isEqualTo(2);
    }
}
