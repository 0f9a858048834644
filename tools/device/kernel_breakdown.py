"""Joins an Nsight Compute kernel-time CSV of a 2-step CudaStepBench run with the plain run's JSON.

The last step is the one measured: steps are split where the token embedding's kernel runs (twice per step, tokens
then positions). Per kernel name: launches and summed GPU time in that step; totals; and the plain run's median
step time, whose excess over the kernel sum is the time between kernels. Used by kernel-breakdown.sh.
"""
import argparse
import collections
import csv
import json

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--plain", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = [r for r in csv.reader(open(a.csv)) if len(r) > 10]
    if len(rows) < 2:
        raise SystemExit(f"{a.csv}: no kernel rows (see the .log next to it)")
    head = rows[0]
    name_i, value_i, unit_i = head.index("Kernel Name"), head.index("Metric Value"), head.index("Metric Unit")
    kernels = []
    for r in rows[1:]:
        scale = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0}[r[unit_i]]
        kernels.append((r[name_i], float(r[value_i].replace(",", "")) * scale))
    starts = [i for i, k in enumerate(kernels) if k[0].startswith("embedding_forward")][::2]
    if len(starts) < 2:
        raise SystemExit(f"{a.csv}: expected two steps (two pairs of embedding kernels), found {len(starts)}")
    step = kernels[starts[-1]:]
    by_name = collections.defaultdict(lambda: [0, 0.0])
    for name, ms in step:
        by_name[name][0] += 1
        by_name[name][1] += ms
    plain = json.load(open(a.plain))
    wall = plain.get("step", {}).get("ms_median")
    kernel_ms = sum(ms for _, ms in step)
    result = {
        "benchmark": "kernel-breakdown",
        "commit": a.commit,
        "case": a.case,
        "machine": plain.get("machine"),
        "config": plain.get("config"),
        "method": "ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum over "
                  "CudaStepBench --warmup 1 --iters 1 (kernels serialised, L2 as the previous kernel left it); the "
                  "last step's kernels; plain run: the same bench without ncu, median step wall time",
        "step_kernels": len(step),
        "step_kernel_ms": kernel_ms,
        "plain_step_ms_median": wall,
        "between_kernels_ms": None if wall is None else wall - kernel_ms,
        "kernels": [{"name": n, "launches": c, "ms": ms, "us_per_launch": 1e3 * ms / c}
                    for n, (c, ms) in sorted(by_name.items(), key=lambda x: -x[1][1])],
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{a.case}: {len(step)} kernels, {kernel_ms:.2f} ms of kernels per step; plain step {wall} ms")
    for k in result["kernels"][:25]:
        print(f"  {k['name'][:60]:60s} {k['launches']:5d} {k['ms']:8.3f} ms {k['us_per_launch']:8.2f} us")


if __name__ == "__main__":
    main()
