package org.longexposure.io.tokenizer;

/**
 * A token matched verbatim in the raw text before pre-tokenization (HF tokenizers {@code AddedToken}), e.g. OPT's
 * {@code </s>} or GPT-2's {@code <|endoftext|>}.
 *
 * @param content    the literal text matched
 * @param id         its id
 * @param special    skipped by {@code decode(ids, true)}; HF's "special" flag
 * @param singleWord match only where neither neighbour is a word character
 * @param lstrip     the match swallows whitespace on its left
 * @param rstrip     the match swallows whitespace on its right
 * @param normalized matched after normalization (second pass) rather than on the raw text (first pass)
 */
record AddedToken(String content, int id, boolean special, boolean singleWord, boolean lstrip, boolean rstrip,
                  boolean normalized) {

    AddedToken withId(int newId) {
        return new AddedToken(content, newId, special, singleWord, lstrip, rstrip, normalized);
    }

    /** Same text and flags, whatever the id: HF's AddedToken equality (it stores no id). */
    boolean sameAs(AddedToken o) {
        return content.equals(o.content) && special == o.special && singleWord == o.singleWord && lstrip == o.lstrip
                && rstrip == o.rstrip && normalized == o.normalized;
    }
}
