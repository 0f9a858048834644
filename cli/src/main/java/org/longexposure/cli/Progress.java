package org.longexposure.cli;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * Progress of long work: a single self-updating line on a terminal, plain lines otherwise (logs, pipes, CI).
 */
final class Progress {
    private final PrintWriter out;
    private final boolean terminal;
    private final int total;
    private final int every;
    private final long startNanos = System.nanoTime();
    private final int firstStep;

    Progress(PrintWriter out, boolean terminal, int firstStep, int total) {
        this.out = out;
        this.terminal = terminal;
        this.total = total;
        this.firstStep = firstStep;
        this.every = Math.max(1, total / 25);
    }

    void step(int step, double loss, double tokensPerSecond) {
        double elapsed = (System.nanoTime() - startNanos) / 1e9;
        int done = step - firstStep + 1;
        double eta = done > 0 ? elapsed / done * (total - step) : 0;
        String line = String.format(Locale.ROOT, "step %d/%d | loss %.4f | %.0f tok/s | ETA %s", step, total, loss,
                tokensPerSecond, clock(eta));
        if (terminal) {
            out.print("\r" + bar(step) + " " + line + "   ");
            if (step == total) {
                out.println();
            }
            out.flush();
        } else if (step % every == 0 || step == total || step == firstStep) {
            out.println(line);
        }
    }

    void message(String s) {
        if (terminal) {
            out.print("\r");
        }
        out.println(s);
    }

    private String bar(int step) {
        int width = 24;
        int filled = (int) Math.round((double) width * step / Math.max(1, total));
        return "[" + "#".repeat(filled) + ".".repeat(width - filled) + "]";
    }

    static String clock(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                : String.format(Locale.ROOT, "%d:%02d", s / 60, s % 60);
    }
}
