package org.longexposure.backend.cpu;

import static org.longexposure.backend.cpu.VecMath.F;
import static org.longexposure.backend.cpu.VecMath.load;
import static org.longexposure.backend.cpu.VecMath.store;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import org.longexposure.backend.LossOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Cross-entropy over the vocabulary on the CPU, as {@code torch.nn.functional.cross_entropy} with label
 * smoothing ε and per-row weights: per row of logits z (V), {@code lse = log Σ exp z} and
 * {@code loss = lse − (1−ε)·z_y − ε/V·Σ_c z_c}; rows with weight 0 are ignored (loss 0, gradient 0, their target
 * is never read, so it may be −100). Backward: {@code dz_c = w·(exp(z_c − lse) − ε/V − (1−ε)·[c = y])}.
 * logits (N, V) (any leading dims); losses, lse, targets, weights (N); saves lse. Twin:
 * {@code testkit.reference.RefCrossEntropy}.
 *
 * <p>Memory: a row of V = 50272 floats is 200 KB, so the forward reads it twice (max and Σz, then Σ exp(z − max))
 * while it sits in L2, and the backward once, writing each element right after reading it — which is what makes
 * {@code dLogits == logits} safe. Row sums add float vector partials of at most {@link #FLUSH} vectors into a
 * double in lane order; the exponential is {@link VecMath#exp}. Rows run in parallel, each on one thread, and the
 * returned total adds the rows' double losses in row order, so every result is independent of the thread count.
 */
public final class CpuLoss implements LossOps {
    /** Vectors accumulated in float before a row sum is flushed to double. */
    private static final int FLUSH = 8;
    /** Below this many logits the op runs on the calling thread. */
    private static final long PARALLEL_MIN = 1 << 15;

    private final CpuThreads threads;

    public CpuLoss(CpuThreads threads) {
        this.threads = threads;
    }

    @Override
    public double crossEntropyForward(Tensor losses, Tensor lse, Tensor logits, Tensor targets, Tensor weights,
                                      float labelSmoothing) {
        String op = "crossEntropyForward";
        int v = checkLogits(op, "logits", logits);
        int n = OpShapes.toInt(op, "rows", logits.shape().rows());
        checkRowVector(op, "losses", losses, DType.F32, n, logits);
        checkRowVector(op, "lse", lse, DType.F32, n, logits);
        checkTargetsAndWeights(op, targets, weights, logits, n, v, labelSmoothing);
        MemorySegment z = logits.host();
        MemorySegment ls = losses.host();
        MemorySegment lseSeg = lse.host();
        MemorySegment ys = targets.host();
        MemorySegment ws = weights.host();
        double[] rowLoss = new double[n];
        forRows(n, v, (lo, hi) -> {
            float[] buf = new float[F.length()];
            for (int i = lo; i < hi; i++) {
                float w = getF(ws, i);
                long base = (long) i * v;
                boolean smooth = labelSmoothing != 0f && w != 0f;
                // pass 1: row max (and Σz for the smoothing term)
                int upper = F.loopBound(v);
                FloatVector mx = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
                double sumZ = 0;
                int j = 0;
                while (j < upper) {
                    FloatVector acc = FloatVector.zero(F);
                    int end = Math.min(upper, j + FLUSH * F.length());
                    for (; j < end; j += F.length()) {
                        FloatVector x = load(z, base + j);
                        mx = mx.max(x);
                        acc = acc.add(x);
                    }
                    if (smooth) {
                        sumZ = VecMath.addLanes(sumZ, acc, buf);
                    }
                }
                float max = upper > 0 ? mx.reduceLanes(VectorOperators.MAX) : Float.NEGATIVE_INFINITY;
                for (; j < v; j++) {
                    float x = getF(z, base + j);
                    max = Math.max(max, x);
                    sumZ += x;
                }
                // pass 2: Σ exp(z − max)
                double sumExp = 0;
                j = 0;
                while (j < upper) {
                    FloatVector acc = FloatVector.zero(F);
                    int end = Math.min(upper, j + FLUSH * F.length());
                    for (; j < end; j += F.length()) {
                        acc = acc.add(VecMath.exp(load(z, base + j).sub(max)));
                    }
                    sumExp = VecMath.addLanes(sumExp, acc, buf);
                }
                for (; j < v; j++) {
                    sumExp += VecMath.exp(getF(z, base + j) - max);
                }
                double rowLse = max + StrictMath.log(sumExp);
                double loss = 0;
                if (w != 0f) {
                    float zy = getF(z, base + ys.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i));
                    loss = rowLse - (1.0 - labelSmoothing) * zy - (double) labelSmoothing / v * sumZ;
                }
                rowLoss[i] = loss;
                setF(ls, i, (float) loss);
                setF(lseSeg, i, (float) rowLse);
            }
        });
        double total = 0;
        for (int i = 0; i < n; i++) {
            total += getF(ws, i) * rowLoss[i];
        }
        return total;
    }

    @Override
    public void crossEntropyBackward(Tensor dLogits, Tensor logits, Tensor lse, Tensor targets, Tensor weights,
                                     float labelSmoothing) {
        String op = "crossEntropyBackward";
        int v = checkLogits(op, "logits", logits);
        CpuChecks.require(op, "dLogits", dLogits, DType.F32);
        OpShapes.sameShape(op, "dLogits", dLogits, "logits", logits);
        int n = OpShapes.toInt(op, "rows", logits.shape().rows());
        checkRowVector(op, "lse", lse, DType.F32, n, logits);
        checkTargetsAndWeights(op, targets, weights, logits, n, v, labelSmoothing);
        MemorySegment z = logits.host();
        MemorySegment dz = dLogits.host();
        MemorySegment lseSeg = lse.host();
        MemorySegment ys = targets.host();
        MemorySegment ws = weights.host();
        float smoothPerClass = (float) ((double) labelSmoothing / v);
        float targetMass = 1f - labelSmoothing;
        forRows(n, v, (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                float w = getF(ws, i);
                long base = (long) i * v;
                if (w == 0f) {
                    dz.asSlice(base * Float.BYTES, (long) v * Float.BYTES).fill((byte) 0);
                    continue;
                }
                float rowLse = getF(lseSeg, i);
                int y = ys.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i);
                // read z_y before the pass below may overwrite it (dLogits == logits)
                float zy = getF(z, base + y);
                int upper = F.loopBound(v);
                int j = 0;
                for (; j < upper; j += F.length()) {
                    FloatVector p = VecMath.exp(load(z, base + j).sub(rowLse));
                    store(p.sub(smoothPerClass).mul(w), dz, base + j);
                }
                for (; j < v; j++) {
                    float p = VecMath.exp(getF(z, base + j) - rowLse);
                    setF(dz, base + j, (p - smoothPerClass) * w);
                }
                float py = VecMath.exp(zy - rowLse);
                setF(dz, base + y, (py - smoothPerClass - targetMass) * w);
            }
        });
    }

    private void forRows(int n, int v, CpuThreads.RangeBody body) {
        if ((long) n * v < PARALLEL_MIN) {
            body.run(0, n);
        } else {
            threads.parallelChunks(n, body);
        }
    }

    private static int checkLogits(String op, String name, Tensor logits) {
        CpuChecks.require(op, name, logits, DType.F32);
        return OpShapes.vocab(op, name, logits);
    }

    private static void checkRowVector(String op, String name, Tensor t, DType d, int n, Tensor logits) {
        CpuChecks.require(op, name, t, d);
        OpShapes.numel(op, name, t, n, "(N) for logits of shape " + logits.shape());
    }

    /** Checks shapes, ε ∈ [0, 1], and that every row with a non-zero weight has a target in [0, V). */
    private static void checkTargetsAndWeights(String op, Tensor targets, Tensor weights, Tensor logits, int n,
                                               int v, float labelSmoothing) {
        checkRowVector(op, "targets", targets, DType.I32, n, logits);
        checkRowVector(op, "weights", weights, DType.F32, n, logits);
        if (!(labelSmoothing >= 0f && labelSmoothing <= 1f)) {
            throw new IllegalArgumentException(op + ": labelSmoothing must be in [0, 1], got " + labelSmoothing);
        }
        MemorySegment ys = targets.host();
        MemorySegment ws = weights.host();
        for (int i = 0; i < n; i++) {
            int y = ys.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i);
            if (getF(ws, i) != 0f && (y < 0 || y >= v)) {
                throw new IllegalArgumentException(op + ": targets[" + i + "] = " + y + " is outside [0, " + v
                        + ") on a row with weight " + getF(ws, i) + " (ignored rows need weight 0)");
            }
        }
    }

    private static float getF(MemorySegment s, long i) {
        return s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
    }

    private static void setF(MemorySegment s, long i, float v) {
        s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
    }
}
