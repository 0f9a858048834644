package org.longexposure.io.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.regex.Pattern;

/**
 * GPT-2's byte-level alphabet, its pre-tokenization regex, and UTF-8 decoding with replacement.
 *
 * <p>Reference: HF tokenizers {@code pre_tokenizers::byte_level} ({@code bytes_char}, {@code RE}, the ByteLevel
 * decoder) and OpenAI's GPT-2 {@code encoder.py} ({@code bytes_to_unicode}).
 *
 * <p>The byte-to-char table maps each of the 256 byte values to one printable code point, so that BPE vocabulary
 * entries are ordinary strings: the 188 bytes {@code '!'..'~'}, {@code 0xA1..0xAC}, {@code 0xAE..0xFF} map to
 * themselves, the other 68 (controls, space, DEL, 0x80..0xA0, soft hyphen) to {@code U+0100 + n} in byte order.
 * So byte 0x20 (space) is {@code 'Ġ'} (U+0120) and byte 0x0A (LF) is {@code 'Ċ'} (U+010A).
 */
final class ByteLevel {
    /**
     * GPT-2's split regex, with {@code \s}, {@code \S} taken as Unicode White_Space (as in Oniguruma and Rust's
     * regex crate, which HF tokenizers uses), not Java's default ASCII-only classes.
     * {@code \s+(?!\S)} takes a run of whitespace but leaves its last character to prefix the next word.
     */
    static final Pattern GPT2_PATTERN = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    /** Byte value (0..255) → the char standing for it in vocabulary strings. */
    private static final char[] BYTE_TO_CHAR = buildByteToChar();
    /** Char (0..0x143) → the byte it stands for, or -1. */
    private static final int[] CHAR_TO_BYTE = buildCharToByte(BYTE_TO_CHAR);

    private ByteLevel() {}

    /** The vocabulary char standing for byte {@code b} (0..255). */
    static char byteToChar(int b) {
        return BYTE_TO_CHAR[b & 0xFF];
    }

    /** The byte that vocabulary char {@code c} stands for, or -1 if {@code c} is not in the byte alphabet. */
    static int charToByte(char c) {
        return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /** {@code bytes} as a vocabulary string: one byte-alphabet char per byte. */
    static String toByteChars(byte[] bytes) {
        char[] cs = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            cs[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(cs);
    }

    /**
     * Appends the bytes a token string stands for to {@code out}: one byte per char if every char is in the byte
     * alphabet, else the token's own UTF-8 bytes (as the HF ByteLevel decoder does for added tokens written in
     * plain text, e.g. a token containing a real space).
     */
    static void appendTokenBytes(String token, ByteSink out) {
        for (int i = 0; i < token.length(); i++) {
            if (charToByte(token.charAt(i)) < 0) {
                for (byte b : token.getBytes(StandardCharsets.UTF_8)) {
                    out.add(b);
                }
                return;
            }
        }
        for (int i = 0; i < token.length(); i++) {
            out.add((byte) charToByte(token.charAt(i)));
        }
    }

    /**
     * Replaces unpaired UTF-16 surrogates by U+FFFD, so that the text has a well-defined UTF-8 form (a Rust or
     * Python tokenizer cannot be handed an unpaired surrogate at all). Returns {@code s} itself when it has none.
     */
    static String replaceLoneSurrogates(String s) {
        StringBuilder sb = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean lone;
            if (Character.isHighSurrogate(c)) {
                lone = i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1));
                if (!lone) {
                    if (sb != null) {
                        sb.append(c).append(s.charAt(i + 1));
                    }
                    i++;
                    continue;
                }
            } else {
                lone = Character.isLowSurrogate(c);
            }
            if (lone && sb == null) {
                sb = new StringBuilder(s.length());
                sb.append(s, 0, i);
            }
            if (sb != null) {
                sb.append(lone ? '\uFFFD' : c);
            }
        }
        return sb == null ? s : sb.toString();
    }

    /**
     * Decodes UTF-8, replacing each maximal ill-formed subsequence by one U+FFFD: the Unicode "best practice"
     * (Unicode 16, section 3.9, U+FFFD substitution of maximal subparts) that both Python's
     * {@code bytes.decode("utf-8", errors="replace")} and Rust's {@code String::from_utf8_lossy} follow.
     * Well-formed sequences per Unicode Table 3-7.
     */
    static String decodeUtf8Lossy(byte[] b, int len) {
        StringBuilder sb = new StringBuilder(len);
        int i = 0;
        while (i < len) {
            int b0 = b[i] & 0xFF;
            if (b0 < 0x80) {
                sb.append((char) b0);
                i++;
                continue;
            }
            int need;         // continuation bytes after the lead
            int lo = 0x80;    // allowed range of the first continuation byte
            int hi = 0xBF;
            int cp;
            if (b0 >= 0xC2 && b0 <= 0xDF) {
                need = 1;
                cp = b0 & 0x1F;
            } else if (b0 >= 0xE0 && b0 <= 0xEF) {
                need = 2;
                cp = b0 & 0x0F;
                if (b0 == 0xE0) {
                    lo = 0xA0;
                } else if (b0 == 0xED) {
                    hi = 0x9F;  // excludes the surrogates U+D800..DFFF
                }
            } else if (b0 >= 0xF0 && b0 <= 0xF4) {
                need = 3;
                cp = b0 & 0x07;
                if (b0 == 0xF0) {
                    lo = 0x90;
                } else if (b0 == 0xF4) {
                    hi = 0x8F;  // caps at U+10FFFF
                }
            } else {
                sb.append('\uFFFD');  // 0x80..0xC1 or 0xF5..0xFF can never start a sequence
                i++;
                continue;
            }
            int j = i + 1;
            int got = 0;
            while (got < need && j < len) {
                int bj = b[j] & 0xFF;
                if (bj < (got == 0 ? lo : 0x80) || bj > (got == 0 ? hi : 0xBF)) {
                    break;
                }
                cp = (cp << 6) | (bj & 0x3F);
                got++;
                j++;
            }
            if (got == need) {
                sb.appendCodePoint(cp);
            } else {
                sb.append('\uFFFD');  // the lead plus the valid continuation bytes so far form one maximal subpart
            }
            i = j;
        }
        return sb.toString();
    }

    /** A growable byte buffer for decoding. */
    static final class ByteSink {
        private byte[] data = new byte[64];
        private int size;

        void add(byte v) {
            if (size == data.length) {
                data = Arrays.copyOf(data, data.length * 2);
            }
            data[size++] = v;
        }

        String decodeUtf8Lossy() {
            return ByteLevel.decodeUtf8Lossy(data, size);
        }
    }

    private static char[] buildByteToChar() {
        char[] table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char) b : (char) (256 + n++);
        }
        return table;
    }

    private static int[] buildCharToByte(char[] byteToChar) {
        int max = 0;
        for (char c : byteToChar) {
            max = Math.max(max, c);
        }
        int[] table = new int[max + 1];
        Arrays.fill(table, -1);
        for (int b = 0; b < 256; b++) {
            table[byteToChar[b]] = b;
        }
        return table;
    }
}
