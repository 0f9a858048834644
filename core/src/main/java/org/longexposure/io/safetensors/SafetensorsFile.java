package org.longexposure.io.safetensors;

import static org.longexposure.io.safetensors.SafetensorsFormat.MAX_HEADER_BYTES;
import static org.longexposure.io.safetensors.SafetensorsFormat.METADATA_KEY;
import static org.longexposure.io.safetensors.SafetensorsFormat.PREFIX_BYTES;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.longexposure.io.InputFormatException;
import org.longexposure.io.JsonText;
import org.longexposure.io.NameSuggestions;
import org.longexposure.tensor.DType;
import org.longexposure.tensor.Shape;
import org.longexposure.tensor.Tensor;

/**
 * A memory-mapped safetensors file (the format of Hugging Face's {@code safetensors} library, see
 * {@link SafetensorsFormat}). {@link #open} maps the whole file read-only into a shared arena this object owns,
 * parses and validates the JSON header, and keeps the data section mapped; {@link #tensor} returns zero-copy
 * host tensors over it, which stay valid until {@link #close}. Nothing is copied and nothing is read from the
 * data section until a tensor's elements are touched.
 *
 * <p>Validation, each failure an {@link InputFormatException} naming the file (and the tensor, where there is
 * one): the file holds at least the 8-byte length prefix; the header length fits in the file and is at most
 * 100 MB; the header is UTF-8 JSON, one object, no duplicate keys; every entry has a known {@code dtype}, a
 * {@code shape} of non-negative integers and two non-negative integer {@code data_offsets} with
 * {@code begin <= end <= data section size} and {@code end - begin == numel * dtype size}; no two tensors share
 * a byte; {@code __metadata__}, if present, maps strings to strings. Gaps between tensors and unused bytes after
 * the last one are accepted (the reference implementation rejects them; no reader is harmed by them). Unknown
 * keys inside an entry are ignored. Tensor data may sit at any byte offset: the tensor accessors use unaligned
 * layouts.
 *
 * <p>Thread safety: after {@code open} returns the object is immutable; tensors may be read from any thread.
 */
