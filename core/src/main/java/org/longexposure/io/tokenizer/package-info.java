/**
 * Tokenizers: text ↔ token ids, equal id for id to Hugging Face's.
 *
 * <p>{@link org.longexposure.io.tokenizer.Tokenizer} is byte-level BPE (GPT-2, OPT), loaded from a
 * {@code tokenizer.json} or from {@code vocab.json} + {@code merges.txt} (+ {@code tokenizer_config.json},
 * {@code special_tokens_map.json}). Problems with the files are reported as
 * {@link org.longexposure.io.InputFormatException}, naming the file, the field and what was expected.
 * Tested by exact id sequences against HF tokenizers, never "close enough".
 */
package org.longexposure.io.tokenizer;
