package org.longexposure.io.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.longexposure.io.InputFormatException;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Tensor;

/**
 * Seeded mutation fuzzing of the reader: a valid file is damaged in many ways (byte flips, truncation, header
 * length edits, edits of the JSON text) and opening it and reading every tensor must either succeed or throw
 * {@link InputFormatException}, never anything else.
 */
class SafetensorsFuzzTest {
    private static final int CASES = 2000;
    private static final String[] DTYPE_WORDS = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8", "BOOL",
        "F8_E4M3", "f32", "", "F32 "};

    @TempDir
    Path dir;

    @Test
    void damagedFilesFailOnlyWithInputFormatException() throws Exception {
        byte[] valid = validFile();
        int headerEnd = 8 + (int) ByteBuffer.wrap(valid, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        SplittableRandom rnd = new SplittableRandom(0x5AFE7E45L);
        Path p = dir.resolve("fuzz.safetensors");
        int opened = 0;
        int rejected = 0;
        for (int c = 0; c < CASES; c++) {
            int kind = rnd.nextInt(6);
            byte[] bytes = mutate(valid, headerEnd, kind, rnd);
            Files.write(p, bytes);
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                readEverything(f);
                opened++;
            } catch (InputFormatException e) {
                if (!e.getMessage().startsWith(p.toString()) || e.getMessage().contains("\n")) {
                    fail("case " + c + ": message not one line naming the file: " + e.getMessage());
                }
                rejected++;
            } catch (Throwable t) {
                fail("case " + c + " (mutation kind " + kind + ") threw " + t + " for "
                        + new String(bytes, 0, Math.min(bytes.length, 400), StandardCharsets.ISO_8859_1), t);
            }
        }
        // The mutations must exercise both outcomes, or the test proves little.
        assertThat(opened).isGreaterThan(CASES / 20);
        assertThat(rejected).isGreaterThan(CASES / 4);
    }

    /** Touches every byte of every tensor; plain checks, since this runs thousands of times. */
    private static void readEverything(SafetensorsFile f) {
        for (String name : f.names()) {
            TensorInfo info = f.info(name);
            Tensor t = f.tensor(name);
            byte[] raw = t.host().toArray(ValueLayout.JAVA_BYTE);
            if (raw.length != info.byteSize() || t.byteSize() != info.byteSize()) {
                fail(name + ": " + raw.length + " bytes read, header says " + info.byteSize());
            }
            if (t.dtype().isFloat() && t.toFloatArray().length != t.numel()) {
                fail(name + ": wrong element count");
            }
        }
    }

    private static byte[] mutate(byte[] valid, int headerEnd, int kind, SplittableRandom rnd) {
        byte[] b = valid.clone();
        switch (kind) {
            case 0 -> { // flip a few bits, mostly in the header where they matter
                int flips = 1 + rnd.nextInt(3);
                for (int i = 0; i < flips; i++) {
                    int at = rnd.nextInt(10) < 8 ? rnd.nextInt(headerEnd) : rnd.nextInt(b.length);
                    b[at] ^= (byte) (1 << rnd.nextInt(8));
                }
            }
            case 1 -> b = Arrays.copyOf(b, rnd.nextInt(b.length)); // truncate
            case 2 -> { // rewrite the header length: near the true one, or anything
                long len = rnd.nextBoolean() ? headerEnd - 8 + rnd.nextInt(-20, 21) : rnd.nextLong();
                ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(len);
            }
            case 3 -> { // replace one digit of the JSON (shapes, offsets) with another
                int start = 8 + rnd.nextInt(headerEnd - 8);
                for (int i = start; i < headerEnd; i++) {
                    if (b[i] >= '0' && b[i] <= '9') {
                        b[i] = (byte) ('0' + rnd.nextInt(10));
                        break;
                    }
                }
            }
            case 4 -> { // edit the JSON text and re-encode it with a correct length prefix
                String header = new String(b, 8, headerEnd - 8, StandardCharsets.UTF_8);
                header = editHeader(header, rnd);
                byte[] h = header.getBytes(StandardCharsets.UTF_8);
                byte[] data = Arrays.copyOfRange(b, headerEnd, b.length);
                b = RawSafetensors.bytes(new String(h, StandardCharsets.UTF_8), data, rnd.nextBoolean());
            }
            default -> { // overwrite a random stretch with random bytes
                int at = rnd.nextInt(b.length);
                int n = Math.min(b.length - at, 1 + rnd.nextInt(8));
                for (int i = 0; i < n; i++) {
                    b[at + i] = (byte) rnd.nextInt(256);
                }
            }
        }
        return b;
    }

    private static String editHeader(String h, SplittableRandom rnd) {
        return switch (rnd.nextInt(6)) {
            case 0 -> h.replaceFirst("\"(F32|BF16|I32|F64|F16|I64)\"",
                    "\"" + DTYPE_WORDS[rnd.nextInt(DTYPE_WORDS.length)] + "\"");
            case 1 -> h.replaceFirst("\\[(\\d+),", "[" + (rnd.nextInt(3) == 0 ? "-" : "")
                    + rnd.nextLong(0, Long.MAX_VALUE >> rnd.nextInt(63)) + ",");
            case 2 -> h.replaceFirst("\"shape\":\\[[^]]*]", "\"shape\":" + pick(rnd, "[]", "[0]", "[1.5]",
                    "[\"3\"]", "null", "{}", "[99999999999999999999]", "[4294967296,4294967296]"));
            case 3 -> h.replaceFirst("\"data_offsets\":\\[[^]]*]", "\"data_offsets\":" + pick(rnd, "[0]",
                    "[0,0]", "[8,4]", "[0,8,16]", "[-8,0]", "[0,1e3]", "\"x\"", "[0,18446744073709551615]"));
            case 4 -> {
                int at = rnd.nextInt(h.length() + 1);
                yield h.substring(0, at) + pick(rnd, "{", "}", "\"", ",", "[", "\\", "\u0000", "é", "\uD800",
                        "\"__metadata__\":{\"k\":1},", "\"x\":{},", "\"a.w\":{\"dtype\":\"F32\",\"shape\":[1],"
                                + "\"data_offsets\":[0,4]},") + h.substring(at);
            }
            default -> {
                int at = rnd.nextInt(h.length());
                yield h.substring(0, at) + h.substring(Math.min(h.length(), at + 1 + rnd.nextInt(6)));
            }
        };
    }

    private static String pick(SplittableRandom rnd, String... options) {
        return options[rnd.nextInt(options.length)];
    }

    /** A small valid file: several dtypes, awkward shapes, a scalar, an empty tensor, metadata. */
    private byte[] validFile() throws Exception {
        SplittableRandom rnd = new SplittableRandom(7);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        long[][] shapes = {{3, 5}, {7}, {2, 3}, {}, {0, 4}, {5, 1}};
        DType[] dtypes = {DType.F32, DType.BF16, DType.I32, DType.F64, DType.F16, DType.I64};
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < dtypes.length; i++) {
                Tensor t = Tensor.allocateHost(arena, dtypes[i], shapes[i]);
                MemorySegment s = t.host();
                for (long j = 0; j < s.byteSize(); j++) {
                    s.set(ValueLayout.JAVA_BYTE, j, (byte) rnd.nextInt(256));
                }
                tensors.put("model.layers." + i + ".w", t);
            }
            Path p = dir.resolve("valid.safetensors");
            SafetensorsWriter.write(p, tensors, Map.of("format", "pt"));
            return Files.readAllBytes(p);
        }
    }
}
