package org.longexposure.cuda.backend;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.Deque;
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
import org.longexposure.backend.cpu.CpuThreads;
import org.longexposure.backend.Tensors;
import org.longexposure.cuda.Bf16;
import org.longexposure.cuda.DeviceArena;
import org.longexposure.cuda.DeviceStorage;
import org.longexposure.cuda.PinnedStaging;
import org.longexposure.cuda.blas.CublasGemm;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaEvent;
import org.longexposure.cuda.driver.CudaStream;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.cuda.kernels.KernelLibrary;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The GPU backend: one device, its primary context, one stream that all work goes on (a side stream takes
 * independent products of one op beside it, forked from and joined back into the main stream within that op:
 * {@link #fork()}), a {@link DeviceArena} that owns every tensor, the kernel library and cuBLASLt. Activations are
 * BF16 ({@link #activationDType()}); frozen matrices BF16; biases, LayerNorm weights, trainable parameters, their
 * gradients and optimizer state F32 (see the op families for each operand). Ops only queue work: {@link #sync()}
 * waits for it, {@link #read} synchronises.
 *
 * <p>Single-threaded: the thread that opened the backend drives it (the context is current there).
 */
public final class CudaBackend implements Backend {
    /** Two 8 MiB pinned buffers stage host↔device copies. */
    private static final long STAGING_CHUNK_BYTES = 8L << 20;

    private final CudaOptions options;
    private final Deque<AutoCloseable> owned = new ArrayDeque<>();
    private final CudaContext ctx;
    private final CudaStream stream;
    private final CudaStream sideStream;
    private final CudaEvent forkEvent;
    private final CudaEvent joinEvent;
    private final DeviceArena arena;
    private final PinnedStaging staging;
    private final KernelLibrary kernels;
    private final CublasGemm gemm;
    private final CublasGemm sideGemm;
    private final Bf16Shadows shadows;
    private final CudaLinear linear;
    private final CudaAttention attention;
    private final CudaNorm norm;
    private final CudaActivation activation;
    private final CudaEmbedding embedding;
    private final CudaLoss loss;
    private final CudaOptim optim;
    private final CudaSparse sparse;
    private final CudaPredict predict;
    /** Host threads for host work between device calls ({@link #hostParallelFor}), one per available processor. */
    private final CpuThreads hostThreads;

    private CudaBackend(CudaOptions options) {
        this.options = options;
        try {
            ctx = own(CudaContext.open(options.deviceOrdinal(), options.libDirs()));
            stream = own(ctx.createStream());
            sideStream = own(ctx.createStream());
            forkEvent = own(ctx.createSyncEvent());
            joinEvent = own(ctx.createSyncEvent());
            arena = own(new DeviceArena(ctx, stream));
            staging = own(new PinnedStaging(ctx, stream, STAGING_CHUNK_BYTES));
            kernels = own(new KernelLibrary(ctx, options.kernelCacheDir(), options.cudaHomes()));
            gemm = own(CublasGemm.open(ctx, options.libDirs(), options.gemmAutotune()));
            // the same loaded library, a handle and a workspace of its own
            sideGemm = own(new CublasGemm(ctx, gemm.library(), CublasGemm.DEFAULT_WORKSPACE_BYTES,
                    options.gemmAutotune()));
            shadows = new Bf16Shadows(this);
            linear = new CudaLinear(this);
            attention = new CudaAttention(this);
            norm = new CudaNorm(this);
            activation = new CudaActivation(this);
            embedding = new CudaEmbedding(this);
            loss = new CudaLoss(this);
            optim = new CudaOptim(this, activation);
            sparse = new CudaSparse(this, attention);
            predict = new CudaPredict(this);
            hostThreads = own(new CpuThreads(Runtime.getRuntime().availableProcessors()));
        } catch (RuntimeException e) {
            closeOwned(e);
            throw e;
        }
    }

    /** Opens device {@code options.deviceOrdinal()}; fails with a CudaException naming what was missing. */
    public static CudaBackend open(CudaOptions options) {
        return new CudaBackend(options);
    }

    private <T extends AutoCloseable> T own(T resource) {
        owned.push(resource);
        return resource;
    }

    @Override
    public String name() {
        return "cuda";
    }

    /** BF16: activations and their gradients are bfloat16 on this backend. */
    @Override
    public DType activationDType() {
        return DType.BF16;
    }

    public CudaOptions options() {
        return options;
    }

    public CudaContext context() {
        return ctx;
    }

    /** The stream every op of this backend queues on (see {@link #fork()} for the one exception). */
    public CudaStream stream() {
        return stream;
    }

    /**
     * The side stream: an op may run a part of its work there, beside its main-stream work, between
     * {@link #fork()} and {@link #join()}. Only products on {@link #sideGemm()} (its own cuBLASLt workspace) over
     * tensors that live through the op go there; nothing is allocated or released on it.
     */
    public CudaStream sideStream() {
        return sideStream;
    }

    /** The cuBLASLt products of the side stream, with a workspace of their own. */
    public CublasGemm sideGemm() {
        return sideGemm;
    }

    /** Work queued on the side stream from now on runs after everything queued on the main stream so far. */
    public void fork() {
        stream.record(forkEvent);
        sideStream.waitFor(forkEvent);
    }

    /**
     * Work queued on the main stream from now on runs after everything queued on the side stream so far; every
     * {@link #fork()} is joined before its op returns, so waiting for the main stream waits for both.
     */
    public void join() {
        sideStream.record(joinEvent);
        stream.waitFor(joinEvent);
    }

    public KernelLibrary kernels() {
        return kernels;
    }

    public CublasGemm gemm() {
        return gemm;
    }

    public DeviceArena arena() {
        return arena;
    }

    /** The bf16 copies of F32 GEMM operands; every op that writes an F32 tensor reports it here. */
    Bf16Shadows shadows() {
        return shadows;
    }

    /** Device address of {@code t}'s first element; fails for host tensors. */
    public static long ptr(Tensor t) {
        return DeviceStorage.addressOf(t);
    }

    @Override
    public Tensor allocate(DType dtype, long... dims) {
        return arena.allocate(dtype, dims);
    }

    @Override
    public void sync() {
        stream.sync();
    }

    /**
     * Host bytes → device tensor (same dtype, {@code src.byteSize() == dst.byteSize()}), queued on the stream; the
     * bytes are staged, so {@code src} may be reused as soon as this returns.
     */
    @Override
    public void write(Tensor dst, MemorySegment src) {
        Tensors.requireSameBytes("write", dst, src);
        shadows.wroteBytes(ptr(dst), dst.byteSize());
        staging.upload(ptr(dst), src);
    }

    /** Host bytes → device address {@code dst} (staged, queued on the stream; {@code src} reusable on return). */
    void upload(long dst, MemorySegment src) {
        shadows.wroteBytes(dst, src.byteSize());
        staging.upload(dst, src);
    }

    /** Device tensor → host bytes; waits for queued work and the copy. */
    @Override
    public void read(Tensor src, MemorySegment dst) {
        Tensors.requireSameBytes("read", src, dst);
        staging.download(dst, ptr(src));
    }

    /**
     * A frozen weight matrix or table uploaded as BF16: BF16 host data is copied as is, F32 and F16 are rounded to
     * nearest even while being staged. {@code name} labels errors.
     */
    @Override
    public Tensor adoptWeight(Tensor host, String name) {
        if (!host.isHost()) {
            throw new IllegalArgumentException("adoptWeight " + name + ": expected a host tensor, got " + host);
        }
        long[] dims = host.shape().dims();
        Tensor dev = arena.allocate(DType.BF16, dims);
        MemorySegment src = host.host();
        switch (host.dtype()) {
            case BF16 -> staging.upload(ptr(dev), src);
            case F32 -> staging.upload(ptr(dev), dev.byteSize(), (chunk, off) -> {
                long first = off / 2;
                for (long i = 0, n = chunk.byteSize() / 2; i < n; i++) {
                    float v = src.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, first + i);
                    chunk.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Bf16.fromFloat(v));
                }
            });
            case F16 -> staging.upload(ptr(dev), dev.byteSize(), (chunk, off) -> {
                long first = off / 2;
                for (long i = 0, n = chunk.byteSize() / 2; i < n; i++) {
                    float v = Float.float16ToFloat(src.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, first + i));
                    chunk.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Bf16.fromFloat(v));
                }
            });
            default -> throw new IllegalArgumentException("adoptWeight " + name + ": dtype " + host.dtype()
                    + " is not a weight type (f32, f16, bf16)");
        }
        return dev;
    }

    /** Counter-based uniform fill, bit-identical to the CPU backend ({@code fill.cu}). */
    @Override
    public void fillUniform(Tensor t, float low, float high, long seed) {
        if (!(Float.isFinite(low) && Float.isFinite(high))) {
            throw new IllegalArgumentException("fillUniform: bounds must be finite, got [" + low + ", " + high + ")");
        }
        String kernel = switch (t.dtype()) {
            case F32 -> "fill_uniform_f32";
            case BF16 -> "fill_uniform_bf16";
            case F16 -> "fill_uniform_f16";
            case F64 -> "fill_uniform_f64";
            default -> throw new IllegalArgumentException("fillUniform: t must be a float tensor (f32, f16, bf16, "
                    + "f64), got " + t);
        };
        long n = t.numel();
        if (n == 0) {
            return;
        }
        shadows.wrote(t);
        int block = 256;
        int blocks = (int) Math.min((n + block - 1) / block, 32L * ctx.multiprocessorCount());
        stream.launch(kernels.function("fill", kernel), blocks, 1, 1, block, 1, 1, 0,
                KernelArgs.of(t, low, high - low, seed, n));
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
    public PredictOps predict() {
        return predict;
    }

    @Override
    public SparseOps sparse() {
        return sparse;
    }

    @Override
    public void hostParallelFor(int n, IntConsumer body) {
        hostThreads.parallelFor(n, body);
    }

    /** Waits for the stream, then frees everything in reverse order of creation. */
    @Override
    public void close() {
        RuntimeException syncError = null;
        try {
            stream.sync();
        } catch (RuntimeException e) {
            syncError = e;
        }
        RuntimeException error = closeOwned(syncError);
        if (error != null) {
            throw error;
        }
    }

    /** Closes every owned resource, newest first; returns {@code primary} (or the first failure) with the rest suppressed. */
    private RuntimeException closeOwned(RuntimeException primary) {
        RuntimeException first = primary;
        while (!owned.isEmpty()) {
            try {
                owned.pop().close();
            } catch (Exception e) {
                RuntimeException r = e instanceof RuntimeException re ? re : new IllegalStateException(e);
                if (first == null) {
                    first = r;
                } else {
                    first.addSuppressed(r);
                }
            }
        }
        return first;
    }
}
