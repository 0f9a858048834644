package org.longexposure.io.safetensors;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Builds safetensors files byte by byte, straight from the format description (8-byte little-endian header
 * length, JSON header, data), independently of {@link SafetensorsWriter}, so that tests can produce files a
 * correct writer would produce and files no correct writer would.
 */
final class RawSafetensors {
    private RawSafetensors() {
    }

    /** Header length prefix + {@code header} (padded with spaces to a multiple of 8 if {@code pad}) + data. */
    static byte[] bytes(String header, byte[] data, boolean pad) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        int n = pad ? (h.length + 7) / 8 * 8 : h.length;
        ByteBuffer b = ByteBuffer.allocate(8 + n + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(n).put(h);
        for (int i = h.length; i < n; i++) {
            b.put((byte) ' ');
        }
        b.put(data);
        return b.array();
    }

    static Path write(Path file, byte[] bytes) {
        try {
            return Files.write(file, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A little-endian byte buffer of {@code n} bytes for assembling a data section. */
    static ByteBuffer le(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }
}
