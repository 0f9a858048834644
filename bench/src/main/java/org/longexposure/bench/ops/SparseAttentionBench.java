package org.longexposure.bench.ops;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.cpu.CpuAttention;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.backend.cpu.CpuSparseAttention;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH time of one attention forward + backward (ms per pass) on the CPU at the shape of Long Exposure's operator
 * micro-benchmark: B = 1, NH = 8, T = 1024, HS = 64, block 64 (nQB = 16, 136 causal tiles per head). {@code layout}
 * {@code dense} is {@link CpuAttention}; a number d is {@link CpuSparseAttention} on
 * {@link BlockLayouts#random} with exactly round(d·136) causal tiles per head (nothing forced, so the density is
 * exact; 1.0 is the full layout). The dense baseline runs in the same run as the sparse points, as the bench rules
 * ask. Work of the sparse op should scale with d; the full layout should cost what dense does.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp 'bench/target/classes:bench/target/lib/*:core/target/classes' \
 *     org.openjdk.jmh.Main SparseAttentionBench
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class SparseAttentionBench {
    private static final int B = 1;
    private static final int NH = 8;
    private static final int T = 1024;
    private static final int HS = 64;
    private static final int BLOCK = 64;

    @Param({"dense", "1.0", "0.5", "0.25", "0.13", "0.05"})
    public String layout;

    @Param({"2"})
    public int threads;

    private Arena arena;
    private CpuThreads pool;
    private CpuBackend layouts;
    private CpuAttention dense;
    private CpuSparseAttention sparse;
    private BlockLayout blockLayout;
    private Tensor q;
    private Tensor k;
    private Tensor v;
    private Tensor dOut;
    private Tensor keyMask;
    private Tensor out;
    private Tensor lse;
    private Tensor dQ;
    private Tensor dK;
    private Tensor dV;
    private float scale;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        pool = new CpuThreads(threads);
        layouts = new CpuBackend(1);
        dense = new CpuAttention(pool);
        sparse = new CpuSparseAttention(pool);
        SplittableRandom rnd = new SplittableRandom(42);
        q = normal(rnd);
        k = normal(rnd);
        v = normal(rnd);
        dOut = normal(rnd);
        int[] ones = new int[B * T];
        Arrays.fill(ones, 1);
        keyMask = Tensor.allocateHost(arena, DType.I32, B, T).copyFrom(ones);
        out = Tensor.allocateHost(arena, DType.F32, B, T, NH * HS);
        lse = Tensor.allocateHost(arena, DType.F32, B, NH, T);
        dQ = Tensor.allocateHost(arena, DType.F32, B, T, NH * HS);
        dK = Tensor.allocateHost(arena, DType.F32, B, T, NH * HS);
        dV = Tensor.allocateHost(arena, DType.F32, B, T, NH * HS);
        scale = (float) (1 / Math.sqrt(HS));
        if (!layout.equals("dense")) {
            double d = Double.parseDouble(layout);
            blockLayout = d >= 1 ? BlockLayouts.full(NH, T, BLOCK, layouts)
                    : BlockLayouts.random(NH, T, BLOCK, d, 7, false, false, layouts);
            System.out.printf("%nlayout %s: %.4f of the causal tiles listed%n", layout,
                    BlockLayouts.density(blockLayout));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        layouts.close();
        pool.close();
        arena.close();
    }

    @Benchmark
    public void forwardBackward() {
        if (blockLayout == null) {
            dense.attentionForward(out, lse, q, k, v, keyMask, NH, scale);
            dense.attentionBackward(dQ, dK, dV, dOut, out, lse, q, k, v, keyMask, NH, scale);
        } else {
            sparse.blockSparseAttentionForward(out, lse, q, k, v, keyMask, NH, scale, blockLayout);
            sparse.blockSparseAttentionBackward(dQ, dK, dV, dOut, out, lse, q, k, v, keyMask, NH, scale,
                    blockLayout);
        }
    }

    private Tensor normal(SplittableRandom rnd) {
        float[] a = new float[B * T * NH * HS];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return Tensor.allocateHost(arena, DType.F32, B, T, NH * HS).copyFrom(a);
    }
}
