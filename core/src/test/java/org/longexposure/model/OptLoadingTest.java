package org.longexposure.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.backend.cpu.CpuBackend;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.data.Batch;
import org.longexposure.io.safetensors.SafetensorsFile;
import org.longexposure.io.safetensors.SafetensorsWriter;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;
import org.longexposure.testkit.Rng;
import org.longexposure.testkit.TensorAssert;

/**
 * Checkpoint layouts that must give the same model as the HF-verified fixture: F16/BF16 weights, an untied head
 * holding the same matrix, {@code enable_bias: false} against zero biases, names without the {@code model.}
 * prefix, and sharded files; plus the errors for a wrong shape or a missing tensor.
 */
class OptLoadingTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static Path fixtureModel() throws Exception {
        return Path.of(OptLoadingTest.class.getResource("/fixtures/opt-preln/model/config.json").toURI()).getParent();
    }

    private static float[] logits(Path model) {
        try (CpuBackend be = new CpuBackend(2); CausalLm lm = Architecture.load(model, be)) {
            int b = 2;
            int t = 9;
            int[] ids = new Rng(3).ints(b * t, 200);
            for (int i = 0; i < ids.length; i++) {
                ids[i] += 3;
            }
            int[] mask = new int[b * t];
            java.util.Arrays.fill(mask, 1);
            mask[b * t - 1] = 0;
            ForwardState s = lm.allocate(b, t);
            lm.forward(s, new Batch(b, t, ids, mask, ids.clone()), false);
            return s.logits().toFloatArray();
        }
    }

    /** Writes a variant of the fixture model: tensors transformed by {@code edit}, config edited by {@code cfg}. */
    private static Path variant(Path dir, String name, BiFunction<String, Tensor, Tensor> edit,
                                java.util.function.Consumer<ObjectNode> cfg, Arena arena) throws Exception {
        Path out = dir.resolve(name);
        Files.createDirectories(out);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(fixtureModel().resolve("model.safetensors"))) {
            for (String n : f.names()) {
                Tensor copy = Tensor.allocateHost(arena, DType.F32, f.tensor(n).shape().dims())
                        .copyFrom(f.tensor(n).toFloatArray());
                Tensor e = edit.apply(n, copy);
                if (e != null) {
                    tensors.put(n, e);
                }
            }
        }
        SafetensorsWriter.write(out.resolve("model.safetensors"), tensors);
        ObjectNode c = (ObjectNode) JSON.readTree(fixtureModel().resolve("config.json").toFile());
        cfg.accept(c);
        Files.writeString(out.resolve("config.json"), c.toString());
        return out;
    }

    private static Tensor toHalf(Arena arena, Tensor t, DType d) {
        Tensor h = Tensor.allocateHost(arena, d, t.shape().dims());
        for (long i = 0; i < t.numel(); i++) {
            float v = t.getFloat(i);
            short bits = d == DType.F16 ? Float.floatToFloat16(v)
                    : (short) ((Float.floatToRawIntBits(v) + 0x7FFF + ((Float.floatToRawIntBits(v) >>> 16) & 1)) >>> 16);
            h.host().setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, bits);
        }
        return h;
    }

    @Test
    void halfPrecisionWeightsGiveNearlyTheSameLogits(@TempDir Path dir) throws Exception {
        float[] ref = logits(fixtureModel());
        try (Arena arena = Arena.ofShared()) {
            for (DType d : new DType[]{DType.F16, DType.BF16}) {
                Path m = variant(dir, d.name(), (n, t) -> t.shape().rank() == 2 ? toHalf(arena, t, d) : t, c -> { },
                        arena);
                float[] got = logits(m);
                double rel = TensorAssert.relativeNorm(got, Rng.toDouble(ref));
                assertThat(rel).as(d + " logits relative error").isLessThan(d == DType.F16 ? 2e-3 : 2e-2)
                        .isGreaterThan(0);
            }
        }
    }

    @Test
    void equivalentLayoutsGiveTheSameLogits(@TempDir Path dir) throws Exception {
        float[] ref = logits(fixtureModel());
        try (Arena arena = Arena.ofShared()) {
            Path noPrefix = variant(dir, "noprefix", (n, t) -> t, c -> { }, arena);
            // rename by rewriting with the bare names, as old OPT checkpoints store them
            Map<String, Tensor> bare = new LinkedHashMap<>();
            try (SafetensorsFile f = SafetensorsFile.open(noPrefix.resolve("model.safetensors"))) {
                for (String n : f.names()) {
                    bare.put(n.replaceFirst("^model\\.", ""), Tensor.allocateHost(arena, DType.F32,
                            f.tensor(n).shape().dims()).copyFrom(f.tensor(n).toFloatArray()));
                }
            }
            SafetensorsWriter.write(noPrefix.resolve("model.safetensors"), bare);
            assertThat(logits(noPrefix)).containsExactly(ref);

            Tensor[] embed = new Tensor[1];
            Path untied = variant(dir, "untied", (n, t) -> {
                if (n.equals("model.decoder.embed_tokens.weight")) {
                    embed[0] = t;
                }
                return t;
            }, c -> c.put("tie_word_embeddings", false), arena);
            Map<String, Tensor> withHead = new LinkedHashMap<>();
            try (SafetensorsFile f = SafetensorsFile.open(untied.resolve("model.safetensors"))) {
                for (String n : f.names()) {
                    withHead.put(n, Tensor.allocateHost(arena, DType.F32, f.tensor(n).shape().dims())
                            .copyFrom(f.tensor(n).toFloatArray()));
                }
            }
            withHead.put("lm_head.weight", embed[0]);
            SafetensorsWriter.write(untied.resolve("model.safetensors"), withHead);
            assertThat(logits(untied)).containsExactly(ref);

            // enable_bias=false equals the same model with every linear bias set to zero
            Path zeroBias = variant(dir, "zerobias", (n, t) -> isLinearBias(n) ? zero(arena, t) : t, c -> { }, arena);
            Path noBias = variant(dir, "nobias", (n, t) -> isLinearBias(n) ? null : t,
                    c -> c.put("enable_bias", false), arena);
            float[] z = logits(zeroBias);
            assertThat(z).isNotEqualTo(ref);
            TensorAssert.assertClose("no-bias logits", new org.longexposure.testkit.Tolerances.Tol(1e-6, 1e-6),
                    logits(noBias), Rng.toDouble(z), z.length);
        }
    }

    @Test
    void shardedCheckpointLoads(@TempDir Path dir) throws Exception {
        float[] ref = logits(fixtureModel());
        Path out = dir.resolve("sharded");
        Files.createDirectories(out);
        Files.copy(fixtureModel().resolve("config.json"), out.resolve("config.json"));
        ObjectNode index = JSON.createObjectNode();
        ObjectNode map = index.putObject("weight_map");
        try (Arena arena = Arena.ofShared();
             SafetensorsFile f = SafetensorsFile.open(fixtureModel().resolve("model.safetensors"))) {
            Map<String, Tensor> a = new LinkedHashMap<>();
            Map<String, Tensor> b = new LinkedHashMap<>();
            int i = 0;
            for (String n : f.names()) {
                Tensor copy = Tensor.allocateHost(arena, DType.F32, f.tensor(n).shape().dims())
                        .copyFrom(f.tensor(n).toFloatArray());
                (i++ % 2 == 0 ? a : b).put(n, copy);
                map.put(n, i % 2 == 1 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
            }
            SafetensorsWriter.write(out.resolve("model-00001-of-00002.safetensors"), a);
            SafetensorsWriter.write(out.resolve("model-00002-of-00002.safetensors"), b);
        }
        Files.writeString(out.resolve("model.safetensors.index.json"), index.toString());
        assertThat(logits(out)).containsExactly(ref);
    }

    @Test
    void wrongShapeOrMissingTensorIsNamed(@TempDir Path dir) throws Exception {
        try (Arena arena = Arena.ofShared()) {
            Path wrong = variant(dir, "wrong", (n, t) -> n.equals("model.decoder.layers.1.fc1.weight")
                    ? Tensor.allocateHost(arena, DType.F32, 79, 48) : t, c -> { }, arena);
            assertThatThrownBy(() -> logits(wrong)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("model.decoder.layers.1.fc1.weight").hasMessageContaining("[79, 48]")
                    .hasMessageContaining("[80, 48]");
            Path missing = variant(dir, "missing", (n, t) -> n.contains("layers.0.self_attn.k_proj.bias") ? null : t,
                    c -> { }, arena);
            assertThatThrownBy(() -> logits(missing)).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("layers.0.self_attn.k_proj.bias");
        }
    }

    private static boolean isLinearBias(String n) {
        return n.endsWith(".bias") && (n.contains("_proj") || n.contains(".fc"));
    }

    private static Tensor zero(Arena arena, Tensor t) {
        return Tensor.allocateHost(arena, DType.F32, t.shape().dims());
    }
}
