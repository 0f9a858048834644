package org.longexposure.backend.cpu;

import static org.longexposure.backend.cpu.VecMath.F;
import static org.longexposure.backend.cpu.VecMath.load;
import static org.longexposure.backend.cpu.VecMath.store;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import org.longexposure.backend.Activation;
import org.longexposure.backend.ActivationOps;
import org.longexposure.backend.Dropout;
import org.longexposure.backend.OpShapes;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Pointwise activations and residual adds on the CPU over same-shaped F32 tensors of any shape (elements taken
 * flat). Twin: {@code testkit.reference.RefActivation}. Nothing is saved beyond the input itself.
 * <ul>
 *   <li>ReLU: {@code max(0, x)}; backward passes dOut where x > 0 (x may be the forward's output).</li>
 *   <li>GELU, exact ({@code torch.nn.functional.gelu}): {@code x·Φ(x)} with {@code Φ(x) = 1 − q} for x ≥ 0 and
 *       {@code q} for x < 0, {@code q = erfc(|x|/√2)/2}, erfc by Abramowitz and Stegun 7.1.26
 *       ({@code erfc(z) ≈ t·(a1 + t·(a2 + … + t·a5))·e^{−z²}}, {@code t = 1/(1 + p·z)}; absolute error ≤ 1.5e-7,
 *       so gelu's error is ≤ 7.5e-8·|x|). Backward {@code Φ(x) + x·φ(x)}, reusing {@code e^{−x²/2}} for φ.</li>
 *   <li>GELU, tanh form (GPT-2's {@code gelu_new}): {@code 0.5·x·(1 + tanh u) = x·σ(2u) = x / (1 + e^{−2u})},
 *       {@code u = √(2/π)·(x + 0.044715·x³)}; backward {@code s·(1 + 2x·u'·e·s)} with {@code e = e^{−2u}},
 *       {@code s = 1/(1 + e)} (since {@code 1 − s = e·s}).</li>
 * </ul>
 * The exponential is {@link VecMath#exp}, the same bits in vector lanes and scalar tails; work is split in
 * fixed blocks ({@link CpuPointwise}), so results do not depend on the thread count. Outputs may alias inputs
 * (each element is read before it is written).
 */
public final class CpuActivation implements ActivationOps {
    private static final float SQRT_2_OVER_PI = (float) Math.sqrt(2 / Math.PI);
    private static final float GELU_TANH_C = 0.044715f;
    /** e^{−2u} = exp(x·(TANH_A + TANH_B·x²)). */
    private static final float TANH_A = -2 * SQRT_2_OVER_PI;
    private static final float TANH_B = -2 * SQRT_2_OVER_PI * GELU_TANH_C;
    /** 2u' = TANH_DA + TANH_DB·x². */
    private static final float TANH_DA = 2 * SQRT_2_OVER_PI;
    private static final float TANH_DB = 2 * SQRT_2_OVER_PI * 3 * GELU_TANH_C;
    private static final float INV_SQRT_2 = (float) (1 / Math.sqrt(2));
    private static final float INV_SQRT_2PI = (float) (1 / Math.sqrt(2 * Math.PI));
    private static final float AS_P = 0.3275911f;
    private static final float AS_A1 = 0.254829592f;
    private static final float AS_A2 = -0.284496736f;
    private static final float AS_A3 = 1.421413741f;
    private static final float AS_A4 = -1.453152027f;
    private static final float AS_A5 = 1.061405429f;

    private final CpuThreads threads;

    public CpuActivation(CpuThreads threads) {
        this.threads = threads;
    }

    @Override
    public void activationForward(Tensor out, Tensor inp, Activation act) {
        String op = "activationForward";
        CpuChecks.require(op, "inp", inp, DType.F32);
        CpuChecks.require(op, "out", out, DType.F32);
        OpShapes.sameShape(op, "out", out, "inp", inp);
        if (act == null) {
            throw new IllegalArgumentException(op + ": act must not be null");
        }
        MemorySegment x = inp.host();
        MemorySegment y = out.host();
        CpuPointwise.run(threads, inp.numel(), (lo, hi) -> {
            long upper = lo + F.loopBound(hi - lo);
            long i = lo;
            switch (act) {
                case RELU -> {
                    for (; i < upper; i += F.length()) {
                        store(load(x, i).max(0f), y, i);
                    }
                    for (; i < hi; i++) {
                        set(y, i, Math.max(get(x, i), 0f));
                    }
                }
                case GELU -> {
                    for (; i < upper; i += F.length()) {
                        FloatVector v = load(x, i);
                        store(v.mul(normalCdf(v, gaussian(v))), y, i);
                    }
                    for (; i < hi; i++) {
                        float v = get(x, i);
                        set(y, i, v * normalCdf(v, gaussian(v)));
                    }
                }
                case GELU_TANH -> {
                    for (; i < upper; i += F.length()) {
                        FloatVector v = load(x, i);
                        store(v.div(expMinus2u(v).add(1f)), y, i);
                    }
                    for (; i < hi; i++) {
                        float v = get(x, i);
                        set(y, i, v / (expMinus2u(v) + 1f));
                    }
                }
            }
        });
    }

    @Override
    public void activationBackward(Tensor dInp, Tensor dOut, Tensor inp, Activation act) {
        String op = "activationBackward";
        CpuChecks.require(op, "inp", inp, DType.F32);
        CpuChecks.require(op, "dOut", dOut, DType.F32);
        CpuChecks.require(op, "dInp", dInp, DType.F32);
        OpShapes.sameShape(op, "dOut", dOut, "inp", inp);
        OpShapes.sameShape(op, "dInp", dInp, "inp", inp);
        if (act == null) {
            throw new IllegalArgumentException(op + ": act must not be null");
        }
        MemorySegment x = inp.host();
        MemorySegment dy = dOut.host();
        MemorySegment dx = dInp.host();
        CpuPointwise.run(threads, inp.numel(), (lo, hi) -> {
            long upper = lo + F.loopBound(hi - lo);
            long i = lo;
            switch (act) {
                case RELU -> {
                    FloatVector zero = FloatVector.zero(F);
                    for (; i < upper; i += F.length()) {
                        VectorMask<Float> pos = load(x, i).compare(VectorOperators.GT, 0f);
                        store(zero.blend(load(dy, i), pos), dx, i);
                    }
                    for (; i < hi; i++) {
                        set(dx, i, get(x, i) > 0f ? get(dy, i) : 0f);
                    }
                }
                case GELU -> {
                    for (; i < upper; i += F.length()) {
                        FloatVector v = load(x, i);
                        FloatVector e = gaussian(v);
                        FloatVector grad = v.mul(e).fma(FloatVector.broadcast(F, INV_SQRT_2PI), normalCdf(v, e));
                        store(load(dy, i).mul(grad), dx, i);
                    }
                    for (; i < hi; i++) {
                        float v = get(x, i);
                        float e = gaussian(v);
                        float grad = Math.fma(v * e, INV_SQRT_2PI, normalCdf(v, e));
                        set(dx, i, get(dy, i) * grad);
                    }
                }
                case GELU_TANH -> {
                    for (; i < upper; i += F.length()) {
                        FloatVector v = load(x, i);
                        FloatVector e = expMinus2u(v);
                        FloatVector s = FloatVector.broadcast(F, 1f).div(e.add(1f));
                        FloatVector du = v.mul(v).fma(TANH_DB, TANH_DA);
                        FloatVector k = v.mul(du).mul(e.mul(s));
                        store(load(dy, i).mul(s.fma(k, s)), dx, i);
                    }
                    for (; i < hi; i++) {
                        float v = get(x, i);
                        float e = expMinus2u(v);
                        float s = 1f / (e + 1f);
                        float du = Math.fma(v * v, TANH_DB, TANH_DA);
                        float k = v * du * (e * s);
                        set(dx, i, get(dy, i) * Math.fma(s, k, s));
                    }
                }
            }
        });
    }

    @Override
    public void addForward(Tensor out, Tensor a, Tensor b) {
        String op = "addForward";
        CpuChecks.require(op, "a", a, DType.F32);
        CpuChecks.require(op, "b", b, DType.F32);
        CpuChecks.require(op, "out", out, DType.F32);
        OpShapes.sameShape(op, "b", b, "a", a);
        OpShapes.sameShape(op, "out", out, "a", a);
        add(out.host(), a.host(), b.host(), a.numel());
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        String op = "accumulate";
        CpuChecks.require(op, "dst", dst, DType.F32);
        CpuChecks.require(op, "src", src, DType.F32);
        OpShapes.sameShape(op, "src", src, "dst", dst);
        add(dst.host(), dst.host(), src.host(), dst.numel());
    }

    private void add(MemorySegment out, MemorySegment a, MemorySegment b, long n) {
        CpuPointwise.run(threads, n, (lo, hi) -> {
            long upper = lo + F.loopBound(hi - lo);
            long i = lo;
            for (; i < upper; i += F.length()) {
                store(load(a, i).add(load(b, i)), out, i);
            }
            for (; i < hi; i++) {
                set(out, i, get(a, i) + get(b, i));
            }
        });
    }

    // --- the pieces, each in a vector and a scalar form performing the same operations

    /** e^{−x²/2}: the Gaussian's exponential, shared by Φ and φ. */
    private static FloatVector gaussian(FloatVector x) {
        return VecMath.exp(x.mul(x).mul(-0.5f));
    }

    private static float gaussian(float x) {
        return VecMath.exp(x * x * -0.5f);
    }

    /** Φ(x) from e = e^{−x²/2}, by Abramowitz and Stegun 7.1.26 for erfc(|x|/√2). */
    private static FloatVector normalCdf(FloatVector x, FloatVector e) {
        FloatVector z = x.abs().mul(INV_SQRT_2);
        FloatVector t = FloatVector.broadcast(F, 1f).div(z.fma(AS_P, 1f));
        FloatVector p = t.fma(AS_A5, AS_A4);
        p = p.fma(t, FloatVector.broadcast(F, AS_A3));
        p = p.fma(t, FloatVector.broadcast(F, AS_A2));
        p = p.fma(t, FloatVector.broadcast(F, AS_A1));
        FloatVector q = p.mul(t).mul(e).mul(0.5f);
        return q.neg().add(1f).blend(q, x.compare(VectorOperators.LT, 0f));
    }

    private static float normalCdf(float x, float e) {
        float z = Math.abs(x) * INV_SQRT_2;
        float t = Math.fma(z, AS_P, 1f);
        t = 1f / t;
        float p = Math.fma(t, AS_A5, AS_A4);
        p = Math.fma(p, t, AS_A3);
        p = Math.fma(p, t, AS_A2);
        p = Math.fma(p, t, AS_A1);
        float q = p * t * e * 0.5f;
        return x < 0f ? q : -q + 1f;
    }

    /** e^{−2u}, u = √(2/π)·(x + 0.044715·x³). */
    private static FloatVector expMinus2u(FloatVector x) {
        FloatVector a = x.mul(x).fma(TANH_B, TANH_A);
        return VecMath.exp(x.mul(a));
    }

    private static float expMinus2u(float x) {
        float a = Math.fma(x * x, TANH_B, TANH_A);
        return VecMath.exp(x * a);
    }

    private static float get(MemorySegment s, long i) {
        return s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
    }

    private static void set(MemorySegment s, long i, float v) {
        s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
    }

    @Override
    public void dropoutForward(Tensor out, Tensor inp, float p, long seed) {
        dropout("dropoutForward", out, inp, p, seed);
    }

    @Override
    public void dropoutBackward(Tensor dInp, Tensor dOut, float p, long seed) {
        dropout("dropoutBackward", dInp, dOut, p, seed);
    }

    /** out[i] = keep(seed, i) ? x[i] / (1 - p) : 0; the backward is the same map applied to dOut. */
    private void dropout(String op, Tensor out, Tensor inp, float p, long seed) {
        CpuChecks.require(op, "inp", inp, DType.F32);
        CpuChecks.require(op, "out", out, DType.F32);
        OpShapes.sameShape(op, "out", out, "inp", inp);
        if (!(p >= 0f && p < 1f)) {
            throw new IllegalArgumentException(op + ": p must be in [0, 1), got " + p);
        }
        float scale = 1f / (1f - p);
        MemorySegment x = inp.host();
        MemorySegment y = out.host();
        CpuPointwise.run(threads, inp.numel(), (lo, hi) -> {
            for (long i = lo; i < hi; i++) {
                set(y, i, Dropout.keep(seed, i, p) ? get(x, i) * scale : 0f);
            }
        });
    }
}
