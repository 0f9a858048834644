package org.longexposure.backend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.List;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.HostStorage;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Storage;
import org.longexposure.tensor.Tensor;

/**
 * A test backend that behaves like a device backend as far as core code can tell: its tensors live in a
 * {@link FakeDeviceStorage}, which is not a {@link HostStorage}, so {@link Tensor#host()}, {@code getFloat},
 * {@code copyFrom}, {@code toFloatArray} etc. on them throw. Bytes move only through {@link #write}/{@link #read};
 * frozen weights are copied in by {@link #adoptWeight} (same dtype, like an upload). Every op unwraps its tensors to
 * host views and runs the wrapped {@link CpuBackend}'s op, so results are bit for bit those of a plain CPU backend
 * with the same thread count; an op handed a tensor this backend did not allocate (e.g. a memory-mapped weight that
 * was never adopted) fails. Running the model, PEFT, training and IO code on it proves that nothing touches a
 * backend tensor behind the backend's back.
 */
public final class FakeDeviceBackend implements Backend {
    /** Device-like storage: host bytes that only the owning backend may see. */
    public record FakeDeviceStorage(MemorySegment segment, FakeDeviceBackend owner) implements Storage {
        @Override
        public long byteSize() {
            return segment.byteSize();
        }
    }

    private final CpuBackend cpu;
    private final DType activationDType;
    private final Arena arena = Arena.ofShared();
    private final LinearOps linear;
    private final AttentionOps attention;
    private final NormOps norm;
    private final ActivationOps activation;
    private final EmbeddingOps embedding;
    private final LossOps loss;
    private final OptimOps optim;
    private final SparseOps sparse;
    private final PredictOps predict;
    private long bytesWritten;
    private long bytesRead;
    private int adoptedWeights;

    /** A backend over a CPU backend with {@code threadCount} threads, reporting F32 activations like it. */
    public FakeDeviceBackend(int threadCount) {
        this(threadCount, DType.F32);
    }

    /**
     * A backend reporting {@code activationDType} (e.g. BF16 to see what core code allocates for a BF16 device);
     * the CPU ops underneath accept only F32 activations, so with BF16 only allocation and data movement work.
     */
    public FakeDeviceBackend(int threadCount, DType activationDType) {
        this.cpu = new CpuBackend(threadCount);
        this.activationDType = activationDType;
        this.linear = unwrapping(LinearOps.class, cpu.linear());
        this.attention = unwrapping(AttentionOps.class, cpu.attention());
        this.norm = unwrapping(NormOps.class, cpu.norm());
        this.activation = unwrapping(ActivationOps.class, cpu.activation());
        this.embedding = unwrapping(EmbeddingOps.class, cpu.embedding());
        this.loss = unwrapping(LossOps.class, cpu.loss());
        this.optim = unwrapping(OptimOps.class, cpu.optim());
        this.sparse = unwrapping(SparseOps.class, cpu.sparse());
        this.predict = unwrapping(PredictOps.class, cpu.predict());
    }

    @Override
    public String name() {
        return "fake-device";
    }

    @Override
    public Tensor allocate(DType dtype, long... dims) {
        Shape shape = Shape.of(dims);
        long bytes = Math.max(1, shape.numel() * dtype.byteSize());
        return new Tensor(dtype, shape, new FakeDeviceStorage(arena.allocate(bytes, Tensor.HOST_ALIGNMENT), this),
                0);
    }

    @Override
    public void sync() {
    }

    @Override
    public DType activationDType() {
        return activationDType;
    }

    @Override
    public void write(Tensor dst, MemorySegment src) {
        Tensors.requireSameBytes("write", dst, src);
        MemorySegment.copy(src, 0, bytes(dst), 0, src.byteSize());
        bytesWritten += src.byteSize();
    }

    @Override
    public void read(Tensor src, MemorySegment dst) {
        Tensors.requireSameBytes("read", src, dst);
        MemorySegment.copy(bytes(src), 0, dst, 0, dst.byteSize());
        bytesRead += dst.byteSize();
    }

    @Override
    public Tensor adoptWeight(Tensor host, String name) {
        Tensor t = allocate(host.dtype(), host.shape().dims());
        MemorySegment.copy(host.host(), 0, bytes(t), 0, host.byteSize());
        adoptedWeights++;
        return t;
    }

    @Override
    public void fillUniform(Tensor t, float low, float high, long seed) {
        cpu.fillUniform(unwrap(t), low, high, seed);
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

    /** Bytes moved host → device and device → host so far. */
    public long bytesWritten() {
        return bytesWritten;
    }

    public long bytesRead() {
        return bytesRead;
    }

    /** Number of {@link #adoptWeight} calls so far. */
    public int adoptedWeights() {
        return adoptedWeights;
    }

    @Override
    public void close() {
        cpu.close();
        arena.close();
    }

    /** The bytes of a tensor of this backend (its view's range of the storage). */
    private MemorySegment bytes(Tensor t) {
        if (!(t.storage() instanceof FakeDeviceStorage s) || s.owner() != this) {
            throw new IllegalArgumentException("tensor " + t + " (" + t.storage().getClass().getSimpleName()
                    + ") was not allocated by this device backend");
        }
        return s.segment().asSlice(t.byteOffset(), t.byteSize());
    }

    /** The same elements as a host tensor, for the wrapped CPU op. */
    private Tensor unwrap(Tensor t) {
        bytes(t); // ownership check
        MemorySegment whole = ((FakeDeviceStorage) t.storage()).segment();
        return new Tensor(t.dtype(), t.shape(), new HostStorage(whole), t.byteOffset());
    }

    private Object unwrapArg(Object arg) {
        return switch (arg) {
            case Tensor t -> unwrap(t);
            case BlockLayout l -> new BlockLayout(l.blockSize(), l.numHeads(), l.seqLen(), unwrap(l.rowPtr()),
                    unwrap(l.colIdx()));
            case NeuronLayout l -> new NeuronLayout(l.neuronBlock(), l.tokenBlock(), l.rows(), l.maxBlocks(),
                    unwrap(l.rowPtr()), unwrap(l.blockIdx()));
            case List<?> list -> list.stream().map(this::unwrapArg).toList();
            case null, default -> arg;
        };
    }

    /** An implementation of {@code type} that unwraps every tensor argument and calls {@code target}. */
    private <T> T unwrapping(Class<T> type, T target) {
        Object p = Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[]{type}, (proxy, method, args) -> {
            Object[] a = args == null ? null : new Object[args.length];
            for (int i = 0; a != null && i < args.length; i++) {
                a[i] = unwrapArg(args[i]);
            }
            try {
                return method.invoke(target, a);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
        return type.cast(p);
    }
}
