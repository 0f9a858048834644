package org.longexposure.bench.step;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;
import org.longexposure.cuda.backend.ProfilingBackend;
import org.longexposure.io.data.Batch;
import org.longexposure.train.Trainer;

/**
 * The per-op breakdown of a training step: runs {@code steps} more {@link Trainer#step}s with the
 * {@link ProfilingBackend} enabled and reports, per op label (family, method, operand shapes) and per category,
 * the GPU time per step (CUDA events around each call), the host time spent inside the calls, the calls and
 * kernel launches per step; and per step the host wall time, the GPU span from the first to the last event, and
 * their difference from the summed op times (GPU idle time: launch gaps and synchronisations).
 */
final class StepProfile {
    private StepProfile() {
    }

    static void run(ProfilingBackend prof, Trainer trainer, Batch batch, int steps, double holdMs,
                    ObjectNode result) {
        prof.holdMillis(holdMs);
        prof.enabled(true);
        for (int i = 0; i < steps; i++) {
            prof.beginStep();
            trainer.step(List.of(batch));
            prof.endStep();
        }
        prof.enabled(false);
        ProfilingBackend.Report r = prof.report();
        double wall = 0;
        double span = 0;
        double opGpu = 0;
        double opHost = 0;
        double launches = 0;
        double gemms = 0;
        double calls = 0;
        for (ProfilingBackend.StepTotals t : r.steps()) {
            wall += t.wallMs() / steps;
            span += t.gpuSpanMs() / steps;
            opGpu += t.opGpuMs() / steps;
            opHost += t.opHostMs() / steps;
            launches += (double) t.kernelLaunches() / steps;
            gemms += (double) t.gemmCalls() / steps;
            calls += (double) t.calls() / steps;
        }
        ObjectNode p = result.putObject("profile");
        p.put("steps", steps);
        p.put("method", "CUDA events recorded on the stream before and after every op-family call; GPU ms per"
                + " step = summed event intervals / steps; host ms = System.nanoTime inside the calls; launches ="
                + " kernel launches on the stream + cuBLASLt matmul calls");
        p.put("hold_ms", holdMs);
        if (holdMs > 0) {
            p.put("hold", "the stream was held for hold_ms at each step's start and after each read-back, so the"
                    + " op times are the GPU's alone; the span leaves the holds out (the GPU-bound step time), the"
                    + " wall time includes them");
        }
        p.put("wall_ms_per_step", wall);
        p.put("gpu_span_ms_per_step", span);
        p.put("op_gpu_ms_per_step", opGpu);
        p.put("gpu_idle_ms_per_step", span - opGpu);
        p.put("op_host_ms_per_step", opHost);
        p.put("op_calls_per_step", calls);
        p.put("kernel_launches_per_step", launches); // the stream's own launches, without the cuBLASLt products
        p.put("gemm_calls_per_step", gemms);
        ObjectNode cats = p.putObject("categories");
        StringBuilder out = new StringBuilder();
        out.append(String.format("%nprofile (%d steps): wall %.2f ms/step, GPU span %.2f, ops %.2f (idle %.2f),"
                        + " host inside ops %.2f ms; %.0f calls, %.0f kernel launches + %.0f cuBLASLt products per step%n", steps,
                wall, span, opGpu, span - opGpu, opHost, calls, launches, gemms));
        out.append(String.format("%-28s %9s %6s %9s %7s %8s%n", "category", "gpu ms", "%", "host ms", "calls",
                "launch"));
        for (Map.Entry<String, double[]> e : r.byCategory().entrySet()) {
            double[] v = e.getValue();
            ObjectNode c = cats.putObject(e.getKey());
            c.put("gpu_ms", v[0] / steps);
            c.put("host_ms", v[1] / steps);
            c.put("calls", v[2] / steps);
            c.put("launches", v[3] / steps);
            out.append(String.format("%-28s %9.3f %6.1f %9.3f %7.0f %8.0f%n", e.getKey(), v[0] / steps,
                    100 * v[0] / steps / span, v[1] / steps, v[2] / steps, v[3] / steps));
        }
        ArrayNode ops = p.putArray("ops");
        out.append(String.format("%9s %6s %9s %6s %6s  %s%n", "gpu ms", "%", "host ms", "calls", "launch", "op"));
        for (ProfilingBackend.Row row : r.rows()) {
            ObjectNode o = ops.addObject();
            o.put("op", row.label);
            o.put("category", row.category);
            o.put("gpu_ms", row.gpuMs / steps);
            o.put("host_ms", row.hostMs / steps);
            o.put("calls", (double) row.calls / steps);
            o.put("launches", (double) row.launches / steps);
            o.put("gpu_us_per_call", 1e3 * row.gpuMs / row.calls);
            out.append(String.format("%9.3f %6.1f %9.3f %6.0f %6.0f  %s%n", row.gpuMs / steps,
                    100 * row.gpuMs / steps / span, row.hostMs / steps, (double) row.calls / steps,
                    (double) row.launches / steps, row.label));
        }
        System.out.print(out);
    }
}
