package org.longexposure.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.cuda.backend.CudaOptions;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Device-test support: opens the backend or skips the test loudly (the reason, with every library path tried, goes
 * to the test report and to stderr), and moves float arrays to and from device tensors.
 */
public final class Gpu {
    private Gpu() {
    }

    /** A backend on device 0 with libraries from the loader path; skips the calling test when there is no GPU. */
    public static CudaBackend openOrSkip() {
        return openOrSkip(CudaOptions.defaults());
    }

    /** As {@link #openOrSkip()} with the given options. */
    public static CudaBackend openOrSkip(CudaOptions options) {
        try {
            return CudaBackend.open(options);
        } catch (CudaException e) {
            String why = "SKIPPED: no usable CUDA GPU here: " + e.getMessage();
            System.err.println(why);
            Assumptions.abort(why);
            throw e;
        }
    }

    /** A device tensor of {@code dtype} (F32 or BF16, rounded to nearest even) holding {@code values}. */
    public static Tensor upload(CudaBackend be, DType dtype, float[] values, long... dims) {
        Tensor t = be.allocate(dtype, dims);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(t.byteSize());
            for (int i = 0; i < values.length; i++) {
                switch (dtype) {
                    case F32 -> host.setAtIndex(ValueLayout.JAVA_FLOAT, i, values[i]);
                    case BF16 -> host.setAtIndex(ValueLayout.JAVA_SHORT, i, Bf16.fromFloat(values[i]));
                    default -> throw new IllegalArgumentException("upload of " + dtype);
                }
            }
            be.write(t, host);
            be.sync();
        }
        return t;
    }

    /** The values of a device F32 or BF16 tensor. */
    public static float[] download(CudaBackend be, Tensor t) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(t.byteSize());
            be.read(t, host);
            float[] out = new float[Math.toIntExact(t.numel())];
            for (int i = 0; i < out.length; i++) {
                out[i] = switch (t.dtype()) {
                    case F32 -> host.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    case BF16 -> Bf16.toFloat(host.getAtIndex(ValueLayout.JAVA_SHORT, i));
                    default -> throw new IllegalArgumentException("download of " + t.dtype());
                };
            }
            return out;
        }
    }

    /** n uniform values in [-scale, scale), already rounded to bf16 (so host and device see the same numbers). */
    public static float[] randomBf16(SplittableRandom rnd, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = Bf16.round((float) rnd.nextDouble(-scale, scale));
        }
        return v;
    }

    /** ‖got − want‖₂ / ‖want‖₂. */
    public static double relativeError(float[] got, float[] want) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < want.length; i++) {
            double d = (double) got[i] - want[i];
            num += d * d;
            den += (double) want[i] * want[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }
}
