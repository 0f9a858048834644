package org.longexposure.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import org.longexposure.io.InputFormatException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code longexposure} command. The only place that reads arguments, environment or system properties:
 * everything below receives explicit values. User errors (bad files, bad options) print one line and exit with
 * status 2; anything else is a bug and keeps its stack trace.
 */
@Command(name = "longexposure", mixinStandardHelpOptions = true, version = "longexposure 0.1.0",
        description = "Parameter-efficient fine-tuning of LLMs on the JVM, accelerated by exposed sparsity.",
        subcommands = {FinetuneCommand.class, EvalCommand.class, GenerateCommand.class, ExportCommand.class,
            MergeCommand.class, InfoCommand.class, ExposeCommand.class, FitPredictorsCommand.class,
            PermuteMlpCommand.class})
public final class Main {
    /** Exit status for bad input or options. */
    public static final int USER_ERROR = 2;

    public static void main(String[] args) {
        System.setProperty("java.awt.headless", "true");
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs the command line with the given streams and returns the exit status (used by tests). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((ex, line, parse) -> {
            if (ex instanceof InputFormatException || ex instanceof UserException
                    || ex instanceof IllegalArgumentException) {
                err.println("error: " + ex.getMessage());
                return USER_ERROR;
            }
            throw ex;
        });
        cl.setParameterExceptionHandler((ex, a) -> {
            err.println("error: " + ex.getMessage());
            err.println("(run with --help for usage)");
            return USER_ERROR;
        });
        return cl.execute(args);
    }

    /** The project folder: where the bundled model and sample data live (set by the launcher script). */
    static Path home() {
        String h = System.getProperty("longexposure.home");
        return Path.of(h != null ? h : ".").toAbsolutePath().normalize();
    }

    /** A user error with a message meant to be printed as is. */
    static final class UserException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UserException(String message) {
            super(message);
        }
    }
}
