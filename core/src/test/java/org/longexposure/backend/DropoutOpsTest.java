package org.longexposure.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.cpu.CpuActivation;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;
import org.longexposure.testkit.Tolerances;
import org.longexposure.testkit.reference.RefDropout;

/** Dropout forward/backward on the CPU against the float64 twin; the mask rate; thread-count independence. */
class DropoutOpsTest {
    @Test
    void matchesReferenceAndKeepsTheExpectedFraction() {
        int n = 70_001;
        float p = 0.3f;
        long seed = 12345;
        float[] x = new Rng(5).normalFloats(n);
        try (Arena arena = Arena.ofShared(); CpuThreads t1 = new CpuThreads(1); CpuThreads t3 = new CpuThreads(3)) {
            Tensor in = HostTensors.f32(arena, x, n);
            Tensor out1 = HostTensors.zeros(arena, n);
            Tensor out3 = HostTensors.zeros(arena, n);
            new CpuActivation(t1).dropoutForward(out1, in, p, seed);
            new CpuActivation(t3).dropoutForward(out3, in, p, seed);
            double[] ref = new double[n];
            RefDropout.forward(ref, Rng.toDouble(x), p, seed);
            TensorAssert.assertClose("dropout", Tolerances.of("scale", Tolerances.Kind.FORWARD),
                    out1.toFloatArray(), ref, n);
            TensorAssert.assertBitIdentical("dropout threads", out1.toFloatArray(), out3.toFloatArray());
            long kept = 0;
            for (double r : ref) {
                kept += r != 0 ? 1 : 0;
            }
            assertThat(kept / (double) n).isBetween(0.69, 0.71);

            Tensor dIn = HostTensors.zeros(arena, n);
            new CpuActivation(t1).dropoutBackward(dIn, in, p, seed);
            double[] dRef = new double[n];
            RefDropout.backward(dRef, Rng.toDouble(x), p, seed);
            TensorAssert.assertClose("dropout backward", Tolerances.of("scale", Tolerances.Kind.FORWARD),
                    dIn.toFloatArray(), dRef, n);
            // another seed gives another mask
            Tensor other = HostTensors.zeros(arena, n);
            new CpuActivation(t1).dropoutForward(other, in, p, seed + 1);
            assertThat(other.toFloatArray()).isNotEqualTo(out1.toFloatArray());
        }
    }
}
