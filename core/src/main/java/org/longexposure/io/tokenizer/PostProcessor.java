package org.longexposure.io.tokenizer;

/**
 * The special tokens wrapped around one encoded sequence when special tokens are asked for, i.e. what
 * HF {@code tokenizer(text)["input_ids"]} adds: OPT {@code [</s>] + ids}, GPT-2 nothing, RoBERTa
 * {@code [<s>] + ids + [</s>]}.
 *
 * <p>Reference: HF tokenizers {@code processors} (TemplateProcessing's "single" template, RobertaProcessing,
 * BertProcessing, ByteLevel, Sequence) and transformers' slow {@code GPT2Tokenizer}
 * ({@code add_bos_token}, {@code add_eos_token}).
 *
 * @param prefix ids placed before the sequence
 * @param suffix ids placed after it
 */
record PostProcessor(int[] prefix, int[] suffix) {
    static final PostProcessor NONE = new PostProcessor(new int[0], new int[0]);

    PostProcessor {
        prefix = prefix.clone();
        suffix = suffix.clone();
    }

    /** This processor applied to the output of {@code inner}: {@code prefix + inner.prefix + A + inner.suffix + suffix}. */
    PostProcessor around(PostProcessor inner) {
        return new PostProcessor(concat(prefix, inner.prefix), concat(inner.suffix, suffix));
    }

    private static int[] concat(int[] a, int[] b) {
        int[] r = new int[a.length + b.length];
        System.arraycopy(a, 0, r, 0, a.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
