package org.longexposure.io.safetensors;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import org.longexposure.tensor.DType;

/**
 * Constants of the safetensors format shared by the reader and the writer. A file is: an unsigned 64-bit
 * little-endian header length {@code n}; {@code n} bytes of UTF-8 JSON (an object mapping each tensor name to
 * {@code {"dtype", "shape", "data_offsets": [begin, end]}}, plus an optional {@code "__metadata__"} object of
 * string values), conventionally padded with spaces so that {@code 8 + n} is a multiple of 8; then the data
 * section, in which each tensor occupies {@code [begin, end)} packed row-major and little-endian.
 */
final class SafetensorsFormat {
    private SafetensorsFormat() {
    }

    /** Bytes of the header-length prefix. */
    static final int PREFIX_BYTES = 8;

    /** The reserved header key holding free-form string metadata. */
    static final String METADATA_KEY = "__metadata__";

    /** The largest header accepted, as in the reference implementation: a guard against absurd lengths. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    /** Safetensors dtypes that exist in the format but that no tensor here can hold. */
    static final List<String> UNSUPPORTED_DTYPES = List.of("BOOL", "U8", "I8", "I16", "U16", "U32", "U64",
            "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64");

    /** Parses the header: rejects duplicate keys (a tensor named twice) and text after the JSON object. */
    static final ObjectReader HEADER_READER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build()
            .reader();

    static final ObjectWriter HEADER_WRITER = JsonMapper.builder().build().writer();

    /** The supported dtype names, for error messages. */
    static String supportedDTypes() {
        return String.join(", ", Arrays.stream(DType.values()).map(DType::safetensorsName).toList());
    }

    /**
     * Host tensors are read and written in native byte order (the tensor accessors use native layouts), so the
     * format's little-endian data is only meaningful on a little-endian machine.
     */
    static void requireLittleEndianHost() {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("safetensors data is little-endian; this machine is "
                    + ByteOrder.nativeOrder());
        }
    }
}
