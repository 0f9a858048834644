package org.longexposure.io.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Tensor;

/**
 * Reading hand-built files (the expected values are IEEE bit patterns written into the bytes by hand), writing
 * and reading back, and the writer's byte-exact output against a hand-built file laid out the way Hugging Face's
 * own writer lays it out.
 */
class SafetensorsFileTest {
    @TempDir
    Path dir;

    /**
     * The file Python's {@code safetensors.torch.save_file({"a": f32 (2,3), "b": bf16 (3,)},
     * metadata={"format": "pt"})} produces: metadata first, compact JSON, entries ordered by element size then
     * name, header padded with spaces to a multiple of 8.
     */
    private static byte[] pythonStyleFile() {
        String header = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]}}";
        ByteBuffer data = RawSafetensors.le(30);
        for (float v : new float[] {1.0f, -2.5f, 0.0f, 3.25f, 1e-3f, -7.0f}) {
            data.putFloat(v);
        }
        // bf16 = the high 16 bits of the f32 pattern: 1.0 = 0x3F80, -2.0 = 0xC000, 3.140625 = 0x4049
        data.putShort((short) 0x3F80).putShort((short) 0xC000).putShort((short) 0x4049);
        return RawSafetensors.bytes(header, data.array(), true);
    }

    @Test
    void readsAHandBuiltFileLaidOutLikePythonSafetensors() {
        Path p = RawSafetensors.write(dir.resolve("model.safetensors"), pythonStyleFile());
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.path()).isEqualTo(p);
            assertThat(f.names()).containsExactly("a", "b");
            assertThat(f.contains("a")).isTrue();
            assertThat(f.contains("c")).isFalse();
            assertThat(f.metadata()).containsExactly(Map.entry("format", "pt"));
            TensorInfo a = f.info("a");
            assertThat(a).isEqualTo(new TensorInfo("a", DType.F32, Shape.of(2, 3), 0, 24));
            assertThat(a.byteSize()).isEqualTo(24);
            Tensor ta = f.tensor("a");
            assertThat(ta.dtype()).isEqualTo(DType.F32);
            assertThat(ta.shape()).isEqualTo(Shape.of(2, 3));
            assertThat(ta.toFloatArray()).containsExactly(1.0f, -2.5f, 0.0f, 3.25f, 1e-3f, -7.0f);
            Tensor tb = f.tensor("b");
            assertThat(tb.shape()).isEqualTo(Shape.of(3));
            assertThat(tb.toFloatArray()).containsExactly(1.0f, -2.0f, 3.140625f);
        }
    }

    @Test
    void writerProducesTheSameBytesAsPythonSafetensors() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.allocateHost(arena, DType.F32, 2, 3)
                    .copyFrom(new float[] {1.0f, -2.5f, 0.0f, 3.25f, 1e-3f, -7.0f});
            Tensor b = Tensor.allocateHost(arena, DType.BF16, 3);
            short[] bf = {0x3F80, (short) 0xC000, 0x4049};
            MemorySegment.copy(bf, 0, b.host(), ValueLayout.JAVA_SHORT_UNALIGNED, 0, 3);
            Path p = dir.resolve("out.safetensors");
            // given in the opposite order: the layout is by element size then name, not by map order
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("b", b);
            tensors.put("a", a);
            SafetensorsWriter.write(p, tensors, Map.of("format", "pt"));
            assertThat(Files.readAllBytes(p)).isEqualTo(pythonStyleFile());
        }
    }

    @Test
    void readsEveryDTypeAtUnalignedOffsets() {
        // Header left unpadded (odd length) and a 1-byte gap, so no tensor starts at an aligned address.
        String header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[1,7]},"
                + "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[7,15]},"
                + "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[15,23]},"
                + "\"i\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[23,31]},"
                + "\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[31,39]},"
                + "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[39,39]}}";
        ByteBuffer data = RawSafetensors.le(39);
        data.put((byte) 0x55);
        // f16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 (largest f16) = 0x7BFF
        data.putShort((short) 0x3C00).putShort((short) 0xC000).putShort((short) 0x7BFF);
        data.putFloat(0.1f).putFloat(-1e30f);
        data.putDouble(0.5);
        data.putInt(-7).putInt(Integer.MAX_VALUE);
        data.putLong(1L << 40);
        byte[] bytes = RawSafetensors.bytes(header, data.array(), false);
        assertThat((8 + header.length()) % 2).isEqualTo(1);
        Path p = RawSafetensors.write(dir.resolve("odd.safetensors"), bytes);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.names()).containsExactly("h", "f", "d", "i", "l", "e");
            assertThat(f.metadata()).isEmpty();
            assertThat(f.tensor("h").toFloatArray()).containsExactly(1.0f, -2.0f, 65504.0f);
            assertThat(f.tensor("f").toFloatArray()).containsExactly(0.1f, -1e30f);
            Tensor d = f.tensor("d");
            assertThat(d.shape().rank()).isZero();
            assertThat(d.getFloat(0)).isEqualTo(0.5f);
            Tensor i = f.tensor("i");
            assertThat(i.getInt(0)).isEqualTo(-7);
            assertThat(i.getInt(1)).isEqualTo(Integer.MAX_VALUE);
            assertThat(f.tensor("l").host().get(ValueLayout.JAVA_LONG_UNALIGNED, 0)).isEqualTo(1L << 40);
            Tensor e = f.tensor("e");
            assertThat(e.shape()).isEqualTo(Shape.of(0, 5));
            assertThat(e.numel()).isZero();
        }
    }

    @Test
    void tensorsAreReadOnlyViewsThatDieWithTheFile() {
        Path p = RawSafetensors.write(dir.resolve("m.safetensors"), pythonStyleFile());
        SafetensorsFile f = SafetensorsFile.open(p);
        Tensor a = f.tensor("a");
        assertThat(a.host().isReadOnly()).isTrue();
        assertThat(a.host().isMapped()).isTrue();
        f.close();
        f.close();
        assertThatThrownBy(() -> f.tensor("a")).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> a.getFloat(0)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void roundTripsRandomTensorsOfEveryDTypeByteForByte() throws Exception {
        SplittableRandom rnd = new SplittableRandom(20240611);
        long[][] shapes = {{3, 5}, {7}, {}, {2, 3, 5}, {0, 4}, {13, 1}, {1, 11}};
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            int k = 0;
            for (DType dt : DType.values()) {
                for (int s = 0; s < 2; s++) {
                    long[] dims = shapes[(k++) % shapes.length];
                    Tensor t = Tensor.allocateHost(arena, dt, dims);
                    MemorySegment seg = t.host();
                    for (long i = 0; i < seg.byteSize(); i++) {
                        seg.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(256));
                    }
                    tensors.put("layers." + k + "." + dt.safetensorsName().toLowerCase() + ".weight", t);
                }
            }
            // a view at a non-zero byte offset of a larger tensor is written as just its own elements
            Tensor big = Tensor.allocateHost(arena, DType.F32, 9, 3);
            for (int i = 0; i < 27; i++) {
                big.setFloat(i, (float) rnd.nextDouble(-1, 1));
            }
            tensors.put("slice", big.slice(4, 3));
            Map<String, String> meta = Map.of("format", "pt", "note", "ünïcode ✓");
            Path p = dir.resolve("rt.safetensors");
            SafetensorsWriter.write(p, tensors, meta);

            byte[] raw = Files.readAllBytes(p);
            long headerLen = ByteBuffer.wrap(raw, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertThat(headerLen % 8).isZero();
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                assertThat(f.names()).containsExactlyInAnyOrderElementsOf(tensors.keySet());
                assertThat(f.metadata()).isEqualTo(meta);
                long expectedEnd = 0;
                int prevSize = Integer.MAX_VALUE;
                for (String name : f.names()) {
                    TensorInfo info = f.info(name);
                    Tensor src = tensors.get(name);
                    assertThat(info.dtype()).isEqualTo(src.dtype());
                    assertThat(info.shape()).isEqualTo(src.shape());
                    // packed, in layout order, each tensor aligned to its element size
                    assertThat(info.begin()).isEqualTo(expectedEnd);
                    assertThat(info.begin() % info.dtype().byteSize()).isZero();
                    assertThat(info.dtype().byteSize()).isLessThanOrEqualTo(prevSize);
                    expectedEnd = info.end();
                    prevSize = info.dtype().byteSize();
                    assertThat(f.tensor(name).host().mismatch(src.host())).as(name).isEqualTo(-1L);
                }
                assertThat(8 + headerLen + expectedEnd).isEqualTo(raw.length);
                assertThat(f.tensor("slice").toFloatArray()).containsExactly(big.slice(4, 3).toFloatArray());
            }
        }
    }

    @Test
    void overwritesAtomicallyLeavingNoTemporaryFiles() throws Exception {
        Path p = dir.resolve("w.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Tensor one = Tensor.allocateHost(arena, DType.F32, 3).copyFrom(new float[] {1, 2, 3});
            Tensor two = Tensor.allocateHost(arena, DType.F32, 2).copyFrom(new float[] {4, 5});
            SafetensorsWriter.write(p, Map.of("x", one));
            try (SafetensorsFile old = SafetensorsFile.open(p)) {
                SafetensorsWriter.write(p, Map.of("x", two, "y", one));
                // the open mapping still sees the file it opened; a new open sees the new one
                assertThat(old.tensor("x").toFloatArray()).containsExactly(1, 2, 3);
                try (SafetensorsFile now = SafetensorsFile.open(p)) {
                    assertThat(now.tensor("x").toFloatArray()).containsExactly(4, 5);
                    assertThat(now.names()).containsExactly("x", "y");
                }
            }
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.map(q -> q.getFileName().toString()).toList()).containsExactly("w.safetensors");
        }
    }

    @Test
    void writerRejectsReservedAndEmptyNamesAndLeavesNothingBehind() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.allocateHost(arena, DType.F32, 1);
            for (String bad : List.of("__metadata__", "")) {
                assertThatThrownBy(() -> SafetensorsWriter.write(dir.resolve("bad.safetensors"), Map.of(bad, t)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("invalid tensor name");
            }
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.toList()).isEmpty();
        }
    }

    @Test
    void writesAnEmptyFileThatReadsBack() {
        Path p = dir.resolve("empty.safetensors");
        SafetensorsWriter.write(p, Map.of());
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.names()).isEmpty();
            assertThat(f.metadata()).isEmpty();
        }
    }
}
