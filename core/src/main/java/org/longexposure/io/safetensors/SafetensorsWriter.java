package org.longexposure.io.safetensors;

import static org.longexposure.io.safetensors.SafetensorsFormat.METADATA_KEY;
import static org.longexposure.io.safetensors.SafetensorsFormat.PREFIX_BYTES;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import org.longexposure.tensor.Tensor;

/**
 * Writes host tensors to a safetensors file (format: {@link SafetensorsFormat}), each with its own dtype, plus
 * optional {@code __metadata__} strings.
 *
 * <p>Layout: tensors are laid out by element size, largest first, then by name (the order Hugging Face's
 * writer uses). The map's iteration order does not matter, so the same tensors always give the same bytes, and
 * since the data section starts at a multiple of 8 every tensor starts at a multiple of its element size. The
 * header lists {@code __metadata__} first, then the tensors in layout order, and is padded with spaces to a
 * multiple of 8 bytes; offsets are relative to the data section; there are no gaps.
 *
 * <p>Atomicity: the bytes go to a new temporary file in the target's folder, which is flushed to disk
 * ({@code fsync}) and then renamed over the target in one atomic step. A reader sees the old file or the new
 * one, never a partial one; a file mapped by an open {@link SafetensorsFile} keeps its old contents.
 */
public final class SafetensorsWriter {
    /** Largest piece handed to one channel write (a ByteBuffer view is limited to 2 GiB). */
    private static final long CHUNK_BYTES = 1L << 30;

    private SafetensorsWriter() {
    }

    /** Writes {@code tensors} without metadata; see {@link #write(Path, Map, Map)}. */
    public static void write(Path file, Map<String, Tensor> tensors) {
        write(file, tensors, Map.of());
    }

    /**
     * Writes {@code tensors} (name → host tensor) and {@code metadata} to {@code file}, atomically replacing
     * any file there. The target's folder must exist.
     *
     * @throws IllegalArgumentException if a tensor is not in host memory or a name is empty or
     *                                  {@code __metadata__}
     * @throws UncheckedIOException     if writing, flushing or renaming fails (the temporary file is removed)
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        SafetensorsFormat.requireLittleEndianHost();
        List<Map.Entry<String, Tensor>> layout = new ArrayList<>(tensors.entrySet());
        for (Map.Entry<String, Tensor> e : layout) {
            if (e.getKey().isEmpty() || e.getKey().equals(METADATA_KEY)) {
                throw new IllegalArgumentException("invalid tensor name '" + e.getKey() + "'");
            }
            if (!e.getValue().isHost()) {
                throw new IllegalArgumentException("tensor '" + e.getKey() + "' (" + e.getValue()
                        + ") is not in host memory; copy it to the host before writing");
            }
        }
        layout.sort(Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dtype().byteSize())
                .thenComparing(Map.Entry::getKey));
        byte[] header = header(layout, metadata);

        Path target = file.toAbsolutePath();
        Path tmp = target.resolveSibling("." + target.getFileName() + "." + UUID.randomUUID() + ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                ByteBuffer head = ByteBuffer.allocate(PREFIX_BYTES + header.length).order(ByteOrder.LITTLE_ENDIAN);
                head.putLong(header.length).put(header).flip();
                writeFully(ch, head);
                for (Map.Entry<String, Tensor> e : layout) {
                    MemorySegment bytes = e.getValue().host();
                    for (long off = 0; off < bytes.byteSize(); off += CHUNK_BYTES) {
                        long n = Math.min(CHUNK_BYTES, bytes.byteSize() - off);
                        writeFully(ch, bytes.asSlice(off, n).asByteBuffer());
                    }
                }
                ch.force(true);
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            if (e instanceof IOException io) {
                throw new UncheckedIOException("writing " + target, io);
            }
            throw (RuntimeException) e;
        }
        syncFolder(target.getParent());
    }

    /** The header JSON, padded with spaces so that the data section starts at a multiple of 8. */
    private static byte[] header(List<Map.Entry<String, Tensor>> layout, Map<String, String> metadata) {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject(METADATA_KEY);
            metadata.forEach((k, v) -> meta.put(k, Objects.requireNonNull(v, "metadata value of " + k)));
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> e : layout) {
            Tensor t = e.getValue();
            ObjectNode entry = root.putObject(e.getKey());
            entry.put("dtype", t.dtype().safetensorsName());
            long[] dims = t.shape().dims();
            var shape = entry.putArray("shape");
            for (long d : dims) {
                shape.add(d);
            }
            entry.putArray("data_offsets").add(offset).add(offset + t.byteSize());
            offset += t.byteSize();
        }
        byte[] json;
        try {
            json = SafetensorsFormat.HEADER_WRITER.writeValueAsBytes(root);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("serialising a JSON tree cannot fail", e);
        }
        int padded = (json.length + 7) & ~7;
        byte[] out = new byte[padded];
        System.arraycopy(json, 0, out, 0, json.length);
        for (int i = json.length; i < padded; i++) {
            out[i] = ' ';
        }
        return out;
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    /**
     * Flushes the folder entry of the rename, so that the new name survives a crash. Best effort: some
     * platforms cannot open a folder as a channel, and the file's own bytes are already on disk.
     */
    private static void syncFolder(Path folder) {
        try (FileChannel dir = FileChannel.open(folder, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException e) {
            // the data are durable; only the rename's durability is left to the file system's own schedule
        }
    }
}
