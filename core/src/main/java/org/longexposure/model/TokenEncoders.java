package org.longexposure.model;

import org.longexposure.io.data.TokenEncoder;
import org.longexposure.io.tokenizer.Tokenizer;

/**
 * A model folder's tokenizer as the data pipeline's {@link TokenEncoder}: {@code encode} without special tokens,
 * {@code encodeDefault} as Hugging Face's default call (OPT: BOS prepended), the special ids from the tokenizer's
 * configuration (BOS/EOS −1 when absent; padding falls back to EOS, then 0). Lives here because the tokenizer and
 * the data pipeline are peers that do not see each other.
 */
public final class TokenEncoders {
    private TokenEncoders() {
    }

    public static TokenEncoder of(Tokenizer tok) {
        return new TokenEncoder() {
            @Override
            public int[] encode(String text) {
                return tok.encode(text);
            }

            @Override
            public int[] encodeDefault(String text) {
                return tok.encodeWithSpecials(text);
            }

            @Override
            public int bosId() {
                return tok.bosId().orElse(-1);
            }

            @Override
            public int eosId() {
                return tok.eosId().orElse(-1);
            }

            @Override
            public int padId() {
                return tok.padId().orElse(tok.eosId().orElse(0));
            }
        };
    }
}
