package org.longexposure.backend.cpu;

import static org.longexposure.backend.cpu.VecMath.F;
import static org.longexposure.backend.cpu.VecMath.ORDER;
import static org.longexposure.backend.cpu.VecMath.load;
import static org.longexposure.backend.cpu.VecMath.store;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import org.longexposure.backend.OpShapes;
import org.longexposure.backend.OptimOps;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Optimizer updates and gradient-norm reductions on the CPU over F32 tensors of any shape (elements flat).
 * Twins: {@code testkit.reference.RefAdamW} and {@code RefGradClip}.
 *
 * <p>AdamW follows {@code torch.optim.AdamW}'s single-tensor step in its order: {@code p ← p·(1 − lr·wd)};
 * {@code m ← β1·m + (1−β1)·g}; {@code v ← β2·v + (1−β2)·g²};
 * {@code p ← p − (lr/(1−β1^t))·m/(sqrt(v)/sqrt(1−β2^t) + eps)}. The scalars (1 − lr·wd, lr/(1−β1^t),
 * sqrt(1−β2^t)) are formed in double and rounded once to float, as torch does with Python floats; the per-element
 * math is float.
 *
 * <p>{@link #sumOfSquares} accumulates {@code (double) g · (double) g} in double over fixed chunks of
 * {@link #SUM_CHUNK} elements (in parallel), then adds the chunk sums in chunk order: the result depends only on
 * the data, never on the thread count. Element-wise ops split work in fixed blocks ({@link CpuPointwise}).
 */
public final class CpuOptim implements OptimOps {
    /** Elements per partial sum of {@link #sumOfSquares}. */
    static final int SUM_CHUNK = 1 << 14;
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    /** Floats loaded per double vector: the float species with D's lane count. */
    private static final VectorSpecies<Float> FH =
            VectorSpecies.of(float.class, VectorShape.forBitSize(D.vectorBitSize() / 2));

    private final CpuThreads threads;

    public CpuOptim(CpuThreads threads) {
        this.threads = threads;
    }

    @Override
    public void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                            float eps, float weightDecay, long step) {
        String op = "adamwUpdate";
        CpuChecks.require(op, "param", param, DType.F32);
        CpuChecks.require(op, "grad", grad, DType.F32);
        CpuChecks.require(op, "m", m, DType.F32);
        CpuChecks.require(op, "v", v, DType.F32);
        OpShapes.sameShape(op, "grad", grad, "param", param);
        OpShapes.sameShape(op, "m", m, "param", param);
        OpShapes.sameShape(op, "v", v, "param", param);
        if (step < 1) {
            throw new IllegalArgumentException(op + ": step is 1-based, got " + step);
        }
        float decay = (float) (1.0 - (double) lr * weightDecay);
        float b1 = beta1;
        float b2 = beta2;
        float oneMinusB1 = (float) (1.0 - beta1);
        float oneMinusB2 = (float) (1.0 - beta2);
        float stepSize = (float) (lr / (1.0 - StrictMath.pow(beta1, step)));
        float bc2Sqrt = (float) StrictMath.sqrt(1.0 - StrictMath.pow(beta2, step));
        MemorySegment p = param.host();
        MemorySegment g = grad.host();
        MemorySegment ms = m.host();
        MemorySegment vs = v.host();
        CpuPointwise.run(threads, param.numel(), (lo, hi) -> {
            long upper = lo + F.loopBound(hi - lo);
            long i = lo;
            for (; i < upper; i += F.length()) {
                FloatVector gv = load(g, i);
                FloatVector pv = load(p, i).mul(decay);
                FloatVector mv = load(ms, i).mul(b1).add(gv.mul(oneMinusB1));
                FloatVector vv = load(vs, i).mul(b2).add(gv.mul(gv).mul(oneMinusB2));
                FloatVector denom = vv.sqrt().div(bc2Sqrt).add(eps);
                pv = pv.sub(mv.div(denom).mul(stepSize));
                store(mv, ms, i);
                store(vv, vs, i);
                store(pv, p, i);
            }
            for (; i < hi; i++) {
                float gi = get(g, i);
                float pi = get(p, i) * decay;
                float mi = get(ms, i) * b1 + gi * oneMinusB1;
                float vi = get(vs, i) * b2 + gi * gi * oneMinusB2;
                float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
                pi = pi - mi / denom * stepSize;
                set(ms, i, mi);
                set(vs, i, vi);
                set(p, i, pi);
            }
        });
    }

    @Override
    public double sumOfSquares(Tensor grad) {
        String op = "sumOfSquares";
        CpuChecks.require(op, "grad", grad, DType.F32);
        MemorySegment g = grad.host();
        long n = grad.numel();
        long chunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
        double[] partial = new double[OpShapes.toInt(op, "chunks", chunks)];
        if (n < CpuPointwise.PARALLEL_MIN) {
            for (int c = 0; c < partial.length; c++) {
                partial[c] = chunkSumOfSquares(g, (long) c * SUM_CHUNK, Math.min(n, (long) (c + 1) * SUM_CHUNK));
            }
        } else {
            threads.parallelFor(partial.length, c ->
                    partial[c] = chunkSumOfSquares(g, (long) c * SUM_CHUNK, Math.min(n, (long) (c + 1) * SUM_CHUNK)));
        }
        double s = 0;
        for (double x : partial) {
            s += x;
        }
        return s;
    }

    /** Σ g² over [lo, hi) in double: FH-many floats widened per step, four accumulators, lanes added in order. */
    private static double chunkSumOfSquares(MemorySegment g, long lo, long hi) {
        int lanes = D.length();
        long upper = lo + ((hi - lo) / (4L * lanes)) * (4L * lanes);
        DoubleVector a0 = DoubleVector.zero(D);
        DoubleVector a1 = DoubleVector.zero(D);
        DoubleVector a2 = DoubleVector.zero(D);
        DoubleVector a3 = DoubleVector.zero(D);
        long i = lo;
        for (; i < upper; i += 4L * lanes) {
            DoubleVector d0 = widen(g, i);
            DoubleVector d1 = widen(g, i + lanes);
            DoubleVector d2 = widen(g, i + 2L * lanes);
            DoubleVector d3 = widen(g, i + 3L * lanes);
            a0 = d0.fma(d0, a0);
            a1 = d1.fma(d1, a1);
            a2 = d2.fma(d2, a2);
            a3 = d3.fma(d3, a3);
        }
        double[] buf = a0.add(a1).add(a2.add(a3)).toArray();
        double s = 0;
        for (double x : buf) {
            s += x;
        }
        for (; i < hi; i++) {
            double x = get(g, i);
            s += x * x;
        }
        return s;
    }

    private static DoubleVector widen(MemorySegment g, long i) {
        FloatVector f = FloatVector.fromMemorySegment(FH, g, i * Float.BYTES, ORDER);
        return (DoubleVector) f.convertShape(VectorOperators.F2D, D, 0);
    }

    @Override
    public void scale(Tensor t, float factor) {
        CpuChecks.require("scale", "t", t, DType.F32);
        MemorySegment s = t.host();
        CpuPointwise.run(threads, t.numel(), (lo, hi) -> {
            long upper = lo + F.loopBound(hi - lo);
            long i = lo;
            for (; i < upper; i += F.length()) {
                store(load(s, i).mul(factor), s, i);
            }
            for (; i < hi; i++) {
                set(s, i, get(s, i) * factor);
            }
        });
    }

    @Override
    public void zero(Tensor t) {
        CpuChecks.require("zero", "t", t, DType.F32);
        t.host().fill((byte) 0);
    }

    private static float get(MemorySegment s, long i) {
        return s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
    }

    private static void set(MemorySegment s, long i, float v) {
        s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
    }
}
