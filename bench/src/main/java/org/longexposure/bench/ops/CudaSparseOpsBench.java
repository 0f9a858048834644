package org.longexposure.bench.ops;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;
import org.longexposure.backend.Activation;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.backend.Tensors;
import org.longexposure.bench.BenchInfo;
import org.longexposure.cuda.backend.CudaBackend;
import org.longexposure.cuda.backend.CudaOptions;
import org.longexposure.cuda.driver.CudaContext;
import org.longexposure.cuda.driver.CudaEvent;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.sparsity.mask.NeuronLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * GPU operator benchmark of Long Exposure's sparse operators against the dense ones at OPT-1.3B shapes
 * (design note 9.6-9.7): N = B·T tokens (default 4 × 1024), C 2048, H 8192, NH 32, HS 64.
 * <ul>
 *   <li>MLP, dense: cuBLASLt fc1 (+ b1) → ReLU kernel → cuBLASLt fc2 (+ b2); backward dH = dOut·W2, ReLU mask,
 *       dInp = dH·W1, dB1 and dB2 column sums (no weight gradients: frozen, as under PEFT).</li>
 *   <li>MLP, sparse: {@code sparse().sparseMlpForward/Backward} with seeded random neuron layouts
 *       ({@link NeuronLayouts#random}, the same count of neuron blocks per token block) at each density.</li>
 *   <li>Attention, dense: the flash kernels ({@code attentionForward/Backward}, causal). Sparse: the same kernels over
 *       random causal block layouts ({@link BlockLayouts#random}, block 64, no forced tiles) at each density of the
 *       causal tiles.</li>
 * </ul>
 * Timing: CUDA events around {@code reps} back-to-back calls (so host launch gaps hide behind queued work), the
 * per-call mean of one sample; the median of {@code samples} samples after {@code warmup} calls. Inputs rotate over
 * three sets (activations, dOut) and four layouts per density, so repeated calls do not replay one cached set.
 * Output: a JSON file with machine, GPU, commit, config and per-density times.
 *
 * <p>Usage: {@code CudaSparseOpsBench [--batch 4] [--seq 1024] [--c 2048] [--h 8192] [--heads 32]
 * [--token-block 128] [--neuron-block 128] [--densities 1,0.5,0.25,0.13,0.05] [--warmup 10] [--samples 25]
 * [--reps 5] [--commit SHA] [--out FILE.json]}
 */
public final class CudaSparseOpsBench {
    private static final int SETS = 3;
    private static final int LAYOUTS = 4;

    private CudaSparseOpsBench() {
    }

    record Options(int batch, int seq, int c, int h, int heads, int tokenBlock, int neuronBlock, double[] densities,
                   int warmup, int samples, int reps, String commit, Path out) {
    }

    public static void main(String[] args) throws Exception {
        Options o = parse(args);
        ObjectNode result = BenchInfo.header("cuda-sparse-ops", o.commit());
        try (CudaBackend be = CudaBackend.open(CudaOptions.defaults())) {
            CudaContext ctx = be.context();
            ObjectNode gpu = ((ObjectNode) result.get("machine")).putObject("gpu");
            gpu.put("name", ctx.name());
            gpu.put("sm", ctx.computeCapability());
            gpu.put("multiprocessors", ctx.multiprocessorCount());
            gpu.put("driver_version", ctx.driverVersion());
            ObjectNode cfg = result.putObject("config");
            cfg.put("batch", o.batch()).put("seq", o.seq()).put("tokens", o.batch() * o.seq()).put("c", o.c())
                    .put("h", o.h()).put("heads", o.heads()).put("head_size", o.c() / o.heads())
                    .put("token_block", o.tokenBlock()).put("neuron_block", o.neuronBlock())
                    .put("attention_block", 64).put("warmup", o.warmup()).put("samples", o.samples())
                    .put("reps_per_sample", o.reps()).put("input_sets", SETS).put("layouts_per_density", LAYOUTS)
                    .put("statistic", "median over samples of (event time of reps calls) / reps, ms");
            new Run(be, o, result).all();
        }
        BenchInfo.write(o.out(), result);
        System.out.println("wrote " + o.out());
    }

    static Options parse(String[] args) {
        int batch = 4;
        int seq = 1024;
        int c = 2048;
        int h = 8192;
        int heads = 32;
        int tb = 128;
        int bn = 128;
        double[] dens = {1.0, 0.5, 0.25, 0.13, 0.05};
        int warmup = 10;
        int samples = 25;
        int reps = 5;
        String commit = "unknown";
        Path out = Path.of("cuda-sparse-ops.json");
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("option " + args[i] + " needs a value");
            }
            String v = args[i + 1];
            switch (args[i]) {
                case "--batch" -> batch = Integer.parseInt(v);
                case "--seq" -> seq = Integer.parseInt(v);
                case "--c" -> c = Integer.parseInt(v);
                case "--h" -> h = Integer.parseInt(v);
                case "--heads" -> heads = Integer.parseInt(v);
                case "--token-block" -> tb = Integer.parseInt(v);
                case "--neuron-block" -> bn = Integer.parseInt(v);
                case "--densities" -> dens = Arrays.stream(v.split(",")).mapToDouble(Double::parseDouble).toArray();
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--samples" -> samples = Integer.parseInt(v);
                case "--reps" -> reps = Integer.parseInt(v);
                case "--commit" -> commit = v;
                case "--out" -> out = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        return new Options(batch, seq, c, h, heads, tb, bn, dens, warmup, samples, reps, commit, out);
    }

    /** One benchmark run on an open backend. */
    private static final class Run {
        private final CudaBackend be;
        private final Options o;
        private final ObjectNode result;
        private final int n;

        Run(CudaBackend be, Options o, ObjectNode result) {
            this.be = be;
            this.o = o;
            this.result = result;
            this.n = o.batch() * o.seq();
        }

        private Tensor random(DType dtype, float bound, long seed, long... dims) {
            Tensor t = be.allocate(dtype, dims);
            be.fillUniform(t, -bound, bound, seed);
            return t;
        }

        /** Median ms per call of {@code body(i)} (i counts calls, for rotation). */
        private double time(IntConsumer body) {
            CudaEvent start = be.context().createEvent();
            CudaEvent stop = be.context().createEvent();
            try {
                int call = 0;
                for (int i = 0; i < o.warmup(); i++) {
                    body.accept(call++);
                }
                be.sync();
                double[] ms = new double[o.samples()];
                for (int s = 0; s < o.samples(); s++) {
                    start.record(be.stream());
                    for (int r = 0; r < o.reps(); r++) {
                        body.accept(call++);
                    }
                    stop.record(be.stream());
                    stop.sync();
                    ms[s] = stop.elapsedMillisSince(start) / o.reps();
                }
                Arrays.sort(ms);
                return ms[ms.length / 2];
            } finally {
                start.close();
                stop.close();
            }
        }

        void all() {
            mlp();
            attention();
        }

        private void mlp() {
            int c = o.c();
            int h = o.h();
            Tensor w1 = random(DType.BF16, 0.03f, 1, h, c);
            Tensor w2 = random(DType.BF16, 0.03f, 2, c, h);
            Tensor b1 = random(DType.F32, 0.1f, 3, h);
            Tensor b2 = random(DType.F32, 0.1f, 4, c);
            Tensor[] x = new Tensor[SETS];
            Tensor[] dOut = new Tensor[SETS];
            for (int s = 0; s < SETS; s++) {
                x[s] = random(DType.BF16, 1f, 10 + s, n, c);
                dOut[s] = random(DType.BF16, 1f, 20 + s, n, c);
            }
            Tensor dB1 = be.allocate(DType.F32, h);
            Tensor dB2 = be.allocate(DType.F32, c);
            Tensor dInp = be.allocate(DType.BF16, n, c);
            Tensor out = be.allocate(DType.BF16, n, c);
            ObjectNode mlp = result.putObject("mlp");
            double flopsDense = 2.0 * n * c * h;  // one product
            mlp.put("gflop_per_product_dense", flopsDense / 1e9);

            // Dense: cuBLASLt + ReLU kernel.
            Tensor pre = be.allocate(DType.BF16, n, h);
            Tensor hid = be.allocate(DType.BF16, n, h);
            Tensor dH = be.allocate(DType.BF16, n, h);
            Tensor dHm = be.allocate(DType.BF16, n, h);
            IntConsumer denseFwd = i -> {
                be.linear().linearForward(pre, x[i % SETS], w1, b1);
                be.activation().activationForward(hid, pre, Activation.RELU);
                be.linear().linearForward(out, hid, w2, b2);
            };
            IntConsumer denseBwd = i -> {
                be.linear().linearBackwardInput(dH, dOut[i % SETS], w2, 1f, false);
                be.activation().activationBackward(dHm, dH, pre, Activation.RELU);
                be.linear().linearBackwardInput(dInp, dHm, w1, 1f, false);
                be.linear().linearBackwardWeight(null, dB1, dHm, x[i % SETS], 1f);
                be.linear().linearBackwardWeight(null, dB2, dOut[i % SETS], hid, 1f);
            };
            double dF = time(denseFwd);
            double dB = time(denseBwd);
            mlp.put("dense_cublas_fwd_ms", dF);
            mlp.put("dense_cublas_bwd_ms", dB);
            mlp.put("dense_cublas_fwd_bwd_ms", dF + dB);
            System.out.printf("mlp dense cuBLASLt: fwd %.3f bwd %.3f f+b %.3f ms%n", dF, dB, dF + dB);

            ArrayNode rows = mlp.putArray("sparse");
            for (double d : o.densities()) {
                NeuronLayout[] layouts = new NeuronLayout[LAYOUTS];
                for (int l = 0; l < LAYOUTS; l++) {
                    layouts[l] = NeuronLayouts.random(n, o.tokenBlock(), h, o.neuronBlock(), d, 100 + l, be);
                }
                int hw = layouts[0].maxBlocks() * o.neuronBlock();
                double actual = NeuronLayouts.density(be, layouts[0], h);
                Tensor hidden = be.allocate(DType.BF16, n, hw);
                IntConsumer fwd = i -> be.sparse().sparseMlpForward(out, hidden, x[i % SETS], w1,
                        b1, w2, b2, layouts[i % LAYOUTS]);
                IntConsumer bwd = i -> be.sparse().sparseMlpBackward(dInp, dB1, dB2,
                        dOut[i % SETS], hidden, w1, w2, layouts[i % LAYOUTS]);
                double f = time(fwd);
                double b = time(bwd);
                ObjectNode row = rows.addObject();
                row.put("density_target", d).put("density_actual", actual).put("blocks_per_token_block",
                        layouts[0].maxBlocks());
                row.put("fwd_ms", f).put("bwd_ms", b).put("fwd_bwd_ms", f + b);
                row.put("vs_dense_cublas_fwd_bwd", (f + b) / (dF + dB));
                row.put("effective_tflops_fwd_bwd", 4 * flopsDense * actual / ((f + b) * 1e-3) / 1e12);
                System.out.printf("mlp sparse density %.3f (actual %.4f): fwd %.3f bwd %.3f f+b %.3f ms (%.3f of dense)%n",
                        d, actual, f, b, f + b, (f + b) / (dF + dB));
            }
        }

        private void attention() {
            int c = o.c();
            int nh = o.heads();
            int t = o.seq();
            int b = o.batch();
            Tensor[] q = new Tensor[SETS];
            Tensor[] k = new Tensor[SETS];
            Tensor[] v = new Tensor[SETS];
            Tensor[] g = new Tensor[SETS];
            for (int s = 0; s < SETS; s++) {
                q[s] = random(DType.BF16, 1f, 30 + s, b, t, c);
                k[s] = random(DType.BF16, 1f, 40 + s, b, t, c);
                v[s] = random(DType.BF16, 1f, 50 + s, b, t, c);
                g[s] = random(DType.BF16, 1f, 60 + s, b, t, c);
            }
            Tensor mask = be.allocate(DType.I32, b, t);
            int[] ones = new int[b * t];
            Arrays.fill(ones, 1);
            Tensors.copyFrom(be, mask, ones);
            Tensor out = be.allocate(DType.BF16, b, t, c);
            Tensor lse = be.allocate(DType.F32, b, nh, t);
            Tensor dQ = be.allocate(DType.BF16, b, t, c);
            Tensor dK = be.allocate(DType.BF16, b, t, c);
            Tensor dV = be.allocate(DType.BF16, b, t, c);
            float scale = (float) (1 / Math.sqrt((double) c / nh));
            ObjectNode att = result.putObject("attention");
            double dF = time(i -> be.attention().attentionForward(out, lse, q[i % SETS], k[i % SETS], v[i % SETS],
                    mask, nh, scale));
            double dB = time(i -> be.attention().attentionBackward(dQ, dK, dV, g[i % SETS], out, lse, q[i % SETS],
                    k[i % SETS], v[i % SETS], mask, nh, scale));
            att.put("dense_fwd_ms", dF).put("dense_bwd_ms", dB).put("dense_fwd_bwd_ms", dF + dB);
            System.out.printf("attention dense flash: fwd %.3f bwd %.3f f+b %.3f ms%n", dF, dB, dF + dB);
            ArrayNode rows = att.putArray("sparse");
            for (double d : o.densities()) {
                List<BlockLayout> layouts = new ArrayList<>();
                for (int l = 0; l < LAYOUTS; l++) {
                    layouts.add(BlockLayouts.random(nh, t, 64, d, 200 + l, false, false, be));
                }
                double actual = BlockLayouts.density(be, layouts.get(0));
                double f = time(i -> be.sparse().blockSparseAttentionForward(out, lse, q[i % SETS], k[i % SETS],
                        v[i % SETS], mask, nh, scale, layouts.get(i % LAYOUTS)));
                double bw = time(i -> be.sparse().blockSparseAttentionBackward(dQ, dK, dV, g[i % SETS], out, lse,
                        q[i % SETS], k[i % SETS], v[i % SETS], mask, nh, scale, layouts.get(i % LAYOUTS)));
                ObjectNode row = rows.addObject();
                row.put("density_target", d).put("density_actual_of_causal_tiles", actual);
                row.put("fwd_ms", f).put("bwd_ms", bw).put("fwd_bwd_ms", f + bw);
                row.put("vs_dense_fwd_bwd", (f + bw) / (dF + dB));
                System.out.printf("attention sparse density %.3f (actual %.4f): fwd %.3f bwd %.3f f+b %.3f ms "
                        + "(%.3f of dense)%n", d, actual, f, bw, f + bw, (f + bw) / (dF + dB));
            }
        }
    }
}
