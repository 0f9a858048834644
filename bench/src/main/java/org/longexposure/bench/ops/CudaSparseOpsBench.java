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
 *   <li>MLP, dense: cuBLASLt fc1 with the bias + ReLU epilogue ({@code linearForwardRelu}) → cuBLASLt fc2 (+ b2);
 *       backward dH = dOut·W2, ReLU backward kernel, dInp = dH·W1, dB1 and dB2 column sums (no weight gradients:
 *       frozen, as under PEFT).</li>
 *   <li>MLP, sparse: {@code sparse().sparseMlpForward/Backward} with seeded random neuron layouts
 *       ({@link NeuronLayouts#random}: every token block lists round(density·nb) blocks, so maxBlocks, the compacted
 *       width's cap, is the density's share of the nb = H/BN blocks) at each density; by default one token block
 *       spanning the N rows (the micro-batch union), the backend's default path rule. Reported as times and as
 *       ratios to dense, with the bias gradients (dB1, dB2; dense: column sums) and without them (both sides run
 *       only the products and the ReLU backward then).</li>
 *   <li>MLP path crossover ({@code --crossover-token-blocks}): the same forward + backward with each token block
 *       size, once on a backend forced onto the direct kernels and once forced onto gather + cuBLASLt
 *       ({@link CudaOptions#sparseMlpGemmRows()} = MAX / 0), at the {@code --crossover-densities}: where the
 *       default rule's threshold comes from.</li>
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
 * [--token-block N] [--neuron-block 128] [--densities 1,0.5,0.25,0.13,0.05] [--parts mlp,attention]
 * [--crossover-token-blocks 128,256,...] [--crossover-densities 1,0.25] [--warmup 10] [--samples 25] [--reps 5]
 * [--commit SHA] [--out FILE.json]}; {@code --token-block 0} (the default) means one token block of all N rows.
 */
public final class CudaSparseOpsBench {
    private static final int SETS = 3;
    private static final int LAYOUTS = 4;

    private CudaSparseOpsBench() {
    }

    record Options(int batch, int seq, int c, int h, int heads, int tokenBlock, int neuronBlock, double[] densities,
                   List<String> parts, int[] crossoverTokenBlocks, double[] crossoverDensities, int warmup,
                   int samples, int reps, String commit, Path out) {
        /** Rows per token block: the option, or all N rows when it is 0. */
        int tokenBlockRows() {
            return tokenBlock > 0 ? tokenBlock : batch * seq;
        }
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
                    .put("token_block", o.tokenBlockRows()).put("neuron_block", o.neuronBlock())
                    .put("attention_block", 64).put("warmup", o.warmup()).put("samples", o.samples())
                    .put("reps_per_sample", o.reps()).put("input_sets", SETS).put("layouts_per_density", LAYOUTS)
                    .put("statistic", "median over samples of (event time of reps calls) / reps, ms");
            cfg.put("sparse_mlp_gemm_rows", be.options().sparseMlpGemmRows());
            new Run(be, o, result).all();
        }
        if (o.crossoverTokenBlocks().length > 0 && o.parts().contains("mlp")) {
            ObjectNode cross = result.putObject("mlp_crossover");
            cross.put("note", "sparse MLP fwd+bwd ms per token block size and density, the backend forced onto "
                    + "each path (direct kernels: sparseMlpGemmRows = MAX; gather + cuBLASLt: 0)");
            for (String path : List.of("direct", "gather")) {
                int rows = path.equals("direct") ? Integer.MAX_VALUE : 0;
                try (CudaBackend be = CudaBackend.open(CudaOptions.defaults().withSparseMlpGemmRows(rows))) {
                    new Run(be, o, result).crossover(cross.putArray(path), path);
                }
            }
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
        int tb = 0;
        int bn = 128;
        double[] dens = {1.0, 0.5, 0.25, 0.13, 0.05};
        List<String> parts = List.of("mlp", "attention");
        int[] crossTb = {};
        double[] crossDens = {1.0, 0.25};
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
                case "--parts" -> parts = List.of(v.split(","));
                case "--crossover-token-blocks" -> crossTb = Arrays.stream(v.split(",")).mapToInt(Integer::parseInt)
                        .toArray();
                case "--crossover-densities" -> crossDens = Arrays.stream(v.split(",")).mapToDouble(
                        Double::parseDouble).toArray();
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--samples" -> samples = Integer.parseInt(v);
                case "--reps" -> reps = Integer.parseInt(v);
                case "--commit" -> commit = v;
                case "--out" -> out = Path.of(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        return new Options(batch, seq, c, h, heads, tb, bn, dens, parts, crossTb, crossDens, warmup, samples, reps,
                commit, out);
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
            if (o.parts().contains("mlp")) {
                mlp();
            }
            if (o.parts().contains("attention")) {
                attention();
            }
        }

        /** The MLP's operands at the configured shapes (three input sets, seeded). */
        private final class MlpOperands {
            final Tensor w1 = random(DType.BF16, 0.03f, 1, o.h(), o.c());
            final Tensor w2 = random(DType.BF16, 0.03f, 2, o.c(), o.h());
            final Tensor b1 = random(DType.F32, 0.1f, 3, o.h());
            final Tensor b2 = random(DType.F32, 0.1f, 4, o.c());
            final Tensor[] x = new Tensor[SETS];
            final Tensor[] dOut = new Tensor[SETS];
            final Tensor dB1 = be.allocate(DType.F32, o.h());
            final Tensor dB2 = be.allocate(DType.F32, o.c());
            final Tensor dInp = be.allocate(DType.BF16, n, o.c());
            final Tensor out = be.allocate(DType.BF16, n, o.c());

            MlpOperands() {
                for (int s = 0; s < SETS; s++) {
                    x[s] = random(DType.BF16, 1f, 10 + s, n, o.c());
                    dOut[s] = random(DType.BF16, 1f, 20 + s, n, o.c());
                }
            }

            /** Median fwd and bwd ms of the sparse MLP over LAYOUTS random layouts of token block tb at density d. */
            double[] sparse(int tb, double d) {
                NeuronLayout[] layouts = new NeuronLayout[LAYOUTS];
                for (int l = 0; l < LAYOUTS; l++) {
                    layouts[l] = NeuronLayouts.random(n, tb, o.h(), o.neuronBlock(), d, 100 + l, be);
                }
                Tensor hidden = be.allocate(DType.BF16, n, (long) layouts[0].maxBlocks() * o.neuronBlock());
                double f = time(i -> be.sparse().sparseMlpForward(out, hidden, x[i % SETS], w1, b1, w2, b2,
                        layouts[i % LAYOUTS]));
                double b = time(i -> be.sparse().sparseMlpBackward(dInp, dB1, dB2, dOut[i % SETS], hidden, w1, w2,
                        layouts[i % LAYOUTS]));
                double bNoBias = time(i -> be.sparse().sparseMlpBackward(dInp, null, null, dOut[i % SETS], hidden,
                        w1, w2, layouts[i % LAYOUTS]));
                be.sync();
                return new double[] {f, b, NeuronLayouts.density(be, layouts[0], o.h()), layouts[0].maxBlocks(),
                        bNoBias};
            }
        }

        /** Sparse MLP fwd + bwd at each crossover token block and density on this (path-forced) backend. */
        void crossover(ArrayNode rows, String path) {
            MlpOperands ops = new MlpOperands();
            for (int tb : o.crossoverTokenBlocks()) {
                for (double d : o.crossoverDensities()) {
                    double[] t = ops.sparse(tb, d);
                    rows.addObject().put("token_block", tb).put("density_target", d).put("density_actual", t[2])
                            .put("fwd_ms", t[0]).put("bwd_ms", t[1]).put("fwd_bwd_ms", t[0] + t[1]);
                    System.out.printf("mlp crossover %s token block %d density %.3f: fwd %.3f bwd %.3f f+b %.3f ms%n",
                            path, tb, d, t[0], t[1], t[0] + t[1]);
                }
            }
        }

        private void mlp() {
            int c = o.c();
            int h = o.h();
            MlpOperands ops = new MlpOperands();
            Tensor[] x = ops.x;
            Tensor[] dOut = ops.dOut;
            ObjectNode mlp = result.putObject("mlp");
            double flopsDense = 2.0 * n * c * h;  // one product
            mlp.put("gflop_per_product_dense", flopsDense / 1e9);

            // Dense: cuBLASLt fc1 + bias + ReLU epilogue, fc2 + bias; backward products, ReLU backward, bias sums.
            Tensor hid = be.allocate(DType.BF16, n, h);
            Tensor dH = be.allocate(DType.BF16, n, h);
            Tensor dHm = be.allocate(DType.BF16, n, h);
            IntConsumer denseFwd = i -> {
                be.linear().linearForwardRelu(hid, x[i % SETS], ops.w1, ops.b1);
                be.linear().linearForward(ops.out, hid, ops.w2, ops.b2);
            };
            IntConsumer denseBwd = i -> {
                be.linear().linearBackwardInput(dH, dOut[i % SETS], ops.w2, 1f, false);
                be.activation().activationBackward(dHm, dH, hid, Activation.RELU);
                be.linear().linearBackwardInput(ops.dInp, dHm, ops.w1, 1f, false);
                be.linear().linearBackwardWeight(null, ops.dB1, dHm, x[i % SETS], 1f);
                be.linear().linearBackwardWeight(null, ops.dB2, dOut[i % SETS], hid, 1f);
            };
            IntConsumer denseBwdNoBias = i -> {
                be.linear().linearBackwardInput(dH, dOut[i % SETS], ops.w2, 1f, false);
                be.activation().activationBackward(dHm, dH, hid, Activation.RELU);
                be.linear().linearBackwardInput(ops.dInp, dHm, ops.w1, 1f, false);
            };
            double dF = time(denseFwd);
            double dB = time(denseBwd);
            double dBn = time(denseBwdNoBias);
            mlp.put("dense_cublas_fwd_ms", dF);
            mlp.put("dense_cublas_bwd_ms", dB);
            mlp.put("dense_cublas_fwd_bwd_ms", dF + dB);
            mlp.put("dense_cublas_bwd_no_bias_grads_ms", dBn);
            mlp.put("dense_cublas_fwd_bwd_no_bias_grads_ms", dF + dBn);
            System.out.printf("mlp dense cuBLASLt: fwd %.3f bwd %.3f f+b %.3f ms; without bias gradients bwd %.3f "
                    + "f+b %.3f ms%n", dF, dB, dF + dB, dBn, dF + dBn);

            ArrayNode rows = mlp.putArray("sparse");
            for (double d : o.densities()) {
                double[] t = ops.sparse(o.tokenBlockRows(), d);
                double f = t[0];
                double b = t[1];
                double actual = t[2];
                ObjectNode row = rows.addObject();
                row.put("density_target", d).put("density_actual", actual).put("blocks_per_token_block", (int) t[3]);
                row.put("fwd_ms", f).put("bwd_ms", b).put("fwd_bwd_ms", f + b);
                row.put("vs_dense_cublas_fwd", f / dF).put("vs_dense_cublas_bwd", b / dB);
                row.put("vs_dense_cublas_fwd_bwd", (f + b) / (dF + dB));
                row.put("vs_dense_over_density", (f + b) / (dF + dB) / actual);
                row.put("effective_tflops_fwd_bwd", 4 * flopsDense * actual / ((f + b) * 1e-3) / 1e12);
                double bn = t[4];
                row.put("bwd_no_bias_grads_ms", bn).put("fwd_bwd_no_bias_grads_ms", f + bn);
                row.put("vs_dense_cublas_fwd_bwd_no_bias_grads", (f + bn) / (dF + dBn));
                System.out.printf("mlp sparse density %.3f (actual %.4f): fwd %.3f bwd %.3f f+b %.3f ms (%.3f of "
                        + "dense; fwd %.3f, bwd %.3f); without bias gradients f+b %.3f ms (%.3f of dense)%n", d,
                        actual, f, b, f + b, (f + b) / (dF + dB), f / dF, b / dB, f + bn, (f + bn) / (dF + dBn));
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
