package org.longexposure.io.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.InputFormatException;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/** Model folders with one weights file or with an index and shards, and their errors. */
class ShardedCheckpointTest {
    @TempDir
    Path dir;

    private Arena arena;
    private Tensor t3;
    private Tensor t5;
    private Tensor t7;

    @BeforeEach
    void tensors() {
        arena = Arena.ofConfined();
        t3 = Tensor.allocateHost(arena, DType.F32, 3).copyFrom(new float[] {1, 2, 3});
        t5 = Tensor.allocateHost(arena, DType.F32, 5).copyFrom(new float[] {4, 5, 6, 7, 8});
        t7 = Tensor.allocateHost(arena, DType.I32, 7).copyFrom(new int[] {9, 10, 11, 12, 13, 14, 15});
    }

    @AfterEach
    void free() {
        arena.close();
    }

    private void shards() {
        SafetensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), Map.of("a", t3, "b", t5));
        SafetensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), Map.of("c", t7));
    }

    private void index(String weightMap) throws Exception {
        Files.writeString(dir.resolve(ShardedCheckpoint.INDEX_FILE),
                "{\n  \"metadata\": {\"total_size\": 60},\n  \"weight_map\": " + weightMap + "\n}\n");
    }

    @Test
    void opensASingleFile() {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), Map.of("a", t3, "c", t7));
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
            assertThat(ck.path()).isEqualTo(dir);
            assertThat(ck.source()).isEqualTo(dir.resolve("model.safetensors"));
            assertThat(ck.files()).hasSize(1);
            assertThat(ck.names()).containsExactlyInAnyOrder("a", "c");
            assertThat(ck.contains("a")).isTrue();
            assertThat(ck.info("c").dtype()).isEqualTo(DType.I32);
            assertThat(ck.tensor("a").toFloatArray()).containsExactly(1, 2, 3);
            assertThat(ck.fileOf("c")).isEqualTo(dir.resolve("model.safetensors"));
            assertThatThrownBy(() -> ck.tensor("b")).isInstanceOf(InputFormatException.class)
                    .hasMessageStartingWith(dir.resolve("model.safetensors") + ": tensor 'b': not found");
        }
    }

    @Test
    void singleFileWinsOverAnIndex() throws Exception {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), Map.of("a", t3));
        index("{\"zzz\": \"missing.safetensors\"}");
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
            assertThat(ck.names()).containsExactly("a");
        }
    }

    @Test
    void opensShardsOnceEachInIndexOrder() throws Exception {
        shards();
        index("{\"c\": \"model-00002-of-00002.safetensors\", \"a\": \"model-00001-of-00002.safetensors\","
                + " \"b\": \"model-00001-of-00002.safetensors\"}");
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
            assertThat(ck.names()).containsExactly("c", "a", "b");
            assertThat(ck.files()).extracting(SafetensorsFile::path).containsExactly(
                    dir.resolve("model-00002-of-00002.safetensors"), dir.resolve("model-00001-of-00002.safetensors"));
            assertThat(ck.tensor("b").toFloatArray()).containsExactly(4, 5, 6, 7, 8);
            assertThat(ck.tensor("c").getInt(6)).isEqualTo(15);
            assertThat(ck.info("a").numel()).isEqualTo(3);
            assertThat(ck.fileOf("a")).isEqualTo(dir.resolve("model-00001-of-00002.safetensors"));
            assertThatThrownBy(() -> ck.tensor("d")).isInstanceOf(InputFormatException.class)
                    .hasMessageStartingWith(dir.resolve(ShardedCheckpoint.INDEX_FILE) + ": tensor 'd': not found");
        }
    }

    @Test
    void tensorsOfAShardMissingFromTheIndexAreNotExposed() throws Exception {
        shards();
        index("{\"a\": \"model-00001-of-00002.safetensors\"}");
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
            assertThat(ck.names()).containsExactly("a");
            assertThat(ck.contains("b")).isFalse();
        }
    }

    @Test
    void neitherFilePresent() {
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessage(dir + ": no weights found: looked for model.safetensors and "
                        + "model.safetensors.index.json");
    }

    @Test
    void notAFolder() throws Exception {
        Path f = Files.writeString(dir.resolve("config.json"), "{}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(f)).isInstanceOf(InputFormatException.class)
                .hasMessage(f + ": is a file, expected a model folder");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir.resolve("gone")))
                .isInstanceOf(InputFormatException.class).hasMessageContaining("model folder not found");
    }

    @Test
    void indexNamesAMissingShard() throws Exception {
        shards();
        index("{\"a\": \"model-00001-of-00002.safetensors\", \"x\": \"model-00003-of-00002.safetensors\"}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessage(dir.resolve(ShardedCheckpoint.INDEX_FILE) + ": weight_map entry 'x': shard "
                        + "'model-00003-of-00002.safetensors' not found (looked for "
                        + dir.resolve("model-00003-of-00002.safetensors") + ")");
    }

    @Test
    void indexPlacesATensorInTheWrongShard() throws Exception {
        shards();
        index("{\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessage(dir.resolve("model-00002-of-00002.safetensors") + ": tensor 'b': listed in "
                        + "model.safetensors.index.json as stored in this shard, but not found in it");
    }

    @Test
    void shardOutsideTheFolder() throws Exception {
        index("{\"a\": \"../elsewhere.safetensors\"}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining("weight_map entry 'a': shard '../elsewhere.safetensors' is not a file "
                        + "inside the model folder");
    }

    @Test
    void invalidShardIsReportedWithItsOwnName() throws Exception {
        Files.write(dir.resolve("s.safetensors"), new byte[] {1, 2});
        index("{\"a\": \"s.safetensors\"}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageStartingWith(dir.resolve("s.safetensors") + ": file is 2 bytes");
    }

    @Test
    void malformedIndex() throws Exception {
        Files.writeString(dir.resolve(ShardedCheckpoint.INDEX_FILE), "{\"weight_map\": {\"a\": }");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageStartingWith(dir.resolve(ShardedCheckpoint.INDEX_FILE)
                        + ": index is not valid JSON at line 1, column ");
    }

    @Test
    void indexWithoutWeightMap() throws Exception {
        Files.writeString(dir.resolve(ShardedCheckpoint.INDEX_FILE), "{\"metadata\": {}}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessage(dir.resolve(ShardedCheckpoint.INDEX_FILE) + ": field 'weight_map': is missing, "
                        + "expected an object mapping tensor names to shard files");
    }

    @Test
    void weightMapValueNotAString() throws Exception {
        index("{\"a\": 1}");
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessage(dir.resolve(ShardedCheckpoint.INDEX_FILE) + ": field 'weight_map.a': is a number 1, "
                        + "expected a shard file name");
    }
}
