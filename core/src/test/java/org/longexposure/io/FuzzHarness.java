package org.longexposure.io;

import static org.assertj.core.api.Assertions.fail;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.time.Duration;

/**
 * Runs seeded fuzz cases of a reader in batches, each batch under a wall-clock limit so that a hang fails the test
 * (naming the case it hung on) instead of stalling the build. A case either returns (the input was accepted) or
 * throws {@link InputFormatException} with a one-line message starting with the expected file or folder (the input
 * was rejected); anything else, an {@link Error} included, fails the test with the case's description.
 */
public final class FuzzHarness {
    /** How many cases were accepted and how many rejected. */
    public record Tally(int accepted, int rejected) {
        public int total() {
            return accepted + rejected;
        }
    }

    /** One case: builds its input from {@code index}, says what it did in {@code what}, then runs the reader. */
    @FunctionalInterface
    public interface Case {
        void run(int index, StringBuilder what) throws Exception;
    }

    private FuzzHarness() {
    }

    /**
     * Runs cases {@code 0 .. count-1}.
     *
     * @param messagePrefix what every rejection's message must start with (the file or folder read)
     * @param batch         cases per time-limited batch
     * @param limit         wall-clock limit of one batch
     */
    public static Tally run(int count, int batch, Duration limit, String messagePrefix, Case c) {
        int[] tally = new int[2];
        StringBuilder what = new StringBuilder();
        int[] current = new int[1];
        for (int start = 0; start < count; start += batch) {
            int from = start;
            int to = Math.min(count, start + batch);
            assertTimeoutPreemptively(limit, () -> {
                for (int i = from; i < to; i++) {
                    current[0] = i;
                    what.setLength(0);
                    try {
                        c.run(i, what);
                        tally[0]++;
                    } catch (InputFormatException e) {
                        String m = e.getMessage();
                        if (!m.startsWith(messagePrefix) || m.contains("\n") || m.contains("\r")) {
                            fail("case " + i + " (" + JsonMutator.printable(what.toString())
                                    + "): message is not one line starting with " + messagePrefix + ": " + m);
                        }
                        tally[1]++;
                    } catch (Throwable t) {
                        fail("case " + i + " (" + JsonMutator.printable(what.toString()) + ") threw " + t, t);
                    }
                }
            }, () -> "cases " + from + ".." + (to - 1) + " ran past " + limit + ", last begun: case " + current[0]
                    + " (" + JsonMutator.printable(what.toString()) + ")");
        }
        return new Tally(tally[0], tally[1]);
    }
}
