package org.longexposure.io.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.assertj.core.api.AbstractThrowableAssert;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.InputFormatException;

/** One test per kind of bad safetensors input: each must be an InputFormatException naming file and problem. */
class SafetensorsErrorsTest {
    @TempDir
    Path dir;

    private static final String GOOD_ENTRY = "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    private Path file(String header, int dataBytes) {
        return RawSafetensors.write(dir.resolve("bad.safetensors"),
                RawSafetensors.bytes(header, new byte[dataBytes], true));
    }

    private AbstractThrowableAssert<?, ? extends Throwable> assertOpenFails(Path p) {
        return assertThatThrownBy(() -> SafetensorsFile.open(p).close())
                .isInstanceOf(InputFormatException.class)
                .hasMessageStartingWith(p.toString() + ": ")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
    }

    @Test
    void missingFile() {
        assertOpenFails(dir.resolve("nope.safetensors")).hasMessageEndingWith(": file not found");
    }

    @Test
    void folderInsteadOfFile() {
        assertThatThrownBy(() -> SafetensorsFile.open(dir)).isInstanceOf(InputFormatException.class)
                .hasMessageContaining(dir.toString()).hasMessageContaining("is a folder");
    }

    @Test
    void fileShorterThanTheLengthPrefix() {
        Path p = RawSafetensors.write(dir.resolve("short.safetensors"), new byte[] {1, 0, 0});
        assertOpenFails(p).hasMessageContaining("file is 3 bytes, too short for the 8-byte header length");
    }

    @Test
    void truncatedInsideTheHeader() {
        byte[] full = RawSafetensors.bytes("{" + GOOD_ENTRY + "}", new byte[8], true);
        byte[] cut = java.util.Arrays.copyOf(full, 30);
        Path p = RawSafetensors.write(dir.resolve("cut.safetensors"), cut);
        assertOpenFails(p).hasMessageContaining("header length " + (full.length - 16)
                + " runs past the end of the file (22 bytes follow the length prefix)");
    }

    @Test
    void headerLengthPastTheEnd() {
        ByteBuffer b = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN).putLong(-1L);
        Path p = RawSafetensors.write(dir.resolve("len.safetensors"), b.array());
        // the length is unsigned in the format: all ones is 2^64 - 1, not -1
        assertOpenFails(p).hasMessageContaining("header length 18446744073709551615 runs past the end of the file");
    }

    @Test
    void headerLongerThanTheLimit() throws Exception {
        Path p = dir.resolve("huge.safetensors");
        long len = 100L * 1024 * 1024 + 1;
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(8 + len); // sparse: takes no disk space
            f.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(len).array());
        }
        assertOpenFails(p).hasMessageContaining("header length " + len + " bytes exceeds the limit of "
                + (100L * 1024 * 1024) + " bytes");
    }

    @Test
    void headerNotUtf8() {
        byte[] bytes = RawSafetensors.bytes("{\"x\":1}", new byte[0], true);
        bytes[9] = (byte) 0xC3; // starts a two-byte sequence ...
        bytes[10] = (byte) 0x28; // ... but 0x28 is not a continuation byte (10xxxxxx)
        assertOpenFails(RawSafetensors.write(dir.resolve("u.safetensors"), bytes))
                .hasMessageContaining("header is not valid UTF-8");
    }

    @Test
    void headerNotJson() {
        assertOpenFails(file("{\"w\": {\"dtype\": \"F32\",\n \"shape\" [2]}}", 8))
                .hasMessageContaining("header is not valid JSON at line 2, column 10");
    }

    @Test
    void headerWithTextAfterTheObject() {
        assertOpenFails(file("{" + GOOD_ENTRY + "} {}", 8)).hasMessageContaining("header is not valid JSON");
    }

    @Test
    void headerNotAnObject() {
        assertOpenFails(file("[1, 2]", 0))
                .hasMessageContaining("header is an array [1,2], expected a JSON object of tensor entries");
    }

    @Test
    void emptyHeader() {
        assertOpenFails(file("", 0)).hasMessageContaining("header is missing, expected a JSON object");
    }

    @Test
    void duplicateTensorName() {
        assertOpenFails(file("{" + GOOD_ENTRY + "," + GOOD_ENTRY + "}", 8))
                .hasMessageContaining("header is not valid JSON").hasMessageContaining("Duplicate field 'w'");
    }

    @Test
    void entryNotAnObject() {
        assertOpenFails(file("{\"w\": 3}", 0)).hasMessageContaining(
                "tensor 'w': header entry is a number 3, expected an object with dtype, shape and data_offsets");
    }

    @Test
    void missingDType() {
        assertOpenFails(file("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8))
                .hasMessageContaining("tensor 'w': 'dtype' is missing, expected a string, one of F32, F16");
    }

    @Test
    void unknownDType() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8))
                .hasMessageContaining("tensor 'w': dtype 'Q7' is not a safetensors dtype; "
                        + "supported: F32, F16, BF16, F64, I32, I64");
    }

    @Test
    void unsupportedDType() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 8))
                .hasMessageContaining("tensor 'w': dtype 'F8_E4M3' is a safetensors dtype that is not supported; "
                        + "supported: F32, F16, BF16, F64, I32, I64");
    }

    @Test
    void missingShape() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8))
                .hasMessageContaining("tensor 'w': 'shape' is missing, expected an array of non-negative integers");
    }

    @Test
    void negativeDimension() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8))
                .hasMessageContaining("tensor 'w': 'shape' is an array [2,-1], expected an array of non-negative");
    }

    @Test
    void fractionalDimension() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8))
                .hasMessageContaining("tensor 'w': 'shape' is an array [2.5]");
    }

    @Test
    void offsetsNotAPair() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8))
                .hasMessageContaining("tensor 'w': 'data_offsets' is an array [0,4,8], expected an array of 2 "
                        + "non-negative integers");
    }

    @Test
    void offsetsPastTheEndOfTheData() {
        String name = "model.decoder.layers.0.fc1.weight";
        Path p = file("{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[200],\"data_offsets\":[100,900]}}", 512);
        assertOpenFails(p).hasMessage(p + ": tensor '" + name
                + "': data offsets [100, 900) run past the end of the data section (512 bytes)");
    }

    @Test
    void offsetsBackwards() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8))
                .hasMessageContaining("tensor 'w': data offsets [8, 0) begin after they end");
    }

    @Test
    void wrongByteCountForTheShape() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,5],\"data_offsets\":[0,32]}}", 32))
                .hasMessageContaining("tensor 'w': data offsets [0, 32) hold 32 bytes, but shape [3, 5] of BF16 "
                        + "needs 15 × 2 = 30 bytes");
    }

    @Test
    void shapeTooLargeToCount() {
        assertOpenFails(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                + "\"data_offsets\":[0,8]}}", 8))
                .hasMessageContaining("tensor 'w': shape [4294967296, 4294967296] has more bytes than");
    }

    @Test
    void overlappingTensors() {
        String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}";
        assertOpenFails(file(header, 20)).hasMessageContaining(
                "tensor 'b': data offsets [12, 20) overlap those of tensor 'a' [0, 16)");
    }

    @Test
    void tensorNestedInsideAnother() {
        String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                + "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}";
        assertOpenFails(file(header, 32)).hasMessageContaining("overlap those of tensor 'a' [0, 32)");
    }

    @Test
    void metadataNotAnObjectOfStrings() {
        assertOpenFails(file("{\"__metadata__\":{\"format\":\"pt\",\"step\":3}}", 0))
                .hasMessageContaining("metadata entry 'step': is a number 3, expected a string");
        assertOpenFails(file("{\"__metadata__\":[]}", 0))
                .hasMessageContaining("header field '__metadata__': is an array [], expected an object of strings");
    }

    @Test
    void missingTensorNamesCloseOnes() {
        String header = "{\"model.decoder.layers.0.fc1.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                + "\"data_offsets\":[0,4]},\"model.decoder.layers.0.fc2.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                + "\"data_offsets\":[4,8]},\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
                + "\"data_offsets\":[8,12]}}";
        Path p = file(header, 12);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThatThrownBy(() -> f.tensor("model.decoder.layers.0.fc1.bias"))
                    .isInstanceOf(InputFormatException.class)
                    .hasMessage(p + ": tensor 'model.decoder.layers.0.fc1.bias': not found; closest of the 3 "
                            + "tensors present: 'model.decoder.layers.0.fc1.weight', "
                            + "'model.decoder.layers.0.fc2.weight', 'lm_head.weight'");
            assertThatThrownBy(() -> f.info("x")).isInstanceOf(InputFormatException.class)
                    .hasMessageContaining("tensor 'x': not found");
        }
    }

    @Test
    void missingTensorInAnEmptyFile() throws Exception {
        Path p = file("{}", 0);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThatThrownBy(() -> f.tensor("w")).isInstanceOf(InputFormatException.class)
                    .hasMessage(p + ": tensor 'w': not found; the file holds no tensors");
        }
        assertThat(Files.size(p)).isEqualTo(16);
    }
}
