package org.longexposure.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.IntConsumer;
import org.longexposure.backend.ActivationOps;
import org.longexposure.backend.AttentionOps;
import org.longexposure.backend.Backend;
import org.longexposure.backend.EmbeddingOps;
import org.longexposure.backend.LinearOps;
import org.longexposure.backend.LossOps;
import org.longexposure.backend.NormOps;
import org.longexposure.backend.OptimOps;
import org.longexposure.backend.PredictOps;
import org.longexposure.backend.SparseOps;
import org.longexposure.backend.Tensors;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The pure-Java backend: Vector API kernels on a thread pool this instance owns. Tensors it allocates live in one
 * shared arena closed with the backend. All ops are synchronous, so {@link #sync()} does nothing.
 */
public final class CpuBackend implements Backend {
    private final CpuThreads threads;
    private final Arena arena = Arena.ofShared();
    private final CpuLinear linear;
    private final CpuAttention attention;
    private final CpuNorm norm;
    private final CpuActivation activation;
    private final CpuEmbedding embedding;
    private final CpuLoss loss;
    private final CpuOptim optim;
    private final CpuSparse sparse;
    private final CpuPredict predict;

    /** A backend with {@code threadCount} worker threads. */
    public CpuBackend(int threadCount) {
        this.threads = new CpuThreads(threadCount);
        CpuGemm gemm = new CpuGemm(threads);
        this.linear = new CpuLinear(threads, gemm);
        this.attention = new CpuAttention(threads);
        this.norm = new CpuNorm(threads);
        this.activation = new CpuActivation(threads);
        this.embedding = new CpuEmbedding(threads);
        this.loss = new CpuLoss(threads);
        this.optim = new CpuOptim(threads);
        this.sparse = new CpuSparse(threads, gemm);
        this.predict = new CpuPredict(threads);
    }

    @Override
    public String name() {
        return "cpu";
    }

    /** Totals of the matrix products this backend ran (benchmarks read them). */
    public GemmCounters gemmCounters() {
        return linear.counters();
    }

    public int threadCount() {
        return threads.size();
    }

    @Override
    public Tensor allocate(DType dtype, long... dims) {
        return Tensor.allocateHost(arena, dtype, dims);
    }

    @Override
    public void sync() {
    }

    @Override
    public DType activationDType() {
        return DType.F32;
    }

    @Override
    public void write(Tensor dst, MemorySegment src) {
        Tensors.requireSameBytes("write", dst, src);
        MemorySegment.copy(src, 0, dst.host(), 0, src.byteSize());
    }

    @Override
    public void read(Tensor src, MemorySegment dst) {
        Tensors.requireSameBytes("read", src, dst);
        MemorySegment.copy(src.host(), 0, dst, 0, dst.byteSize());
    }

    /** Weights are read in place: the (usually memory-mapped) host tensor is used as it is. */
    @Override
    public Tensor adoptWeight(Tensor host, String name) {
        if (!host.isHost()) {
            throw new IllegalArgumentException("weight " + name + " (" + host + ") is not in host memory");
        }
        return host;
    }

    @Override
    public void fillUniform(Tensor t, float low, float high, long seed) {
        CpuFill.fillUniform(threads, t, low, high, seed);
    }

    @Override
    public LinearOps linear() {
        return linear;
    }

    @Override
    public AttentionOps attention() {
        return attention;
    }

    @Override
    public NormOps norm() {
        return norm;
    }

    @Override
    public ActivationOps activation() {
        return activation;
    }

    @Override
    public EmbeddingOps embedding() {
        return embedding;
    }

    @Override
    public LossOps loss() {
        return loss;
    }

    @Override
    public OptimOps optim() {
        return optim;
    }

    @Override
    public SparseOps sparse() {
        return sparse;
    }

    @Override
    public PredictOps predict() {
        return predict;
    }

    /** On the backend's own threads ({@link CpuThreads#parallelFor}). */
    @Override
    public void hostParallelFor(int n, IntConsumer body) {
        threads.parallelFor(n, body);
    }

    @Override
    public void close() {
        threads.close();
        arena.close();
    }
}
