package org.longexposure.cuda.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.longexposure.cuda.backend.DeviceTestSupport.BF16_HALF_ULP;
import static org.longexposure.cuda.backend.DeviceTestSupport.U;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertBf16Within;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertExact;
import static org.longexposure.cuda.backend.DeviceTestSupport.assertWithin;
import static org.longexposure.cuda.backend.DeviceTestSupport.floats;
import static org.longexposure.cuda.backend.DeviceTestSupport.randomBf16;
import static org.longexposure.cuda.backend.DeviceTestSupport.tensor;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.Activation;
import org.longexposure.backend.Backend;
import org.longexposure.backend.BlockLayout;
import org.longexposure.backend.NeuronLayout;
import org.longexposure.sparsity.mask.BlockLayouts;
import org.longexposure.sparsity.mask.NeuronLayouts;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * {@link CudaSparse}: the neuron-block-sparse ReLU MLP on both of its paths (backends forced onto the direct kernels
 * and onto gather + cuBLASLt through {@code sparseMlpGemmRows}, and the default backend whose rule picks one)
 * against the CPU backend's CpuSparseMlp on the same bf16-exact inputs (random layouts; layouts capped below the
 * block count with token blocks listing fewer than maxBlocks, one listing none; one token block and several, the
 * last partial: N = 333 in token blocks of 40 to 1000 rows; C not a multiple of the 128-column tile; biases present
 * and null; maxBlocks = 0) and against the CUDA backend's own dense fc1 → ReLU → fc2 (cuBLASLt) with a full layout;
 * block-sparse attention through {@code sparse()} with a full layout against dense attention (bit for bit). Outputs are poisoned with NaN before each run, so an unwritten element fails.
 *
 * <p>Bounds, per element, from magnitudes computed on the host in float64 ({@code |x|·|w|} sums over the same terms):
 * two fp32 sums of the same K terms in different orders differ by at most {@code 2·(K+1)·u·Σ|terms|} (u = 2^-24);
 * each bf16 output adds half a bf16 ulp (2^-8 relative, {@link DeviceTestSupport#assertBf16Within}); the GPU rounds
 * its hidden state (and its dH) to bf16 before the second product, so that product's bound adds
 * {@code Σ_x e_x·|w_x|} with e_x the first product's bound. The bias sums are f32 in both, over the same rows; their
 * bound is {@code 2·(rows+1)·u·Σ|terms|} plus the per-element error of the summed dH, plus half a bf16 ulp of each
 * summed dH element: the gather path sums dH after cuBLASLt rounded it to bf16 (as the dense path's
 * column sum of its bf16 dH does), the direct kernels before. A wrong neuron, row, block or
 * mask gives errors of the order of the values themselves, orders of magnitude over these bounds.
 */
@Tag("gpu")
class CudaSparseDeviceTest extends DeviceTestBase {
    private static final int N = 333;
    private static final int C = 200;
    private static final int H = 512;

    /** Backends whose sparse MLP always gathers (sparseMlpGemmRows = 0) or always runs the direct kernels (MAX). */
    private CudaBackend gathered;
    private CudaBackend direct;

    @BeforeAll
    void openPathBackends() {
        if (gpu != null) {
            gathered = CudaBackend.open(CudaOptions.defaults().withSparseMlpGemmRows(0));
            direct = CudaBackend.open(CudaOptions.defaults().withSparseMlpGemmRows(Integer.MAX_VALUE));
        }
    }

    @AfterAll
    void closePathBackends() {
        if (gathered != null) {
            gathered.close();
        }
        if (direct != null) {
            direct.close();
        }
    }

    /** The backend of a path: "direct", "gather", or "rule" (the default backend, its rule choosing). */
    private CudaBackend on(String path) {
        return switch (path) {
            case "direct" -> direct;
            case "gather" -> gathered;
            case "rule" -> gpu;
            default -> throw new IllegalArgumentException(path);
        };
    }

    /**
     * Inputs (bf16-exact), the mask, and the layout's maxBlocks cap ({@code cap}, or the widest token block's count
     * when that is larger).
     */
    private record Case(int tb, int bn, boolean[][] keep, int cap, float[] x, float[] w1, float[] b1, float[] w2,
                        float[] b2, float[] dOut, float[] dB1, float[] dB2) {
        static Case random(long seed, int tb, int bn, double density) {
            SplittableRandom r = new SplittableRandom(seed);
            int nTB = (N + tb - 1) / tb;
            int nb = H / bn;
            boolean[][] keep = new boolean[nTB][nb];
            for (boolean[] row : keep) {
                for (int j = 0; j < nb; j++) {
                    row[j] = r.nextDouble() < density;
                }
            }
            return withKeep(r, tb, bn, keep, 0);
        }

        /** Token block r lists {@code counts[r]} distinct random blocks; the layout's maxBlocks is {@code cap}. */
        static Case counted(long seed, int tb, int bn, int[] counts, int cap) {
            SplittableRandom r = new SplittableRandom(seed);
            int nb = H / bn;
            boolean[][] keep = new boolean[counts.length][nb];
            for (int t = 0; t < counts.length; t++) {
                int placed = 0;
                while (placed < counts[t]) {
                    int j = r.nextInt(nb);
                    if (!keep[t][j]) {
                        keep[t][j] = true;
                        placed++;
                    }
                }
            }
            return withKeep(r, tb, bn, keep, cap);
        }

        private static Case withKeep(SplittableRandom r, int tb, int bn, boolean[][] keep, int cap) {
            return new Case(tb, bn, keep, cap, randomBf16(r, N * C, -1, 1), randomBf16(r, H * C, -0.1, 0.1),
                    randomBf16(r, H, -0.2, 0.2), randomBf16(r, C * H, -0.1, 0.1), randomBf16(r, C, -0.5, 0.5),
                    randomBf16(r, N * C, -1, 1), randomBf16(r, H, -1, 1), randomBf16(r, C, -1, 1));
        }

        int maxBlocks() {
            return Math.max(cap, Arrays.stream(keep).mapToInt(k -> {
                int c = 0;
                for (boolean b : k) {
                    c += b ? 1 : 0;
                }
                return c;
            }).max().orElse(0));
        }

        int hw() {
            return maxBlocks() * bn;
        }

        /** neuron[r][x]: the neuron of compacted column x of token block r (x < nS_r). */
        int[][] neurons() {
            int[][] out = new int[keep.length][];
            for (int r = 0; r < keep.length; r++) {
                int[] ns = new int[H];
                int n = 0;
                for (int j = 0; j < keep[r].length; j++) {
                    if (keep[r][j]) {
                        for (int t = 0; t < bn; t++) {
                            ns[n++] = j * bn + t;
                        }
                    }
                }
                out[r] = Arrays.copyOf(ns, n);
            }
            return out;
        }

        NeuronLayout layout(Backend be) {
            NeuronLayout l = NeuronLayouts.fromBooleans(keep, N, tb, H, bn, be);
            return new NeuronLayout(bn, tb, N, maxBlocks(), l.rowPtr(), l.blockIdx());
        }
    }

    /** The op's outputs: hidden (N, HW), out (N, C), dInp (N, C), dB1 (H), dB2 (C). */
    private record Outputs(float[] hidden, float[] out, float[] dInp, float[] dB1, float[] dB2) {
    }

    private static float[] nanArray(int n) {
        float[] a = new float[n];
        Arrays.fill(a, Float.NaN);
        return a;
    }

    private Outputs run(Backend be, Case c, float[] hiddenForBackward) {
        return run(be, c, hiddenForBackward, true);
    }

    /**
     * Forward, then backward with {@code hiddenForBackward} (or the forward's own hidden when null) on {@code be}:
     * activations in its dtype, weights as BF16 on the GPU (adopted) and F32 on the CPU (same values). Without
     * {@code biases}, b1, b2, dB1 and dB2 are null (the returned dB1, dB2 then hold the case's untouched values).
     */
    private Outputs run(Backend be, Case c, float[] hiddenForBackward, boolean biases) {
        DType act = be.activationDType();
        boolean onGpu = be != cpu;
        int hw = c.hw();
        NeuronLayout layout = c.layout(be);
        Tensor x = tensor(be, act, c.x, N, C);
        Tensor w1 = tensor(be, onGpu ? DType.BF16 : DType.F32, c.w1, H, C);
        Tensor w2 = tensor(be, onGpu ? DType.BF16 : DType.F32, c.w2, C, H);
        Tensor b1 = biases ? tensor(be, DType.F32, c.b1, H) : null;
        Tensor b2 = biases ? tensor(be, DType.F32, c.b2, C) : null;
        Tensor hidden = tensor(be, act, nanArray(N * hw), N, hw);
        Tensor out = tensor(be, act, nanArray(N * C), N, C);
        be.sparse().sparseMlpForward(out, hidden, x, w1, b1, w2, b2, layout);
        float[] h = floats(be, hidden);
        float[] o = floats(be, out);
        Tensor hb = hiddenForBackward == null ? hidden : tensor(be, act, hiddenForBackward, N, hw);
        Tensor dOut = tensor(be, act, c.dOut, N, C);
        Tensor dInp = tensor(be, act, nanArray(N * C), N, C);
        Tensor dB1 = biases ? tensor(be, DType.F32, c.dB1, H) : null;
        Tensor dB2 = biases ? tensor(be, DType.F32, c.dB2, C) : null;
        be.sparse().sparseMlpBackward(dInp, dB1, dB2, dOut, hb, w1, w2, layout);
        return new Outputs(h, o, floats(be, dInp), biases ? floats(be, dB1) : c.dB1.clone(),
                biases ? floats(be, dB2) : c.dB2.clone());
    }

    /**
     * The forward with a residual ({@code out = hidden·W2_Sᵀ + b2 + residual}, the residual read where the second
     * product writes out: the fc2 kernel's epilogue, cuBLASLt's C on the gather path, the bias-rows kernel at
     * HW = 0) against the forward without one followed by addForward of the residual: the two differ only by
     * rounding (the unfused form rounds the product to bf16 before the sum; autotuned cuBLASLt algorithms may sum in
     * another order or split K), bounded per element by a few bf16 steps of the operands, {@code (|product| +
     * |residual| + |out|)·2^-6}; a residual added at the wrong row or not at all gives errors of the residual's
     * size (|r| up to 4).
     * The hidden state is bit-equal, the residual is left as it was, and residual = out itself works in place
     * (within the same bound).
     */
    @ParameterizedTest(name = "{0}: token block {1}, neuron block {2}, density {3}, biases {4}")
    @CsvSource({"direct, 128, 128, 0.5, true", "direct, 64, 64, 0.4, false", "gather, 333, 128, 0.6, true",
                "gather, 100, 64, 0.5, false", "gather, 128, 128, 0.0, true", "gather, 333, 128, 0.0, false",
                "direct, 128, 128, 0.0, true"})
    void residualEqualsForwardThenAdd(String path, int tb, int bn, double density, boolean biases) {
        Case c = Case.random(4242L + tb + bn + (long) (density * 10), tb, bn, density);
        CudaBackend be = on(path);
        float[] res = randomBf16(new SplittableRandom(tb * 31L + bn), N * C, -4, 4);
        NeuronLayout layout = c.layout(be);
        Tensor x = tensor(be, DType.BF16, c.x, N, C);
        Tensor w1 = tensor(be, DType.BF16, c.w1, H, C);
        Tensor w2 = tensor(be, DType.BF16, c.w2, C, H);
        Tensor b1 = biases ? tensor(be, DType.F32, c.b1, H) : null;
        Tensor b2 = biases ? tensor(be, DType.F32, c.b2, C) : null;
        Tensor r = tensor(be, DType.BF16, res, N, C);
        Tensor hidden = tensor(be, DType.BF16, nanArray(N * c.hw()), N, c.hw());
        Tensor fused = tensor(be, DType.BF16, nanArray(N * C), N, C);
        be.sparse().sparseMlpForward(fused, hidden, x, w1, b1, w2, b2, r, layout);
        float[] hFused = floats(be, hidden);
        Tensor unfused = tensor(be, DType.BF16, nanArray(N * C), N, C);
        be.sparse().sparseMlpForward(unfused, hidden, x, w1, b1, w2, b2, layout);
        float[] product = floats(be, unfused);
        be.activation().addForward(unfused, unfused, r);
        float[] got = floats(be, fused);
        float[] two = floats(be, unfused);
        assertExact("hidden", floats(be, hidden), hFused);
        assertExact("residual (untouched)", floats(be, r), res);
        // residual = out itself: out starts as the residual and the MLP's output is added in place
        Tensor inPlace = tensor(be, DType.BF16, res, N, C);
        be.sparse().sparseMlpForward(inPlace, hidden, x, w1, b1, w2, b2, inPlace, layout);
        float[] in = floats(be, inPlace);
        for (int i = 0; i < got.length; i++) {
            double tol = (Math.abs(product[i]) + Math.abs(res[i]) + Math.abs(two[i])) * 0x1p-6;
            assertThat((double) Math.abs(got[i] - two[i])).as("out[%d]: %s vs %s", i, got[i], two[i])
                    .isLessThanOrEqualTo(tol);
            assertThat((double) Math.abs(in[i] - got[i])).as("in place out[%d]: %s vs %s", i, in[i], got[i])
                    .isLessThanOrEqualTo(tol);
        }
    }

    @ParameterizedTest(name = "{0}: token block {1}, neuron block {2}, density {3}")
    @CsvSource({"direct, 128, 128, 0.5", "direct, 64, 64, 0.3", "direct, 128, 64, 0.6", "direct, 64, 128, 0.75",
                "direct, 128, 128, 1.0", "direct, 256, 128, 0.5", "direct, 192, 64, 0.4",
                "gather, 128, 128, 0.5", "gather, 64, 64, 0.3", "gather, 333, 128, 0.6", "gather, 100, 64, 0.75",
                "gather, 1000, 128, 1.0", "gather, 40, 32, 0.5", "rule, 128, 128, 0.4", "rule, 384, 64, 0.4"})
    void randomLayoutsMatchCpu(String path, int tb, int bn, double density) {
        Case c = Case.random(1000L * tb + bn + (long) (density * 100), tb, bn, density);
        Outputs g = run(on(path), c, null);
        // The CPU's backward gets the GPU's hidden state, so both apply the same ReLU mask.
        Outputs want = run(cpu, c, g.hidden);
        Bounds b = Bounds.of(c, g.hidden);
        assertBf16Within("hidden", g.hidden, want.hidden, b.hidden);
        assertBf16Within("out", g.out, want.out, b.out);
        assertBf16Within("dInp", g.dInp, want.dInp, b.dInp);
        assertWithin("dB1", g.dB1, want.dB1, b.dB1);
        assertWithin("dB2", g.dB2, want.dB2, b.dB2);
    }

    /**
     * Layouts capped below the block count: maxBlocks = nb − 1, token blocks listing maxBlocks, none, one and
     * maxBlocks − 1 blocks in turn (one token block: maxBlocks − 1, so its compacted width has padded slots), biases
     * present or null, on both paths.
     */
    @ParameterizedTest(name = "{0}: token block {1}, neuron block {2}, biases {3}")
    @CsvSource({"gather, 333, 128, true", "gather, 333, 64, false", "gather, 1000, 128, false",
                "gather, 100, 64, true", "gather, 100, 128, false", "gather, 128, 128, true", "gather, 96, 64, false",
                "direct, 128, 128, true", "direct, 64, 64, false", "direct, 256, 128, false", "direct, 192, 64, true"})
    void cappedLayoutsMatchCpu(String path, int tb, int bn, boolean biases) {
        int nTB = (N + tb - 1) / tb;
        int cap = H / bn - 1;
        int[] counts = new int[nTB];
        for (int r = 0; r < nTB; r++) {
            counts[r] = nTB == 1 ? cap - 1 : switch (r % 4) {
                case 0 -> cap;
                case 1 -> 0;
                case 2 -> 1;
                default -> cap - 1;
            };
        }
        Case c = Case.counted(31L * tb + bn, tb, bn, counts, cap);
        assertThat(c.maxBlocks()).isEqualTo(cap);
        Outputs g = run(on(path), c, null, biases);
        Outputs want = run(cpu, c, g.hidden, biases);
        Bounds b = Bounds.of(c, g.hidden);
        assertBf16Within("hidden", g.hidden, want.hidden, b.hidden);
        assertBf16Within("out", g.out, want.out, b.out);
        assertBf16Within("dInp", g.dInp, want.dInp, b.dInp);
        assertWithin("dB1", g.dB1, want.dB1, b.dB1);
        assertWithin("dB2", g.dB2, want.dB2, b.dB2);
        assertThat(((CudaSparse) on(path).sparse()).batchRefused()).as("cuBLASLt refused a strided batch").isFalse();
    }

    /** One token block listing nothing under a cap of 2 blocks: hidden all 0, out = b2, dInp = 0, dB1 untouched. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"direct", "gather"})
    void tokenBlockListingNothingUnderACap(String path) {
        int tb = path.equals("direct") ? 384 : N;
        Case c = Case.counted(90, tb, 128, new int[] {0}, 2);
        Outputs g = run(on(path), c, null);
        float[] b2Rows = new float[N * C];
        for (int i = 0; i < N; i++) {
            System.arraycopy(c.b2, 0, b2Rows, i * C, C);
        }
        float[] absHidden = new float[g.hidden.length];
        for (int i = 0; i < absHidden.length; i++) {
            absHidden[i] = Math.abs(g.hidden[i]);
        }
        float[] absDInp = new float[g.dInp.length];
        for (int i = 0; i < absDInp.length; i++) {
            absDInp[i] = Math.abs(g.dInp[i]);
        }
        assertExact("|hidden|", absHidden, new float[N * 256]);
        assertExact("out", g.out, b2Rows);
        assertExact("|dInp|", absDInp, new float[N * C]);
        assertExact("dB1 (untouched)", g.dB1, c.dB1);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"direct", "gather"})
    void emptyTokenBlocksWriteBiasAndZeros(String path) {
        Case c = Case.random(77, 64, 64, 0.5);
        // token blocks 0 and 3 list nothing: out = b2, hidden = 0, dInp = 0 there
        Arrays.fill(c.keep[0], false);
        Arrays.fill(c.keep[3], false);
        Outputs g = run(on(path), c, null);
        Outputs want = run(cpu, c, g.hidden);
        Bounds b = Bounds.of(c, g.hidden);
        assertBf16Within("hidden", g.hidden, want.hidden, b.hidden);
        assertBf16Within("out", g.out, want.out, b.out);
        assertBf16Within("dInp", g.dInp, want.dInp, b.dInp);
        assertWithin("dB1", g.dB1, want.dB1, b.dB1);
        for (int row : new int[] {0, 63, 3 * 64, 3 * 64 + 17}) {
            for (int j = 0; j < C; j++) {
                assertThat(g.out[row * C + j]).as("out[%d, %d]", row, j).isEqualTo(c.b2[j]);
                assertThat(Math.abs(g.dInp[row * C + j])).as("|dInp[%d, %d]|", row, j).isEqualTo(0f);
            }
            for (int j = 0; j < c.hw(); j++) {
                assertThat(Math.abs(g.hidden[row * c.hw() + j])).as("|hidden[%d, %d]|", row, j).isEqualTo(0f);
            }
        }
    }

    @ParameterizedTest(name = "{0}: token block {1}, biases {2}")
    @CsvSource({"direct, 128, true", "gather, 128, true", "gather, 333, false", "gather, 1000, true"})
    void allEmptyLayoutGivesBiasOnly(String path, int tb, boolean biases) {
        Case c = Case.random(78, tb, 128, 0.0);
        assertThat(c.maxBlocks()).isZero();
        Outputs g = run(on(path), c, null, biases);
        float[] b2Rows = new float[N * C];
        for (int i = 0; biases && i < N; i++) {
            System.arraycopy(c.b2, 0, b2Rows, i * C, C);
        }
        assertExact("out", g.out, b2Rows);
        assertExact("dInp", g.dInp, new float[N * C]);
        assertExact("dB1 (untouched)", g.dB1, c.dB1);
        if (!biases) {
            return;
        }
        // dB2 against a float64 host sum (the CPU op's Plan reads the leading dimension as numel / last dimension,
        // which a hidden state of width 0 does not give).
        float[] dB2 = new float[C];
        for (int j = 0; j < C; j++) {
            double sum = c.dB2[j];
            for (int i = 0; i < N; i++) {
                sum += c.dOut[i * C + j];
            }
            dB2[j] = (float) sum;
        }
        assertWithin("dB2", g.dB2, dB2, Bounds.of(c, g.hidden).dB2);
    }

    /**
     * A full layout equals the CUDA backend's dense path (cuBLASLt fc1 with bias, ReLU kernel, fc2 with bias; backward
     * through linearBackwardInput and the ReLU backward kernel), within bf16 rounding: the products sum in different
     * orders (cuBLASLt's split of K is its own), so bit equality is not available. Biases are bf16-exact, so the
     * dense path's bf16 bias copy changes nothing.
     */
    @ParameterizedTest(name = "{0}: token block {1}, neuron block {2}")
    @CsvSource({"direct, 128, 128", "direct, 64, 64", "gather, 333, 128", "gather, 128, 64"})
    void fullLayoutMatchesDenseCudaPath(String path, int tb, int bn) {
        CudaBackend be = on(path);
        Case c = Case.random(4242 + tb, tb, bn, 1.0);
        assertThat(c.hw()).isEqualTo(H);
        // Dense on the same GPU backend.
        Tensor x = tensor(be, DType.BF16, c.x, N, C);
        Tensor w1 = tensor(be, DType.BF16, c.w1, H, C);
        Tensor w2 = tensor(be, DType.BF16, c.w2, C, H);
        Tensor b1 = tensor(be, DType.F32, c.b1, H);
        Tensor b2 = tensor(be, DType.F32, c.b2, C);
        Tensor pre = be.allocate(DType.BF16, N, H);
        Tensor hd = be.allocate(DType.BF16, N, H);
        Tensor od = be.allocate(DType.BF16, N, C);
        be.linear().linearForward(pre, x, w1, b1);
        be.activation().activationForward(hd, pre, Activation.RELU);
        be.linear().linearForward(od, hd, w2, b2);
        Tensor dOut = tensor(be, DType.BF16, c.dOut, N, C);
        Tensor dHd = be.allocate(DType.BF16, N, H);
        Tensor dHm = be.allocate(DType.BF16, N, H);
        Tensor dInpD = be.allocate(DType.BF16, N, C);
        be.linear().linearBackwardInput(dHd, dOut, w2, 1f, false);
        be.activation().activationBackward(dHm, dHd, pre, Activation.RELU);
        be.linear().linearBackwardInput(dInpD, dHm, w1, 1f, false);
        float[] hDense = floats(be, hd);
        float[] oDense = floats(be, od);
        float[] dInpDense = floats(be, dInpD);
        // Sparse with a full layout; its backward reads the dense hidden, so both use one ReLU mask.
        Outputs s = run(be, c, hDense);

        Bounds b = Bounds.of(c, hDense);
        double[] hTol = new double[N * H];
        for (int i = 0; i < hTol.length; i++) {
            hTol[i] = 2 * BF16_HALF_ULP * Math.max(Math.abs(s.hidden[i]), Math.abs(hDense[i])) + 2 * b.hidden[i];
        }
        assertWithin("hidden (sparse vs dense)", s.hidden, hDense, hTol);
        // fc2 reads the two hidden states: their measured difference enters through |W2|.
        double[] oTol = new double[N * C];
        double[] iTol = new double[N * C];
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < C; j++) {
                double via = 0;
                for (int n = 0; n < H; n++) {
                    via += Math.abs(s.hidden[i * H + n] - hDense[i * H + n]) * Math.abs(c.w2[j * H + n]);
                }
                double v = 2 * BF16_HALF_ULP * Math.max(Math.abs(s.out[i * C + j]), Math.abs(oDense[i * C + j]));
                oTol[i * C + j] = v + via + 2 * b.outSum[i * C + j];
                double d = 2 * BF16_HALF_ULP * Math.max(Math.abs(s.dInp[i * C + j]), Math.abs(dInpDense[i * C + j]));
                iTol[i * C + j] = d + 2 * b.dInp[i * C + j];
            }
        }
        assertWithin("out (sparse vs dense)", s.out, oDense, oTol);
        assertWithin("dInp (sparse vs dense)", s.dInp, dInpDense, iTol);
    }

    @Test
    void fullBlockLayoutAttentionEqualsDenseBits() {
        int bSz = 2;
        int t = 150;
        int nh = 2;
        int c = nh * 64;
        SplittableRandom r = new SplittableRandom(9);
        Tensor q = tensor(gpu, DType.BF16, randomBf16(r, bSz * t * c, -1, 1), bSz, t, c);
        Tensor k = tensor(gpu, DType.BF16, randomBf16(r, bSz * t * c, -1, 1), bSz, t, c);
        Tensor v = tensor(gpu, DType.BF16, randomBf16(r, bSz * t * c, -1, 1), bSz, t, c);
        Tensor g = tensor(gpu, DType.BF16, randomBf16(r, bSz * t * c, -1, 1), bSz, t, c);
        int[] ones = new int[bSz * t];
        Arrays.fill(ones, 1);
        Tensor mask = DeviceTestSupport.ints(gpu, ones, bSz, t);
        float scale = 0.125f;
        float[][] dense = attention(q, k, v, g, mask, nh, scale, null);
        BlockLayout full = BlockLayouts.full(nh, t, 64, gpu);
        float[][] sparse = attention(q, k, v, g, mask, nh, scale, full);
        String[] names = {"out", "lse", "dQ", "dK", "dV"};
        for (int i = 0; i < names.length; i++) {
            assertExact(names[i], sparse[i], dense[i]);
        }
    }

    private float[][] attention(Tensor q, Tensor k, Tensor v, Tensor g, Tensor mask, int nh, float scale,
                                BlockLayout layout) {
        long[] dims = q.shape().dims();
        Tensor out = gpu.allocate(DType.BF16, dims);
        Tensor lse = gpu.allocate(DType.F32, dims[0], nh, dims[1]);
        Tensor dQ = gpu.allocate(DType.BF16, dims);
        Tensor dK = gpu.allocate(DType.BF16, dims);
        Tensor dV = gpu.allocate(DType.BF16, dims);
        if (layout == null) {
            gpu.attention().attentionForward(out, lse, q, k, v, mask, nh, scale);
            gpu.attention().attentionBackward(dQ, dK, dV, g, out, lse, q, k, v, mask, nh, scale);
        } else {
            gpu.sparse().blockSparseAttentionForward(out, lse, q, k, v, mask, nh, scale, layout);
            gpu.sparse().blockSparseAttentionBackward(dQ, dK, dV, g, out, lse, q, k, v, mask, nh, scale, layout);
        }
        return new float[][] {floats(gpu, out), floats(gpu, lse), floats(gpu, dQ), floats(gpu, dK),
                floats(gpu, dV)};
    }

    @Test
    void unsupportedLayoutsFailClearly() {
        Case c = Case.random(5, 128, 128, 0.5);
        Tensor x = gpu.allocate(DType.BF16, N, C);
        Tensor w1 = gpu.allocate(DType.BF16, H, C);
        Tensor w2 = gpu.allocate(DType.BF16, C, H);
        Tensor out = gpu.allocate(DType.BF16, N, C);
        NeuronLayout bn4 = NeuronLayouts.full(N, 64, H, 4, gpu);
        assertThatThrownBy(() -> gpu.sparse().sparseMlpForward(out, gpu.allocate(DType.BF16, N, H), x, w1, null, w2,
                null, bn4)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("neuronBlock 4");
        NeuronLayout bn96 = NeuronLayouts.full(N, 128, H, 96, gpu);
        assertThatThrownBy(() -> gpu.sparse().sparseMlpForward(out, gpu.allocate(DType.BF16, N, 6L * 96), x, w1,
                null, w2, null, bn96)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("not a multiple of the neuron block 96");
        NeuronLayout l = c.layout(gpu);
        assertThatThrownBy(() -> gpu.sparse().sparseMlpForward(out, gpu.allocate(DType.BF16, N, c.hw() + 64), x, w1,
                null, w2, null, l)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("hidden");
    }

    /**
     * Per-element bounds (see the class comment) from float64 magnitude sums over the case's layout; hidden is the
     * bf16 hidden state the backward reads (its mask).
     */
    private record Bounds(double[] hidden, double[] out, double[] outSum, double[] dInp, double[] dB1,
                          double[] dB2) {
        static Bounds of(Case c, float[] hiddenBwd) {
            int hw = c.hw();
            int[][] nrn = c.neurons();
            double[] hB = new double[N * hw];
            double[] oB = new double[N * C];
            double[] oS = new double[N * C];
            double[] iB = new double[N * C];
            double[] b1B = new double[H];
            double[] b2B = new double[C];
            double[] b1Abs = new double[H];
            double[] b1Err = new double[H];
            double[] b1Round = new double[H];
            for (int i = 0; i < N; i++) {
                int[] ns = nrn[i / c.tb];
                int m = ns.length;
                double[] hAbs = new double[m];   // Σ|x||w1| + |b1| per compacted column
                double[] hVal = new double[m];   // the exact pre-activation
                double[] dhAbs = new double[m];  // Σ|dOut||w2| (masked)
                double[] dhVal = new double[m];
                for (int q = 0; q < m; q++) {
                    int n = ns[q];
                    double a = Math.abs(c.b1[n]);
                    double v = c.b1[n];
                    double da = 0;
                    double dv = 0;
                    for (int k = 0; k < C; k++) {
                        a += Math.abs((double) c.x[i * C + k] * c.w1[n * C + k]);
                        v += (double) c.x[i * C + k] * c.w1[n * C + k];
                        da += Math.abs((double) c.dOut[i * C + k] * c.w2[k * H + n]);
                        dv += (double) c.dOut[i * C + k] * c.w2[k * H + n];
                    }
                    boolean on = hiddenBwd[i * hw + q] > 0;
                    hAbs[q] = a;
                    hVal[q] = Math.max(v, 0);
                    dhAbs[q] = on ? da : 0;
                    dhVal[q] = on ? dv : 0;
                    hB[i * hw + q] = 2 * (C + 1) * U * a;
                    double dhErr = 2 * (C + 1) * U * dhAbs[q];
                    b1Abs[n] += Math.abs(dhVal[q]) + dhErr;
                    b1Err[n] += dhErr;
                    b1Round[n] += BF16_HALF_ULP * (Math.abs(dhVal[q]) + dhErr);
                }
                for (int j = 0; j < C; j++) {
                    double via = 0;
                    double sum = Math.abs(c.b2[j]);
                    double dvia = 0;
                    double dsum = 0;
                    for (int q = 0; q < m; q++) {
                        int n = ns[q];
                        double w2 = Math.abs(c.w2[j * H + n]);
                        double eh = BF16_HALF_ULP * (Math.abs(hVal[q]) + hB[i * hw + q]) + 2 * hB[i * hw + q];
                        via += eh * w2;
                        sum += (Math.abs(hVal[q]) + eh) * w2;
                        double w1 = Math.abs(c.w1[n * C + j]);
                        double edh = 2 * (C + 1) * U * dhAbs[q];
                        double e = BF16_HALF_ULP * (Math.abs(dhVal[q]) + edh) + 2 * edh;
                        dvia += e * w1;
                        dsum += (Math.abs(dhVal[q]) + e) * w1;
                    }
                    oS[i * C + j] = 2 * (m + 1) * U * sum;
                    oB[i * C + j] = via + oS[i * C + j];
                    iB[i * C + j] = dvia + 2 * (m + 1) * U * dsum;
                    b2B[j] += Math.abs(c.dOut[i * C + j]);
                }
            }
            for (int n = 0; n < H; n++) {
                b1B[n] = 2 * b1Err[n] + b1Round[n] + 2 * (N + 1) * U * (b1Abs[n] + Math.abs(c.dB1[n]));
            }
            for (int j = 0; j < C; j++) {
                b2B[j] = 2 * (N + 1) * U * (b2B[j] + Math.abs(c.dB2[j]));
            }
            return new Bounds(hB, oB, oS, iB, b1B, b2B);
        }
    }
}
