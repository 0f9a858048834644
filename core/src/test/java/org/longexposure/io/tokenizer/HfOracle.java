package org.longexposure.io.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.util.Utils;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * The test oracle: Hugging Face's Rust tokenizers (0.21) through DJL's bindings, loaded from a tokenizer.json.
 * Truncation and padding are switched off (DJL would otherwise cut at 512 tokens). The build runs DJL offline
 * (core/pom.xml), so it neither phones home nor downloads a native library.
 */
final class HfOracle implements AutoCloseable {
    private final HuggingFaceTokenizer hf;

    private HfOracle(HuggingFaceTokenizer hf) {
        this.hf = hf;
    }

    static HfOracle load(Path tokenizerJson) {
        assertThat(Utils.isOfflineMode())
                .as("DJL must run offline; run the tests through Maven (see core/pom.xml) or set -Dai.djl.offline=true")
                .isTrue();
        try {
            return new HfOracle(HuggingFaceTokenizer.newInstance(tokenizerJson,
                    Map.of("truncation", "false", "padding", "false", "addSpecialTokens", "true")));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    int[] encode(String text, boolean addSpecialTokens) {
        long[] ids = hf.encode(text, addSpecialTokens, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    String decode(int[] ids, boolean skipSpecialTokens) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            l[i] = ids[i];
        }
        return hf.decode(l, skipSpecialTokens);
    }

    @Override
    public void close() {
        hf.close();
    }
}
