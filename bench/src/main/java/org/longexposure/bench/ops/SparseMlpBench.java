package org.longexposure.bench.ops;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.longexposure.backend.Activation;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.cpu.CpuActivation;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.backend.cpu.CpuGemm;
import org.longexposure.backend.cpu.CpuLinear;
import org.longexposure.backend.cpu.CpuSparseMlp;
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.backend.cpu.MatrixRef;
import org.longexposure.sparsity.mask.NeuronLayouts;
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
 * JMH time of one ReLU MLP forward + backward (ms per pass; input and both bias gradients, no weight gradients) on
 * the CPU at an OPT-1.3B-like layer scaled down for the CPU: N = 512 rows, C = 1024, H = 4096, F16 weights in HF
 * layout, neuron block BN = 128 (32 blocks), one token block (the micro-batch union of design note 4.4).
 * {@code layout}:
 * <ul>
 *   <li>{@code dense}: fc1 → ReLU → fc2 through {@link CpuLinear} and {@link CpuActivation}, the baseline, measured
 *       in the same run as the sparse points;</li>
 *   <li>a number d: {@link CpuSparseMlp} on {@link NeuronLayouts#random} with round(d·32) random blocks (1.0 is the
 *       full layout, whose consecutive blocks are read in place; the others are copied into packed slabs);</li>
 *   <li>{@code perblock-d}: the alternative without copies, one GEMM per listed block on the weight slabs in place
 *       (M = N, N or K = BN), on the same layout; kept here to compare against the packed form.</li>
 * </ul>
 * Work should scale with d, and the full layout should cost what dense does.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp 'bench/target/classes:bench/target/lib/*:core/target/classes' \
 *     org.openjdk.jmh.Main SparseMlpBench
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class SparseMlpBench {
    private static final int N = 512;
    private static final int C = 1024;
    private static final int H = 4096;
    private static final int BN = 128;
    private static final String PER_BLOCK = "perblock-";

    @Param({"dense", "1.0", "0.5", "0.25", "0.13", "0.05", "perblock-0.5", "perblock-0.25", "perblock-0.05"})
    public String layout;

    @Param({"2"})
    public int threads;

    private Arena arena;
    private CpuThreads pool;
    private CpuBackend layouts;
    private CpuGemm gemm;
    private CpuLinear linear;
    private CpuActivation activation;
    private CpuSparseMlp sparse;
    private NeuronLayout neuronLayout;
    private boolean perBlock;
    private int[] listed;
    private Tensor x;          // (N, C)
    private Tensor w1;         // (H, C) F16
    private Tensor b1;         // (H)
    private Tensor w2;         // (C, H) F16
    private Tensor b2;         // (C)
    private Tensor dOut;       // (N, C)
    private Tensor out;        // (N, C)
    private Tensor dInp;       // (N, C)
    private Tensor dB1;        // (H)
    private Tensor dB2;        // (C)
    private Tensor pre;        // (N, H), dense: fc1 output
    private Tensor act;        // (N, H), dense: ReLU output
    private Tensor dAct;       // (N, H)
    private Tensor hidden;     // (N, maxBlocks·BN), sparse: compacted hidden
    private Tensor dHidden;    // (N, maxBlocks·BN), per-block: compacted dH
    private Tensor dB1Compact; // (maxBlocks·BN), per-block: bias gradient in compacted order

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        pool = new CpuThreads(threads);
        layouts = new CpuBackend(1);
        gemm = new CpuGemm(pool);
        linear = new CpuLinear(pool, gemm);
        activation = new CpuActivation(pool);
        sparse = new CpuSparseMlp(pool, gemm);
        SplittableRandom rnd = new SplittableRandom(42);
        x = f32(rnd, 1, N, C);
        w1 = f16(rnd, 1 / Math.sqrt(C), H, C);
        b1 = f32(rnd, 0.1, H);
        w2 = f16(rnd, 1 / Math.sqrt(H), C, H);
        b2 = f32(rnd, 0.1, C);
        dOut = f32(rnd, 1, N, C);
        out = Tensor.allocateHost(arena, DType.F32, N, C);
        dInp = Tensor.allocateHost(arena, DType.F32, N, C);
        dB1 = Tensor.allocateHost(arena, DType.F32, H);
        dB2 = Tensor.allocateHost(arena, DType.F32, C);
        if (layout.equals("dense")) {
            pre = Tensor.allocateHost(arena, DType.F32, N, H);
            act = Tensor.allocateHost(arena, DType.F32, N, H);
            dAct = Tensor.allocateHost(arena, DType.F32, N, H);
            return;
        }
        perBlock = layout.startsWith(PER_BLOCK);
        double d = Double.parseDouble(perBlock ? layout.substring(PER_BLOCK.length()) : layout);
        neuronLayout = d >= 1 ? NeuronLayouts.full(N, N, H, BN, layouts)
                : NeuronLayouts.random(N, N, H, BN, d, 7, layouts);
        int width = neuronLayout.maxBlocks() * BN;
        hidden = Tensor.allocateHost(arena, DType.F32, N, width);
        listed = new int[neuronLayout.maxBlocks()];
        for (int q = 0; q < listed.length; q++) {
            listed[q] = neuronLayout.blockIdx().getInt(q);
        }
        if (perBlock) {
            dHidden = Tensor.allocateHost(arena, DType.F32, N, width);
            dB1Compact = Tensor.allocateHost(arena, DType.F32, width);
        }
        System.out.printf("%nlayout %s: %d of %d neuron blocks, density %.4f%n", layout, listed.length, H / BN,
                NeuronLayouts.density(neuronLayout, H));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        layouts.close();
        pool.close();
        arena.close();
    }

    @Benchmark
    public void forwardBackward() {
        if (neuronLayout == null) {
            linear.linearForward(pre, x, w1, b1);
            activation.activationForward(act, pre, Activation.RELU);
            linear.linearForward(out, act, w2, b2);
            linear.linearBackwardInput(dAct, dOut, w2, 1f, false);
            activation.activationBackward(pre, dAct, act, Activation.RELU);
            linear.linearBackwardInput(dInp, pre, w1, 1f, false);
            linear.linearBackwardWeight(null, dB1, pre, act, 1f);
            linear.linearBackwardWeight(null, dB2, dOut, act, 1f);
        } else if (perBlock) {
            perBlockForwardBackward();
        } else {
            sparse.sparseMlpForward(out, hidden, x, w1, b1, w2, b2, neuronLayout);
            sparse.sparseMlpBackward(dInp, dB1, dB2, dOut, hidden, w1, w2, neuronLayout);
        }
    }

    /**
     * The same computation as one GEMM per listed block q (block j): fc1 into compacted columns [q·BN, +BN) from the
     * contiguous row slab W1[j·BN:(j+1)·BN, :]; fc2 and dInp accumulating K = BN slices; dH per column slab of W2.
     * The bias gradient of the compacted columns is summed, not scattered (same cost).
     */
    private void perBlockForwardBackward() {
        int width = listed.length * BN;
        MemorySegment xs = x.host();
        MemorySegment hs = hidden.host();
        MemorySegment dhs = dHidden.host();
        for (int i = 0; i < N; i++) {
            for (int q = 0; q < listed.length; q++) {
                copyFloats(b1.host(), (long) listed[q] * BN, hs, (long) i * width + (long) q * BN, BN);
            }
        }
        for (int q = 0; q < listed.length; q++) {
            MatrixRef w1Slab = MatrixRef.rowMajor(w1.host(), DType.F16, (long) listed[q] * BN * C, C);
            gemm.gemm(N, BN, C, 1f, MatrixRef.rowMajor(xs, DType.F32, 0, C), w1Slab.transpose(), hs, (long) q * BN,
                    width, true);
        }
        activation.activationForward(hidden, hidden, Activation.RELU);
        for (int i = 0; i < N; i++) {
            copyFloats(b2.host(), 0, out.host(), (long) i * C, C);
        }
        for (int q = 0; q < listed.length; q++) {
            MatrixRef w2Slab = MatrixRef.rowMajor(w2.host(), DType.F16, (long) listed[q] * BN, H);
            gemm.gemm(N, C, BN, 1f, MatrixRef.rowMajor(hs, DType.F32, (long) q * BN, width), w2Slab.transpose(),
                    out.host(), 0, C, true);
        }
        for (int q = 0; q < listed.length; q++) {
            MatrixRef w2Slab = MatrixRef.rowMajor(w2.host(), DType.F16, (long) listed[q] * BN, H);
            gemm.gemm(N, BN, C, 1f, MatrixRef.rowMajor(dOut.host(), DType.F32, 0, C), w2Slab, dhs, (long) q * BN,
                    width, false);
        }
        activation.activationBackward(dHidden, dHidden, hidden, Activation.RELU);
        for (int q = 0; q < listed.length; q++) {
            MatrixRef w1Slab = MatrixRef.rowMajor(w1.host(), DType.F16, (long) listed[q] * BN * C, C);
            gemm.gemm(N, C, BN, 1f, MatrixRef.rowMajor(dhs, DType.F32, (long) q * BN, width), w1Slab, dInp.host(),
                    0, C, q > 0);
        }
        linear.linearBackwardWeight(null, dB1Compact, dHidden, hidden, 1f);
        linear.linearBackwardWeight(null, dB2, dOut, x, 1f);
    }

    /** Copies count floats from float index srcIndex of src to float index dstIndex of dst. */
    private static void copyFloats(MemorySegment src, long srcIndex, MemorySegment dst, long dstIndex, int count) {
        MemorySegment.copy(src, srcIndex * Float.BYTES, dst, dstIndex * Float.BYTES, (long) count * Float.BYTES);
    }

    private Tensor f32(SplittableRandom rnd, double std, long... dims) {
        Tensor t = Tensor.allocateHost(arena, DType.F32, dims);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) (std * rnd.nextGaussian()));
        }
        return t;
    }

    private Tensor f16(SplittableRandom rnd, double std, long... dims) {
        Tensor t = Tensor.allocateHost(arena, DType.F16, dims);
        for (long i = 0; i < t.numel(); i++) {
            t.host().setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                    Float.floatToFloat16((float) (std * rnd.nextGaussian())));
        }
        return t;
    }
}
