package org.longexposure.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.Tensors;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.data.Batch;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * The FFN neuron permutation applied at load time leaves the model's function unchanged: on the F32 pre-LN fixture
 * (H = 80) with a seeded random permutation, every layer's FFN hidden state is the original one with its columns
 * permuted, bit for bit (each fc1 output is the same dot product), and the logits agree to float rounding: fc2 sums
 * the same H products in another order, an error of at most a few ulps of the partial sums, which the later layers
 * carry to the logits. The file round trip and bad files are checked too.
 */
class MlpPermutationTest {
    private static Path model() throws URISyntaxException {
        return Path.of(MlpPermutationTest.class.getResource("/fixtures/opt-preln/meta.json").toURI()).getParent()
                .resolve("model");
    }

    private static int[] shuffled(SplittableRandom rng, int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    private static Batch batch(SplittableRandom rng, int b, int t, int vocab) {
        int[] ids = new int[b * t];
        int[] mask = new int[b * t];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 3 + rng.nextInt(vocab - 3);
            mask[i] = (i % t) < t - 1 - 4 * (i / t) ? 1 : 0;   // the second row ends in padding
            if (mask[i] == 0) {
                ids[i] = 1;
            }
        }
        return new Batch(b, t, ids, mask, ids.clone());
    }

    @Test
    void aPermutedModelComputesTheSameFunction(@TempDir Path tmp) throws Exception {
        SplittableRandom rng = new SplittableRandom(7);
        try (CpuBackend be = new CpuBackend(2); CausalLm plain = Architecture.load(model(), be)) {
            ModelConfig mc = plain.config();
            int[][] order = new int[mc.numLayers()][];
            for (int l = 0; l < order.length; l++) {
                order[l] = shuffled(rng, mc.ffnDim());
            }
            MlpPermutation perm = new MlpPermutation(order);
            perm.save(tmp.resolve(MlpPermutation.FILE));
            MlpPermutation back = MlpPermutation.load(tmp.resolve(MlpPermutation.FILE));
            assertThat(back.order()).isDeepEqualTo(order);
            Batch b = batch(rng, 2, 29, mc.vocabSize());
            try (CausalLm permuted = Architecture.load(model(), be, back)) {
                ForwardState s0 = plain.allocate(2, 29);
                ForwardState s1 = permuted.allocate(2, 29);
                plain.forward(s0, b, false);
                permuted.forward(s1, b, false);
                int h = mc.ffnDim();
                for (int l = 0; l < mc.numLayers(); l++) {
                    float[] h0 = Tensors.toFloats(be, s0.layer(l).ffnHidden());
                    float[] h1 = Tensors.toFloats(be, s1.layer(l).ffnHidden());
                    if (l == 0) {
                        for (int t = 0; t < b.inputIds().length; t++) {
                            for (int i = 0; i < h; i++) {
                                assertThat(Float.floatToRawIntBits(h1[t * h + i]))
                                        .as("layer 0 row %d neuron %d", t, i)
                                        .isEqualTo(Float.floatToRawIntBits(h0[t * h + order[0][i]]));
                            }
                        }
                    }
                    double maxDiff = 0;
                    double maxAbs = 0;
                    for (int t = 0; t < b.inputIds().length; t++) {
                        for (int i = 0; i < h; i++) {
                            maxDiff = Math.max(maxDiff, Math.abs(h1[t * h + i] - h0[t * h + order[l][i]]));
                            maxAbs = Math.max(maxAbs, Math.abs(h0[t * h + order[l][i]]));
                        }
                    }
                    assertThat(maxDiff).as("layer %d hidden state", l).isLessThanOrEqualTo(1e-6 * maxAbs);
                }
                float[] z0 = Tensors.toFloats(be, s0.logits());
                float[] z1 = Tensors.toFloats(be, s1.logits());
                double maxDiff = 0;
                double maxAbs = 0;
                boolean changed = false;
                for (int i = 0; i < z0.length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(z1[i] - z0[i]));
                    maxAbs = Math.max(maxAbs, Math.abs(z0[i]));
                    changed |= z1[i] != z0[i];
                }
                assertThat(maxDiff).as("logits (max |logit| %s, bit-identical: %s)", maxAbs, !changed)
                        .isLessThanOrEqualTo(1e-6 * maxAbs);
            }
            assertThatThrownBy(() -> MlpPermutation.identity(mc.numLayers() + 1, mc.ffnDim())
                    .requireFits(mc.numLayers(), mc.ffnDim())).hasMessageContaining("does not fit");
        }
    }

    @Test
    void badFilesAndOrdersAreRefusedNamingTheProblem(@TempDir Path tmp) {
        assertThatThrownBy(() -> new MlpPermutation(new int[][] {{0, 1, 1}}))
                .hasMessageContaining("not a permutation").hasMessageContaining("entry 2");
        assertThatThrownBy(() -> new MlpPermutation(new int[][] {{0, 1, 2}, {0, 1}}))
                .hasMessageContaining("layer 1");
        Path f = tmp.resolve("p.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.allocateHost(arena, DType.I32, 3).copyFrom(new int[] {2, 0, 2});
            SafetensorsWriter.write(f, Map.of("layers.0.order", t), Map.of("format", "longexposure-mlp-permutation",
                    "num_layers", "1", "ffn_dim", "3"));
            assertThatThrownBy(() -> MlpPermutation.load(f)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("layers.0.order").hasMessageContaining("not a permutation");
            SafetensorsWriter.write(f, Map.of("layers.0.order", t), Map.of("format", "other"));
            assertThatThrownBy(() -> MlpPermutation.load(f)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("format");
            Tensor ok = Tensor.allocateHost(arena, DType.I32, 3).copyFrom(new int[] {2, 0, 1});
            SafetensorsWriter.write(f, Map.of("layers.0.order", ok), Map.of("format", "longexposure-mlp-permutation",
                    "num_layers", "2", "ffn_dim", "3"));
            assertThatThrownBy(() -> MlpPermutation.load(f)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("layers.1.order");
        }
    }
}
