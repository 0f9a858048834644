package org.longexposure.sparsity.exposer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.model.Architecture;
import org.longexposure.model.CausalLm;
import org.longexposure.model.ForwardState;
import org.longexposure.model.LayerActivations;
import org.longexposure.model.ModelConfig;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.reference.RefAttention;

/**
 * The Exposer on the HF-verified tiny OPT fixture (H = 80, NH = 4) with awkward sizes (BN = 32, so the last neuron
 * block is partial; BA = 7) and right-padded micro-batches: per-token and union sparsity against direct counts on
 * the saved hidden states, tile masses against a float64 softmax recomputed from q and k, and padding that leaves
 * every number unchanged.
 */
class ExposerTest {
    private static final Exposer.Config CFG = new Exposer.Config(32, 7, 0.05, 0.95);

    private static Path fixtureModel() throws Exception {
        return Path.of(ExposerTest.class.getResource("/fixtures/opt-preln/model/config.json").toURI()).getParent();
    }

    /** A (B, T) batch with random ids in [3, 203) and the given real lengths; padding gets id {@code pad}. */
    private static Batch batch(long seed, int t, int[] lengths, int pad) {
        int b = lengths.length;
        int[] ids = new Rng(seed).ints(b * t, 200);
        int[] mask = new int[b * t];
        for (int r = 0; r < b; r++) {
            for (int i = 0; i < t; i++) {
                ids[r * t + i] = i < lengths[r] ? ids[r * t + i] + 3 : pad;
                mask[r * t + i] = i < lengths[r] ? 1 : 0;
            }
        }
        return new Batch(b, t, ids, mask, ids.clone());
    }

    private static List<Batch> batches(int pad) {
        return List.of(batch(11, 23, new int[] {23, 15, 9}, pad), batch(12, 17, new int[] {4, 17}, pad));
    }

