package org.longexposure.cuda.backend;

import java.lang.foreign.MemorySegment;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.longexposure.backend.ActivationOps;
import org.longexposure.backend.AttentionOps;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.EmbeddingOps;
import org.longexposure.backend.LinearOps;
import org.longexposure.backend.LossOps;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.NormOps;
import org.longexposure.backend.OptimOps;
import org.longexposure.backend.PredictOps;
import org.longexposure.backend.SparseOps;
import org.longexposure.cuda.driver.CudaEvent;
import org.longexposure.cuda.driver.KernelArgs;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * A {@link Backend} that forwards every call to a {@link CudaBackend} and, while {@linkplain #enabled enabled},
 * measures each op-family call: GPU time between two CUDA events recorded on the backend's stream just before and
 * just after the call, host time spent inside the call (argument checks, launches, synchronisations), and the
 * kernels it launched (the stream's launch counter plus one per cuBLASLt product). Calls are grouped by a label
 * made of the family, the method and the operands' shapes and dtypes (one label per "shape class"), and by a
 * coarse category (frozen GEMM forward / backward-input, LoRA GEMMs, LM head, attention, LayerNorm, ...).
 *
 * <p>Use: build the model and trainer on this backend, {@link #enabled(boolean) enable} it, run steps with
 * {@link #beginStep()} / {@link #endStep()} around each, then read {@link #report()}. Events add a few µs of host
 * work per call, so profiled steps run slightly slower than plain ones; the per-op GPU times are what it is for.
 *
 * <p>When the GPU has caught up with the host, an event interval also holds the host's time to queue the op. With
 * a {@linkplain #holdMillis(double) hold}, a spinning kernel ({@code profile.cu}) holds the stream at the start of
 * each step and after each call that read a result back to the host (the points where the GPU is idle), long enough
 * for the host to queue what follows; the intervals then time the GPU alone, and the GPU span less the holds is the
 * step's GPU-bound time. The holds are timed by their own events and left out of every sum.
 */
public final class ProfilingBackend implements Backend {
    private final CudaBackend be;
    private final LinearOps linear;
    private final AttentionOps attention;
    private final NormOps norm;
    private final ActivationOps activation;
    private final EmbeddingOps embedding;
    private final LossOps loss;
    private final OptimOps optim;
    private final SparseOps sparse;
    private final PredictOps predict;
    private final List<CudaEvent> pool = new ArrayList<>();
    private final List<Pending> pending = new ArrayList<>();
    private final Map<String, Row> rows = new LinkedHashMap<>();
    private boolean enabled;
    private int stepEvents;
    private long stepStartNanos;
    private long stepLaunchStart;
    private long stepGemmStart;
    private final List<StepTotals> steps = new ArrayList<>();
    private long holdNanos;
    private final List<CudaEvent[]> holds = new ArrayList<>();

    public ProfilingBackend(CudaBackend be) {
        this.be = be;
        this.linear = wrap(LinearOps.class, be.linear(), "linear");
        this.attention = wrap(AttentionOps.class, be.attention(), "attention");
        this.norm = wrap(NormOps.class, be.norm(), "norm");
        this.activation = wrap(ActivationOps.class, be.activation(), "activation");
        this.embedding = wrap(EmbeddingOps.class, be.embedding(), "embedding");
        this.loss = wrap(LossOps.class, be.loss(), "loss");
        this.optim = wrap(OptimOps.class, be.optim(), "optim");
        this.sparse = wrap(SparseOps.class, be.sparse(), "sparse");
        this.predict = wrap(PredictOps.class, be.predict(), "predict");
    }

    /** The backend underneath. */
    public CudaBackend delegate() {
        return be;
    }

    /** Starts or stops measuring; while off, calls pass straight through. */
    public void enabled(boolean on) {
        this.enabled = on;
    }

    /**
     * Holds the stream for {@code ms} at each step's start and after each call that read back to the host (0: no
     * holds, the default). The holds are left out of every time reported.
     */
    public void holdMillis(double ms) {
        if (!(ms >= 0)) {
            throw new IllegalArgumentException("hold: expected a time in ms >= 0, got " + ms);
        }
        this.holdNanos = Math.round(ms * 1e6);
    }

    /** Marks the start of a training step (the GPU should be idle: the previous step synchronised). */
    public void beginStep() {
        be.sync();
        stepEvents = 0;
        pending.clear();
        holds.clear();
        stepStartNanos = System.nanoTime();
        stepLaunchStart = be.stream().launchCount();
        stepGemmStart = be.gemm().matmulCount();
        hold();
        CudaEvent e = event(stepEvents++);
        e.record(be.stream());
        pending.add(new Pending(null, null, e, 0, 0));
    }

    /** Marks the end of a step: synchronises, reads every event of the step and adds the times to the report. */
    public void endStep() {
        CudaEvent last = event(stepEvents++);
        last.record(be.stream());
        be.sync();
        double wallMs = (System.nanoTime() - stepStartNanos) / 1e6;
        CudaEvent first = pending.getFirst().end;
        double sumGpu = 0;
        double sumHost = 0;
        for (Pending p : pending.subList(1, pending.size())) {
            double ms = p.end.elapsedMillisSince(p.start);
            Row r = p.row;
            r.gpuMs += ms;
            r.hostMs += p.hostNanos / 1e6;
            r.calls++;
            r.launches += p.launches;
            sumGpu += ms;
            sumHost += p.hostNanos / 1e6;
        }
        double heldMs = 0;
        for (CudaEvent[] h : holds) {
            heldMs += h[1].elapsedMillisSince(h[0]);
        }
        double spanMs = last.elapsedMillisSince(first) - heldMs;
        steps.add(new StepTotals(wallMs, spanMs, sumGpu, sumHost, be.stream().launchCount() - stepLaunchStart,
                be.gemm().matmulCount() - stepGemmStart, pending.size() - 1));
    }

    /** Queues a hold and its two events (the first hold of a step, before the step's first event, is not timed). */
    private void hold() {
        if (holdNanos == 0) {
            return;
        }
        boolean timed = stepEvents > 0;
        CudaEvent start = timed ? event(stepEvents++) : null;
        if (timed) {
            start.record(be.stream());
        }
        be.stream().launch(be.kernels().function("profile", "profile_hold_ns"), 1, 1, 1, 1, 1, 1, 0,
                KernelArgs.of(holdNanos));
        if (timed) {
            CudaEvent end = event(stepEvents++);
            end.record(be.stream());
            holds.add(new CudaEvent[] {start, end});
        }
    }

    /** One measured label: totals over all profiled steps. */
    public static final class Row {
        public final String label;
        public final String category;
        public long calls;
        public double gpuMs;
        public double hostMs;
        public long launches;

        Row(String label, String category) {
            this.label = label;
            this.category = category;
        }
    }

    /**
     * Per-step totals: host wall time, GPU span (first to last event, less the holds), sums over the ops, launches,
     * GEMMs (the holds' launches included).
     */
    public record StepTotals(double wallMs, double gpuSpanMs, double opGpuMs, double opHostMs, long kernelLaunches,
                             long gemmCalls, int calls) {
    }

    /** The rows, largest GPU time first, and the per-step totals. */
    public Report report() {
        List<Row> sorted = new ArrayList<>(rows.values());
        sorted.sort(Comparator.comparingDouble((Row r) -> r.gpuMs).reversed());
        return new Report(List.copyOf(sorted), List.copyOf(steps));
    }

    /** What {@link #report()} returns. */
    public record Report(List<Row> rows, List<StepTotals> steps) {
        /** Totals per category, largest first, in ms summed over all profiled steps. */
        public Map<String, double[]> byCategory() {
            Map<String, double[]> m = new LinkedHashMap<>();
            for (Row r : rows) {
                double[] v = m.computeIfAbsent(r.category, k -> new double[4]);
                v[0] += r.gpuMs;
                v[1] += r.hostMs;
                v[2] += r.calls;
                v[3] += r.launches;
            }
            List<Map.Entry<String, double[]>> e = new ArrayList<>(m.entrySet());
            e.sort(Comparator.comparingDouble((Map.Entry<String, double[]> x) -> x.getValue()[0]).reversed());
            Map<String, double[]> out = new LinkedHashMap<>();
            e.forEach(x -> out.put(x.getKey(), x.getValue()));
            return out;
        }
    }

    private CudaEvent event(int i) {
        while (pool.size() <= i) {
            pool.add(be.context().createEvent());
        }
        return pool.get(i);
    }

    private record Pending(Row row, CudaEvent start, CudaEvent end, long hostNanos, long launches) {
    }

    private <T> T wrap(Class<T> type, T target, String family) {
        InvocationHandler h = (proxy, method, args) -> invoke(family, target, method, args);
        return type.cast(Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, h));
    }

    private Object invoke(String family, Object target, Method method, Object[] args) throws Throwable {
        if (!enabled || method.getDeclaringClass() == Object.class) {
            return call(target, method, args);
        }
        String label = family + "." + method.getName() + describe(args);
        Row row = rows.computeIfAbsent(label, k -> new Row(k, category(family, method.getName(), args)));
        CudaEvent start = event(stepEvents++);
        CudaEvent end = event(stepEvents++);
        long launches0 = be.stream().launchCount() + be.gemm().matmulCount();
        start.record(be.stream());
        long t0 = System.nanoTime();
        Object result = call(target, method, args);
        long host = System.nanoTime() - t0;
        end.record(be.stream());
        long launches = be.stream().launchCount() + be.gemm().matmulCount() - launches0;
        pending.add(new Pending(row, start, end, host, launches));
        if (method.getReturnType() != void.class) {
            hold();   // the call read a result back: the GPU is idle until the host queues more
        }
        return result;
    }

    private static Object call(Object target, Method method, Object[] args) throws Throwable {
        try {
            return method.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    /** "(4096x2048 bf16, 2048x2048 f32, -, acc)": tensor shapes and dtypes, null operands, boolean flags. */
    private static String describe(Object[] args) {
        if (args == null) {
            return "()";
        }
        StringBuilder sb = new StringBuilder("(");
        for (Object a : args) {
            if (a instanceof Tensor t) {
                sep(sb).append(shape(t)).append(' ').append(t.dtype().toString().toLowerCase());
            } else if (a == null) {
                sep(sb).append('-');
            } else if (a instanceof Boolean b) {
                sep(sb).append(b ? "acc" : "overwrite");
            } else if (a instanceof List<?> l) {
                sep(sb).append("list of ").append(l.size());
            } else if (a instanceof BlockLayout bl) {
                sep(sb).append("tiles of ").append(bl.blockSize());
            } else if (a instanceof NeuronLayout nl) {
                sep(sb).append(nl.tokenBlock()).append("-token blocks of ").append(nl.neuronBlock())
                        .append(" neurons");
            }
        }
        return sb.append(')').toString();
    }

    private static StringBuilder sep(StringBuilder sb) {
        return sb.length() > 1 ? sb.append(", ") : sb;
    }

    private static String shape(Tensor t) {
        long[] d = t.shape().dims();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < d.length; i++) {
            sb.append(i == 0 ? "" : "x").append(d[i]);
        }
        return sb.toString();
    }

    /** Coarse grouping: GEMMs by role (an F32 weight means a trainable LoRA matrix; a very tall one the LM head). */
    private static String category(String family, String method, Object[] args) {
        if (!family.equals("linear")) {
            return family + "." + method;
        }
        if (method.equals("loraLinearBackward")) {
            return "gemm frozen+lora bwd";
        }
        Tensor weight = args.length > 2 && args[2] instanceof Tensor w ? w : null;
        boolean lora = method.equals("linearBackwardWeight") || (weight != null && weight.dtype() == DType.F32);
        if (lora) {
            return "gemm lora " + switch (method) {
                case "linearForward", "linearForwardScaled", "linearForwardResidual",
                     "linearForwardScaledResidual" -> "fwd";
                case "linearBackwardInput" -> "bwd-input";
                default -> "bwd-weight";
            };
        }
        boolean head = weight != null && weight.shape().rank() == 2 && weight.shape().dim(0) > 32768;
        String role = method.equals("linearBackwardInput") ? "bwd-input" : "fwd";
        return head ? "gemm lm-head " + role : "gemm frozen " + role;
    }

    // --- plain delegation

    @Override
    public String name() {
        return be.name();
    }

    @Override
    public Tensor allocate(DType dtype, long... dims) {
        return be.allocate(dtype, dims);
    }

    @Override
    public void sync() {
        be.sync();
    }

    @Override
    public DType activationDType() {
        return be.activationDType();
    }

    @Override
    public void write(Tensor dst, MemorySegment src) {
        be.write(dst, src);
    }

    @Override
    public void read(Tensor src, MemorySegment dst) {
        be.read(src, dst);
        if (enabled) {
            hold();
        }
    }

    @Override
    public Tensor adoptWeight(Tensor host, String name) {
        return be.adoptWeight(host, name);
    }

    @Override
    public void fillUniform(Tensor t, float low, float high, long seed) {
        be.fillUniform(t, low, high, seed);
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

    /** Frees the events; the wrapped backend stays open (its owner closes it). */
    @Override
    public void close() {
        be.sync();
        pool.forEach(CudaEvent::close);
        pool.clear();
    }
}
