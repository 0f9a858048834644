package org.longexposure.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;

/** Runs the command line in-process for tests, capturing status and both streams; paths of bundled files. */
final class CliRun {
    static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    static final Path MODEL = ROOT.resolve("models/opt-mini-256");
    static final Path DATA = ROOT.resolve("data/e2e-sample/train.jsonl");
    static final Path VALID = ROOT.resolve("data/e2e-sample/valid.jsonl");

    private CliRun() {
    }

    /** Exit status and what the command printed. */
    record Result(int status, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(status, out.toString(), err.toString());
    }
}
