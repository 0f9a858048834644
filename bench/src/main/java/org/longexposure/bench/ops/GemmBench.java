package org.longexposure.bench.ops;

import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;
import org.longexposure.backend.cpu.CpuGemm;
import org.longexposure.backend.cpu.CpuThreads;
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
 * JMH throughput of {@link CpuGemm} (products per second; GFLOP/s = ops/s · 2·M·N·K / 1e9) on the shapes of a
 * LoRA step of a small OPT at 1024 token rows, with 1 and 2 threads. Shapes are {@code MxNxK:kind} as in
 * {@link GemmShape}. {@link GemmBenchMain} prints the same in GFLOP/s, next to unblocked baselines.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class GemmBench {
    @Param({"512x512x512:f32", "1024x512x512:f16t", "1024x2048x512:f16t", "1024x512x2048:f16t",
            "1024x50272x512:f16t", "1024x512x2048:f16", "1024x2048x512:f16", "1024x8x512:f32t", "1024x512x8:f32t",
            "8x512x1024:f32"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    private Arena arena;
    private CpuThreads pool;
    private CpuGemm gemm;
    private GemmShape s;
    private GemmShape.Operands ops;

    @Setup(Level.Trial)
    public void setUp() {
        s = GemmShape.parse(shape);
        arena = Arena.ofShared();
        ops = s.allocate(arena, 1);
        pool = new CpuThreads(threads);
        gemm = new CpuGemm(pool);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.close();
        arena.close();
    }

    @Benchmark
    public void gemm() {
        gemm.gemm(s.m(), s.n(), s.k(), 1f, ops.a(), ops.b(), ops.c(), 0, s.n(), false);
    }
}
