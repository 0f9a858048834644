package org.longexposure.backend.cpu;

import static org.longexposure.backend.cpu.VecMath.F;
import static org.longexposure.backend.cpu.VecMath.load;
import static org.longexposure.backend.cpu.VecMath.store;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import org.longexposure.backend.NormOps;
import org.longexposure.backend.OpShapes;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * LayerNorm over the last dimension on the CPU, as {@code torch.nn.LayerNorm}: per row of C,
 * {@code mean = Σx/C}, {@code var = Σ(x − mean)²/C}, {@code rstd = 1/sqrt(var + eps)},
 * {@code out = (x − mean)·rstd·weight + bias}. inp/out (M, C) (any leading dims, flattened to rows), weight and
 * bias (C) or null; saves mean and rstd (M) for the backward. Twin: {@code testkit.reference.RefLayerNorm}.
 *
 * <p>Backward, with {@code xhat = (x − mean)·rstd} and {@code g = dOut·weight}:
 * {@code dInp = rstd·(g − mean(g) − xhat·mean(g·xhat))}; {@code dWeight += Σ_rows dOut·xhat};
 * {@code dBias += Σ_rows dOut}.
 *
 * <p>Threads and order: the forward and dInp run over rows in parallel, each row entirely on one thread; the
 * row sums add float vector partials of at most {@link #FLUSH} elements per lane into a double in lane order.
 * dWeight and dBias are computed by column blocks in parallel, each column summing its rows in row order
 * (float partials over {@link #ROW_FLUSH} rows, added in double). Every output element therefore sees the same
 * operations in the same order whatever the thread count. The parameter gradients are computed before dInp is
 * written, so dInp may even be dOut's buffer when not accumulating.
 */
public final class CpuNorm implements NormOps {
    /** Vectors accumulated in float before a row sum is flushed to double. */
    private static final int FLUSH = 8;
    /** Rows accumulated in float before a column sum of dWeight/dBias is flushed to double. */
    private static final int ROW_FLUSH = 16;
    /** Columns per task of the parameter-gradient pass: a multiple of every vector length. */
    private static final int COL_BLOCK = 128;
    /** Below this many elements the op runs on the calling thread. */
    private static final long PARALLEL_MIN = 1 << 15;

    private final CpuThreads threads;

    public CpuNorm(CpuThreads threads) {
        this.threads = threads;
    }

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor inp, Tensor weight, Tensor bias,
                                 float eps) {
        String op = "layerNormForward";
        CpuChecks.require(op, "inp", inp, DType.F32);
        CpuChecks.require(op, "out", out, DType.F32);
        OpShapes.sameShape(op, "out", out, "inp", inp);
        int c = OpShapes.lastDim(op, "inp", inp);
        int m = OpShapes.toInt(op, "rows", inp.shape().rows());
        checkRowVector(op, "mean", mean, m, inp);
        checkRowVector(op, "rstd", rstd, m, inp);
        checkParam(op, "weight", weight, c, inp);
        checkParam(op, "bias", bias, c, inp);
        if (c == 0) {
            return;
        }
        MemorySegment x = inp.host();
        MemorySegment y = out.host();
        MemorySegment mu = mean.host();
        MemorySegment rs = rstd.host();
        MemorySegment w = weight == null ? null : weight.host();
        MemorySegment b = bias == null ? null : bias.host();
        forRows(m, c, (lo, hi) -> {
            float[] buf = new float[F.length()];
            for (int r = lo; r < hi; r++) {
                forwardRow(y, mu, rs, x, w, b, eps, r, c, buf);
            }
        });
    }

    private static void forwardRow(MemorySegment y, MemorySegment mu, MemorySegment rs, MemorySegment x,
                                   MemorySegment w, MemorySegment b, float eps, int r, int c, float[] buf) {
        long base = (long) r * c;
        int upper = F.loopBound(c);
        int step = F.length();
        // mean
        double s = 0;
        int j = 0;
        while (j < upper) {
            FloatVector acc = FloatVector.zero(F);
            int end = Math.min(upper, j + FLUSH * step);
            for (; j < end; j += step) {
                acc = acc.add(load(x, base + j));
            }
            s = VecMath.addLanes(s, acc, buf);
        }
        for (; j < c; j++) {
            s += get(x, base + j);
        }
        float meanF = (float) (s / c);
        // biased variance, two-pass around the float mean
        double ss = 0;
        j = 0;
        while (j < upper) {
            FloatVector acc = FloatVector.zero(F);
            int end = Math.min(upper, j + FLUSH * step);
            for (; j < end; j += step) {
                FloatVector d = load(x, base + j).sub(meanF);
                acc = d.fma(d, acc);
            }
            ss = VecMath.addLanes(ss, acc, buf);
        }
        for (; j < c; j++) {
            float d = get(x, base + j) - meanF;
            ss += d * d;
        }
        float rstdF = (float) (1.0 / Math.sqrt(ss / c + eps));
        set(mu, r, meanF);
        set(rs, r, rstdF);
        // normalise and apply the affine transform
        for (j = 0; j < upper; j += step) {
            FloatVector n = load(x, base + j).sub(meanF).mul(rstdF);
            if (w != null) {
                n = b != null ? n.fma(load(w, j), load(b, j)) : n.mul(load(w, j));
            } else if (b != null) {
                n = n.add(load(b, j));
            }
            store(n, y, base + j);
        }
        for (; j < c; j++) {
            float n = (get(x, base + j) - meanF) * rstdF;
            if (w != null) {
                n = b != null ? Math.fma(n, get(w, j), get(b, j)) : n * get(w, j);
            } else if (b != null) {
                n = n + get(b, j);
            }
            set(y, base + j, n);
        }
    }

    @Override
    public void layerNormBackward(Tensor dInp, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor inp, Tensor mean,
                                  Tensor rstd, Tensor weight, boolean accumulate) {
        String op = "layerNormBackward";
        CpuChecks.require(op, "inp", inp, DType.F32);
        CpuChecks.require(op, "dOut", dOut, DType.F32);
        CpuChecks.require(op, "dInp", dInp, DType.F32);
        OpShapes.sameShape(op, "dOut", dOut, "inp", inp);
        OpShapes.sameShape(op, "dInp", dInp, "inp", inp);
        int c = OpShapes.lastDim(op, "inp", inp);
        int m = OpShapes.toInt(op, "rows", inp.shape().rows());
        checkRowVector(op, "mean", mean, m, inp);
        checkRowVector(op, "rstd", rstd, m, inp);
        checkParam(op, "weight", weight, c, inp);
        checkParam(op, "dWeight", dWeight, c, inp);
        checkParam(op, "dBias", dBias, c, inp);
        if (c == 0 || m == 0) {
            return;
        }
        MemorySegment x = inp.host();
        MemorySegment dy = dOut.host();
        MemorySegment dx = dInp.host();
        MemorySegment mu = mean.host();
        MemorySegment rs = rstd.host();
        MemorySegment w = weight == null ? null : weight.host();
        if (dWeight != null || dBias != null) {
            MemorySegment dw = dWeight == null ? null : dWeight.host();
            MemorySegment db = dBias == null ? null : dBias.host();
            int blocks = (c + COL_BLOCK - 1) / COL_BLOCK;
            if ((long) m * c < PARALLEL_MIN) {
                for (int blk = 0; blk < blocks; blk++) {
                    paramGradBlock(dw, db, dy, x, mu, rs, m, c, blk);
                }
            } else {
                threads.parallelFor(blocks, blk -> paramGradBlock(dw, db, dy, x, mu, rs, m, c, blk));
            }
        }
        forRows(m, c, (lo, hi) -> {
            float[] buf = new float[F.length()];
            for (int r = lo; r < hi; r++) {
                inputGradRow(dx, dy, x, mu, rs, w, accumulate, r, c, buf);
            }
        });
    }

    private static void inputGradRow(MemorySegment dx, MemorySegment dy, MemorySegment x, MemorySegment mu,
                                     MemorySegment rs, MemorySegment w, boolean accumulate, int r, int c,
                                     float[] buf) {
        long base = (long) r * c;
        float meanF = get(mu, r);
        float rstdF = get(rs, r);
        int upper = F.loopBound(c);
        int step = F.length();
        // Σ g and Σ g·xhat over the row
        double sg = 0;
        double sgx = 0;
        int j = 0;
        while (j < upper) {
            FloatVector accG = FloatVector.zero(F);
            FloatVector accGX = FloatVector.zero(F);
            int end = Math.min(upper, j + FLUSH * step);
            for (; j < end; j += step) {
                FloatVector xhat = load(x, base + j).sub(meanF).mul(rstdF);
                FloatVector g = w == null ? load(dy, base + j) : load(dy, base + j).mul(load(w, j));
                accG = accG.add(g);
                accGX = g.fma(xhat, accGX);
            }
            sg = VecMath.addLanes(sg, accG, buf);
            sgx = VecMath.addLanes(sgx, accGX, buf);
        }
        for (; j < c; j++) {
            float xhat = (get(x, base + j) - meanF) * rstdF;
            float g = w == null ? get(dy, base + j) : get(dy, base + j) * get(w, j);
            sg += g;
            sgx += g * xhat;
        }
        float meanG = (float) (sg / c);
        float meanGX = (float) (sgx / c);
        // dInp = rstd·(g − mean(g) − xhat·mean(g·xhat))
        for (j = 0; j < upper; j += step) {
            FloatVector xhat = load(x, base + j).sub(meanF).mul(rstdF);
            FloatVector g = w == null ? load(dy, base + j) : load(dy, base + j).mul(load(w, j));
            FloatVector d = xhat.fma(FloatVector.broadcast(F, -meanGX), g.sub(meanG)).mul(rstdF);
            if (accumulate) {
                d = load(dx, base + j).add(d);
            }
            store(d, dx, base + j);
        }
        for (; j < c; j++) {
            float xhat = (get(x, base + j) - meanF) * rstdF;
            float g = w == null ? get(dy, base + j) : get(dy, base + j) * get(w, j);
            float d = Math.fma(xhat, -meanGX, g - meanG) * rstdF;
            if (accumulate) {
                d = get(dx, base + j) + d;
            }
            set(dx, base + j, d);
        }
    }

    /** dWeight, dBias += column sums over all rows for columns [blk·COL_BLOCK, min(C, …)), rows in order. */
    private static void paramGradBlock(MemorySegment dw, MemorySegment db, MemorySegment dy, MemorySegment x,
                                       MemorySegment mu, MemorySegment rs, int m, int c, int blk) {
        int c0 = blk * COL_BLOCK;
        int width = Math.min(COL_BLOCK, c - c0);
        int upper = F.loopBound(width);
        int step = F.length();
        float[] accW = new float[width];
        float[] accB = new float[width];
        double[] totW = new double[width];
        double[] totB = new double[width];
        for (int r = 0; r < m; r++) {
            long base = (long) r * c + c0;
            float meanF = get(mu, r);
            float rstdF = get(rs, r);
            int j = 0;
            for (; j < upper; j += step) {
                FloatVector g = load(dy, base + j);
                if (dw != null) {
                    FloatVector xhat = load(x, base + j).sub(meanF).mul(rstdF);
                    g.fma(xhat, FloatVector.fromArray(F, accW, j)).intoArray(accW, j);
                }
                g.add(FloatVector.fromArray(F, accB, j)).intoArray(accB, j);
            }
            for (; j < width; j++) {
                float g = get(dy, base + j);
                if (dw != null) {
                    float xhat = (get(x, base + j) - meanF) * rstdF;
                    accW[j] = Math.fma(g, xhat, accW[j]);
                }
                accB[j] = g + accB[j];
            }
            if ((r + 1) % ROW_FLUSH == 0 || r == m - 1) {
                for (j = 0; j < width; j++) {
                    totW[j] += accW[j];
                    totB[j] += accB[j];
                }
                Arrays.fill(accW, 0f);
                Arrays.fill(accB, 0f);
            }
        }
        for (int j = 0; j < width; j++) {
            if (dw != null) {
                set(dw, c0 + j, (float) (get(dw, c0 + j) + totW[j]));
            }
            if (db != null) {
                set(db, c0 + j, (float) (get(db, c0 + j) + totB[j]));
            }
        }
    }

    private void forRows(int m, int c, CpuThreads.RangeBody body) {
        if ((long) m * c < PARALLEL_MIN) {
            body.run(0, m);
        } else {
            threads.parallelChunks(m, body);
        }
    }

    private static void checkRowVector(String op, String name, Tensor t, int m, Tensor inp) {
        CpuChecks.require(op, name, t, DType.F32);
        OpShapes.numel(op, name, t, m, "(M) for inp of shape " + inp.shape());
    }

    private static void checkParam(String op, String name, Tensor t, int c, Tensor inp) {
        if (t != null) {
            CpuChecks.require(op, name, t, DType.F32);
            OpShapes.numel(op, name, t, c, "(C) for inp of shape " + inp.shape());
        }
    }

    private static float get(MemorySegment s, long i) {
        return s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
    }

    private static void set(MemorySegment s, long i, float v) {
        s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
    }
}
