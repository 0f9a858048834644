package org.longexposure.io.data;

/**
 * What the data pipeline needs from a tokenizer: plain encoding (no special tokens) and the model's conventions.
 * Kept here so that {@code io.data} does not depend on a tokenizer implementation.
 */
public interface TokenEncoder {
    /** Ids of {@code text} with no special tokens added. */
    int[] encode(String text);

    /** Ids of {@code text} as the model's HF tokenizer returns them by default (e.g. OPT prepends {@code </s>}). */
    int[] encodeDefault(String text);

    /** The beginning-of-sequence id, or -1. */
    int bosId();

    /** The end-of-sequence id, or -1. */
    int eosId();

    /** The padding id (falls back to eos, then 0, where the tokenizer has none). */
    int padId();
}