    @Test
    void mlpMeasuresMatchDirectCountsOnRealTokens() throws Exception {
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(fixtureModel(), be)) {
            ModelConfig mc = lm.config();
            List<Batch> bs = batches(1);
            Exposure ex = Exposer.expose(be, lm, bs, CFG);
            int hDim = mc.ffnDim();
            assertThat(ex.realTokens()).isEqualTo(23 + 15 + 9 + 4 + 17);
            ForwardState st = lm.allocate(3, 23);
            long[] zeros = new long[mc.numLayers()];
            for (int m = 0; m < bs.size(); m++) {
                Batch b = bs.get(m);
                lm.forward(st, b, false);
                for (int l = 0; l < mc.numLayers(); l++) {
                    float[] h = st.layer(l).ffnHidden().toFloatArray();
                    boolean[] alive = new boolean[hDim];
                    long batchZeros = 0;
                    int real = 0;
                    for (int row = 0; row < b.attentionMask().length; row++) {
                        if (b.attentionMask()[row] == 0) {
                            continue;
                        }
                        real++;
                        for (int n = 0; n < hDim; n++) {
                            if (h[row * hDim + n] == 0f) {
                                batchZeros++;
                            } else {
                                alive[n] = true;
                            }
                        }
                    }
                    zeros[l] += batchZeros;
                    int dead = 0;
                    int deadBlocks = 0;
                    for (int blk = 0; blk * 32 < hDim; blk++) {
                        boolean all = true;
                        for (int n = blk * 32; n < Math.min(hDim, blk * 32 + 32); n++) {
                            all &= !alive[n];
                        }
                        deadBlocks += all ? 1 : 0;
                    }
                    for (boolean a : alive) {
                        dead += a ? 0 : 1;
                    }
                    Exposure.Layer el = ex.layers().get(l);
                    assertThat(el.unionSparsity()[m]).isEqualTo((double) dead / hDim);
                    assertThat(el.unionSparsity()[m]).isLessThanOrEqualTo((double) batchZeros / (real * hDim));
                    assertThat(el.blockSparsityExact()[m]).isEqualTo(deadBlocks / 3.0);
                    assertThat(el.blockSparsityNear()[m]).isGreaterThanOrEqualTo(el.blockSparsityExact()[m]);
                }
            }
            for (int l = 0; l < mc.numLayers(); l++) {
                double direct = (double) zeros[l] / (ex.realTokens() * hDim);
                assertThat(direct).as("ReLU leaves zeros").isBetween(0.05, 0.95);
                assertThat(ex.layers().get(l).tokenSparsity()).isCloseTo(direct, within(1e-12));
            }
        }
    }

    @Test
    void tileMassesMatchAFloat64SoftmaxAndRowsSumToOne() throws Exception {
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(fixtureModel(), be)) {
            ModelConfig mc = lm.config();
            List<Batch> bs = batches(1);
            Exposure ex = Exposer.expose(be, lm, bs, CFG);
            int nh = mc.numHeads();
            int hs = mc.headSize();
            int c = mc.hiddenSize();
            int nQB = (23 + 6) / 7;
            double[][][][] expect = new double[mc.numLayers()][nh][nQB][nQB];
            ForwardState st = lm.allocate(3, 23);
            double scale = 1.0 / Math.sqrt(hs);
            for (Batch b : bs) {
                lm.forward(st, b, false);
                int bsz = b.batchSize();
                int t = b.seqLen();
                int[] mask = b.attentionMask();
                for (int l = 0; l < mc.numLayers(); l++) {
                    LayerActivations a = st.layer(l);
                    double[] q = Rng.toDouble(a.q().toFloatArray());
                    double[] k = Rng.toDouble(a.k().toFloatArray());
                    double[] lse = new double[bsz * nh * t];
                    RefAttention.forward(new double[q.length], lse, q, k, k, mask, bsz, t, nh, hs, scale);
                    for (int r = 0; r < bsz; r++) {
                        for (int h = 0; h < nh; h++) {
                            for (int i = 0; i < t; i++) {
                                if (mask[r * t + i] == 0) {
                                    continue;
                                }
                                for (int j = 0; j <= i; j++) {
                                    if (mask[r * t + j] == 0) {
                                        continue;
                                    }
                                    double s = 0;
                                    for (int d = 0; d < hs; d++) {
                                        s += q[(r * t + i) * c + h * hs + d] * k[(r * t + j) * c + h * hs + d];
                                    }
                                    expect[l][h][i / 7][j / 7] += Math.exp(scale * s - lse[(r * nh + h) * t + i]);
                                }
                            }
                        }
                    }
                }
            }
            for (int l = 0; l < mc.numLayers(); l++) {
                for (int h = 0; h < nh; h++) {
                    Exposure.Head head = ex.layers().get(l).heads().get(h);
                    double[][] got = head.tileMass();
                    assertThat(got.length).isEqualTo(nQB);
                    for (int qb = 0; qb < nQB; qb++) {
                        double total = Arrays.stream(expect[l][h][qb]).sum();
                        assertThat(Arrays.stream(got[qb]).sum()).isCloseTo(1.0, within(1e-9));
                        for (int kb = 0; kb < nQB; kb++) {
                            assertThat(got[qb][kb]).as("layer %d head %d tile (%d, %d)", l, h, qb, kb)
                                    .isCloseTo(expect[l][h][qb][kb] / total, within(1e-5));
                            if (kb > qb) {
                                assertThat(got[qb][kb]).isZero();
                            }
                        }
                    }
                    assertThat(head.tileDensity()).isGreaterThan(0).isLessThanOrEqualTo(1);
                }
            }
        }
    }

    @Test
    void paddingTokensDoNotChangeAnyNumber() throws Exception {
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(fixtureModel(), be)) {
            Exposure a = Exposer.expose(be, lm, batches(1), CFG);
            Exposure b = Exposer.expose(be, lm, batches(150), CFG);
            assertThat(b.realTokens()).isEqualTo(a.realTokens());
            for (int l = 0; l < a.layers().size(); l++) {
                Exposure.Layer la = a.layers().get(l);
                Exposure.Layer lb = b.layers().get(l);
                assertThat(lb.tokenSparsity()).isEqualTo(la.tokenSparsity());
                assertThat(lb.unionSparsity()).containsExactly(la.unionSparsity());
                assertThat(lb.blockSparsityExact()).containsExactly(la.blockSparsityExact());
                assertThat(lb.blockSparsityNear()).containsExactly(la.blockSparsityNear());
                for (int h = 0; h < la.heads().size(); h++) {
                    double[][] ma = la.heads().get(h).tileMass();
                    double[][] mb = lb.heads().get(h).tileMass();
                    for (int qb = 0; qb < ma.length; qb++) {
                        assertThat(mb[qb]).containsExactly(ma[qb], within(1e-6));
                    }
                    assertThat(lb.heads().get(h).tileDensity()).isEqualTo(la.heads().get(h).tileDensity());
                }
            }
        }
    }
}