public final class SafetensorsFile implements AutoCloseable {
    private static final ValueLayout.OfLong LE_LONG =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data; // the data section: file bytes [8 + header length, file size)
    private final Map<String, TensorInfo> infos; // header order
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> infos,
            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.infos = Collections.unmodifiableMap(infos);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /**
     * Maps and validates {@code path}.
     *
     * @throws InputFormatException if the file is missing, unreadable as safetensors, or inconsistent
     * @throws UncheckedIOException on an I/O failure other than a missing or unreadable file
     */
    public static SafetensorsFile open(Path path) {
        SafetensorsFormat.requireLittleEndianHost();
        if (Files.isDirectory(path)) {
            throw InputFormatException.file(path, "is a folder, expected a .safetensors file");
        }
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long fileSize = ch.size();
            if (fileSize < PREFIX_BYTES) {
                throw InputFormatException.file(path, "file is " + fileSize
                        + " bytes, too short for the 8-byte header length that starts a safetensors file");
            }
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
            long headerBytes = all.get(LE_LONG, 0);
            long available = fileSize - PREFIX_BYTES;
            if (headerBytes < 0 || headerBytes > available) {
                throw InputFormatException.file(path, "header length " + Long.toUnsignedString(headerBytes)
                        + " runs past the end of the file (" + available + " bytes follow the length prefix)");
            }
            if (headerBytes > MAX_HEADER_BYTES) {
                throw InputFormatException.file(path, "header length " + headerBytes
                        + " bytes exceeds the limit of " + MAX_HEADER_BYTES + " bytes");
            }
            byte[] header = all.asSlice(PREFIX_BYTES, headerBytes).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment data = all.asSlice(PREFIX_BYTES + headerBytes);
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> infos = parseHeader(path, header, data.byteSize(), metadata);
            return new SafetensorsFile(path, arena, data, infos, metadata);
        } catch (NoSuchFileException e) {
            arena.close();
            throw InputFormatException.file(path, "file not found");
        } catch (AccessDeniedException e) {
            arena.close();
            throw InputFormatException.file(path, "permission denied");
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("reading " + path, e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** The file this was opened from. */
    public Path path() {
        return path;
    }

    /** The tensor names, in header order. */
    public Set<String> names() {
        return infos.keySet();
    }

    public boolean contains(String name) {
        return infos.containsKey(name);
    }

    /** The header entry of tensor {@code name}; an error naming close names present if there is none. */
    public TensorInfo info(String name) {
        TensorInfo info = infos.get(name);
        if (info == null) {
            throw missing(path, name, infos.keySet());
        }
        return info;
    }

    /**
     * Tensor {@code name} as a zero-copy, read-only host tensor over the mapped file, valid until
     * {@link #close}.
     */
    public Tensor tensor(String name) {
        TensorInfo info = info(name);
        if (!arena.scope().isAlive()) {
            throw new IllegalStateException(path + " is closed");
        }
        return Tensor.wrapHost(data.asSlice(info.begin(), info.byteSize()), info.dtype(), info.dims());
    }

    /** The header's {@code __metadata__} strings (empty if it has none), in header order. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Unmaps the file; tensors obtained from it must not be used afterwards. Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + infos.size() + " tensors]";
    }

    /** The error for a tensor that is not there, with the few closest names that are. */
    static InputFormatException missing(Path file, String name, Set<String> present) {
        if (present.isEmpty()) {
            return InputFormatException.tensor(file, name, "not found; the file holds no tensors");
        }
        String close = NameSuggestions.closest(name, present, 3).stream()
                .map(InputFormatException::quote).collect(Collectors.joining(", "));
        return InputFormatException.tensor(file, name, "not found; closest of the " + present.size()
                + " tensors present: " + close);
    }

    // --- header parsing and validation

    private static Map<String, TensorInfo> parseHeader(Path path, byte[] header, long dataBytes,
            Map<String, String> metadataOut) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(header)).toString();
        } catch (CharacterCodingException e) {
            throw InputFormatException.file(path, "header is not valid UTF-8 text");
        }
        JsonNode root;
        try {
            root = SafetensorsFormat.HEADER_READER.readTree(text);
        } catch (JacksonException e) {
            throw JsonText.syntaxError(path, "header", e);
        }
        if (root == null || !root.isObject()) {
            throw InputFormatException.file(path, "header is " + JsonText.describe(root)
                    + ", expected a JSON object of tensor entries");
        }
        Map<String, TensorInfo> infos = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            if (e.getKey().equals(METADATA_KEY)) {
                readMetadata(path, e.getValue(), metadataOut);
            } else {
                infos.put(e.getKey(), readEntry(path, e.getKey(), e.getValue(), dataBytes));
            }
        }
        requireDisjoint(path, infos.values());
        return infos;
    }

    private static void readMetadata(Path path, JsonNode node, Map<String, String> out) {
        if (!node.isObject()) {
            throw new InputFormatException(path, "header field '" + METADATA_KEY + "'",
                    "is " + JsonText.describe(node) + ", expected an object of strings");
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw new InputFormatException(path, "metadata entry " + InputFormatException.quote(e.getKey()),
                        "is " + JsonText.describe(e.getValue()) + ", expected a string");
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static TensorInfo readEntry(Path path, String name, JsonNode node, long dataBytes) {
        if (!node.isObject()) {
            throw InputFormatException.tensor(path, name, "header entry is " + JsonText.describe(node)
                    + ", expected an object with dtype, shape and data_offsets");
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw InputFormatException.tensor(path, name, "'dtype' is " + JsonText.describe(dtypeNode)
                    + ", expected a string, one of " + SafetensorsFormat.supportedDTypes());
        }
        DType dtype = dtype(path, name, dtypeNode.textValue());
        long[] dims = longs(path, name, "shape", node.get("shape"), -1);
        long[] offsets = longs(path, name, "data_offsets", node.get("data_offsets"), 2);
        long begin = offsets[0];
        long end = offsets[1];
        long numel = 1;
        long nbytes;
        try {
            for (long d : dims) {
                numel = Math.multiplyExact(numel, d);
            }
            nbytes = Math.multiplyExact(numel, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw InputFormatException.tensor(path, name, "shape " + Arrays.toString(dims)
                    + " has more bytes than a 64-bit size can count");
        }
        if (begin > end) {
            throw InputFormatException.tensor(path, name, "data offsets [" + begin + ", " + end
                    + ") begin after they end");
        }
        if (end > dataBytes) {
            throw InputFormatException.tensor(path, name, "data offsets [" + begin + ", " + end
                    + ") run past the end of the data section (" + dataBytes + " bytes)");
        }
        if (end - begin != nbytes) {
            throw InputFormatException.tensor(path, name, "data offsets [" + begin + ", " + end + ") hold "
                    + (end - begin) + " bytes, but shape " + Arrays.toString(dims) + " of " + dtype.safetensorsName()
                    + " needs " + numel + " × " + dtype.byteSize() + " = " + nbytes + " bytes");
        }
        return new TensorInfo(name, dtype, Shape.of(dims), begin, end);
    }

    private static DType dtype(Path path, String tensorName, String name) {
        try {
            return DType.fromSafetensors(name);
        } catch (IllegalArgumentException e) {
            String kind = SafetensorsFormat.UNSUPPORTED_DTYPES.contains(name)
                    ? "is a safetensors dtype that is not supported"
                    : "is not a safetensors dtype";
            throw InputFormatException.tensor(path, tensorName, "dtype " + InputFormatException.quote(name) + " "
                    + kind + "; supported: " + SafetensorsFormat.supportedDTypes());
        }
    }

    /** A JSON array of non-negative 64-bit integers; {@code length < 0} allows any length. */
    private static long[] longs(Path path, String name, String field, JsonNode node, int length) {
        String expected = length < 0 ? "an array of non-negative integers"
                : "an array of " + length + " non-negative integers";
        if (node == null || !node.isArray() || (length >= 0 && node.size() != length)) {
            throw InputFormatException.tensor(path, name, "'" + field + "' is " + JsonText.describe(node)
                    + ", expected " + expected);
        }
        long[] out = new long[node.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
                throw InputFormatException.tensor(path, name, "'" + field + "' is " + JsonText.describe(node)
                        + ", expected " + expected);
            }
            out[i] = v.longValue();
        }
        return out;
    }

    /** No byte of the data section belongs to two tensors; empty tensors occupy no bytes. */
    private static void requireDisjoint(Path path, Collection<TensorInfo> infos) {
        List<TensorInfo> byBegin = new ArrayList<>();
        for (TensorInfo t : infos) {
            if (t.byteSize() > 0) {
                byBegin.add(t);
            }
        }
        byBegin.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        TensorInfo reach = null; // the tensor seen so far that ends last
        for (TensorInfo t : byBegin) {
            if (reach != null && t.begin() < reach.end()) {
                throw InputFormatException.tensor(path, t.name(), "data offsets [" + t.begin() + ", " + t.end()
                        + ") overlap those of tensor " + InputFormatException.quote(reach.name()) + " ["
                        + reach.begin() + ", " + reach.end() + ")");
            }
            if (reach == null || t.end() > reach.end()) {
                reach = t;
            }
        }
    }
}
