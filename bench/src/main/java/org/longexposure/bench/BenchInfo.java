package org.longexposure.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;

/** The machine/JVM/commit block every result file starts with, and the result writer. */
public final class BenchInfo {
    public static final ObjectMapper JSON = new ObjectMapper();

    private BenchInfo() {
    }

    /** Machine, JVM and source identification for a result file. */
    public static ObjectNode header(String benchmark, String commit) {
        ObjectNode o = JSON.createObjectNode();
        o.put("benchmark", benchmark);
        o.put("date", Instant.now().toString());
        o.put("commit", commit);
        ObjectNode m = o.putObject("machine");
        m.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version"));
        m.put("arch", System.getProperty("os.arch"));
        m.put("cpus", Runtime.getRuntime().availableProcessors());
        m.put("cpu_model", cpuModel());
        m.put("max_heap_gib", Runtime.getRuntime().maxMemory() / (1024.0 * 1024 * 1024));
        m.put("load_average_at_start", loadAverage());
        ObjectNode j = o.putObject("jvm");
        j.put("version", System.getProperty("java.runtime.version"));
        j.put("vendor", System.getProperty("java.vendor"));
        return o;
    }

    /** The 1-minute load average (other work on the machine skews timings; results record it). */
    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
    }

    private static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            return "unknown";
        }
        return "unknown";
    }

    public static void write(Path file, ObjectNode result) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(result) + "\n");
    }
}
