#!/usr/bin/env python3
"""Joins CudaStepBench results with the Hugging Face baseline of the same call into one result file.

For every (model, seq) measured by both: ms/step of each, the ratio ours / HF, tokens/s, peak GPU memory, and
both steps' useful TFLOP/s: the FLOP count is CudaStepBench's analytic one (StepFlops: same model, same shapes,
so it applies to the HF step too), divided by each median time, and as a fraction of the bf16 8192^3 matmul rate
the HF script measured in the same call. The bar of the issue is checked at OPT-1.3B, sequence 1024: ours at most
0.85 x HF's time, with peak memory no higher.

Usage: compare.py --ours A.json [B.json ...] --hf H.json [...] --out combined.json [--commit SHA]
Standard library only. Prints a table last.
"""

import argparse
import json
import time

BAR_MODEL, BAR_SEQ, BAR_RATIO = "opt-1.3b", 1024, 0.85


def load(paths):
    docs = []
    for p in paths:
        try:
            with open(p) as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            docs.append({"file": p, "error": f"{type(e).__name__}: {e}"})
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", nargs="*", default=[])
    ap.add_argument("--hf", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="unknown")
    a = ap.parse_args()
    ours = load(a.ours)
    hfs = load(a.hf)

    peak = None
    for h in hfs:
        if "matmul_peak" in h:
            peak = h["matmul_peak"]["tflops_median"]
    hf_rows = {}
    for h in hfs:
        for r in h.get("results", []):
            if r.get("attn") == "sdpa":
                hf_rows[(r["model"], r["seq"])] = r
    hf_eager = {(r["model"], r["seq"]): r for h in hfs for r in h.get("results", []) if r.get("attn") == "eager"}

    rows = []
    for o in ours:
        if "config" not in o:
            rows.append({"error": o.get("error", "no result"), "file": o.get("file")})
            continue
        c = o["config"]
        key = (c["model"], c["seq"])
        flops = o["flops"]["total"]
        row = {"model": c["model"], "batch": c["batch"], "seq": c["seq"], "tokens": c["tokens"],
               "flops_per_step": flops,
               "ours_ms": o["step"]["ms_median"], "ours_tokens_per_s": o["step"]["tokens_per_s"],
               "ours_peak_gib": o["memory"]["peak_gib"], "ours_device_used_peak_gib":
                   o["memory"]["device_used_peak_gib"], "ours_loss_last": o["step"]["loss_last"],
               "ours_tflops": flops / (o["step"]["ms_median"] * 1e-3) / 1e12}
        h = hf_rows.get(key)
        if h is not None and "error" not in h:
            row.update({"hf_ms": h["ms_median"], "hf_tokens_per_s": h["tokens_per_s"],
                        "hf_peak_gib": h["peak_allocated_gib"], "hf_loss_last": h["loss_last"],
                        "hf_tflops": flops / (h["ms_median"] * 1e-3) / 1e12,
                        "ratio_ms_ours_over_hf": row["ours_ms"] / h["ms_median"],
                        "ratio_peak_ours_over_hf": row["ours_peak_gib"] / h["peak_allocated_gib"]})
        elif h is not None:
            row["hf_error"] = h["error"]
        e = hf_eager.get(key)
        if e is not None and "error" not in e:
            row["hf_eager_ms"] = e["ms_median"]
            row["hf_eager_peak_gib"] = e["peak_allocated_gib"]
        if peak:
            row["ours_fraction_of_peak"] = row["ours_tflops"] / peak
            if "hf_tflops" in row:
                row["hf_fraction_of_peak"] = row["hf_tflops"] / peak
        rows.append(row)
    # HF rows without a counterpart of ours (e.g. our run failed) are kept as they are
    seen = {(r.get("model"), r.get("seq")) for r in rows}
    for key, h in hf_rows.items():
        if key not in seen:
            rows.append({"model": key[0], "seq": key[1], "hf_ms": h.get("ms_median"),
                         "hf_peak_gib": h.get("peak_allocated_gib"), "ours_error": "no result", **(
                             {"hf_error": h["error"]} if "error" in h else {})})

    bar = {"model": BAR_MODEL, "seq": BAR_SEQ, "max_ratio": BAR_RATIO, "passed": False}
    for r in rows:
        if r.get("model") == BAR_MODEL and r.get("seq") == BAR_SEQ and "ratio_ms_ours_over_hf" in r:
            bar.update({"ratio": r["ratio_ms_ours_over_hf"], "ours_ms": r["ours_ms"], "hf_ms": r["hf_ms"],
                        "ours_peak_gib": r["ours_peak_gib"], "hf_peak_gib": r["hf_peak_gib"],
                        "ours_fraction_of_peak": r.get("ours_fraction_of_peak"),
                        "time_ok": r["ratio_ms_ours_over_hf"] <= BAR_RATIO,
                        "memory_ok": r["ours_peak_gib"] <= r["hf_peak_gib"]})
            bar["passed"] = bar["time_ok"] and bar["memory_ok"]

    machine = {}
    for h in hfs:
        machine.update(h.get("machine", {}))
    for o in ours:
        if "machine" in o:
            machine["jvm_host"] = o["machine"]
            break
    combined = {"benchmark": "lora-step-cuda-vs-hf", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "commit": a.commit, "machine": machine,
                "software": next((h["software"] for h in hfs if "software" in h), {}),
                "matmul_peak": next((h["matmul_peak"] for h in hfs if "matmul_peak" in h), None),
                "bar": bar, "rows": rows, "ours": ours, "hf": hfs}
    with open(a.out, "w") as f:
        json.dump(combined, f, indent=2)

    def fmt(v, spec):
        if isinstance(v, (int, float)):
            return format(v, spec)
        width = spec.split(".")[0]
        return "-".rjust(int(width) if width.isdigit() else 1)

    print(f"bf16 matmul peak: {fmt(peak, '.0f')} TFLOP/s; B=4, LoRA r=8 q_proj,v_proj, AdamW")
    print(f"{'model':9} {'seq':>5} | {'ours ms':>8} {'HF ms':>8} {'ratio':>6} | {'ours GiB':>8} {'HF GiB':>7} | "
          f"{'ours TF/s':>9} {'%peak':>5} | {'HF TF/s':>7} {'%peak':>5}")
    for r in rows:
        if "model" not in r:
            print(f"error: {r.get('error')}")
            continue
        print(f"{r['model']:9} {r['seq']:5} | {fmt(r.get('ours_ms'), '8.1f')} {fmt(r.get('hf_ms'), '8.1f')} "
              f"{fmt(r.get('ratio_ms_ours_over_hf'), '6.2f')} | {fmt(r.get('ours_peak_gib'), '8.2f')} "
              f"{fmt(r.get('hf_peak_gib'), '7.2f')} | {fmt(r.get('ours_tflops'), '9.0f')} "
              f"{fmt(100 * r['ours_fraction_of_peak'] if 'ours_fraction_of_peak' in r else None, '5.0f')} | "
              f"{fmt(r.get('hf_tflops'), '7.0f')} "
              f"{fmt(100 * r['hf_fraction_of_peak'] if 'hf_fraction_of_peak' in r else None, '5.0f')}"
              + (f"  ours: {r['ours_error']}" if "ours_error" in r else "")
              + (f"  HF: {r['hf_error'][:60]}" if "hf_error" in r else ""))
    verdict = "PASS" if bar["passed"] else "FAIL"
    print(f"bar {BAR_MODEL} seq {BAR_SEQ}: ratio {fmt(bar.get('ratio'), '.3f')} (<= {BAR_RATIO}), memory "
          f"{fmt(bar.get('ours_peak_gib'), '.2f')} vs {fmt(bar.get('hf_peak_gib'), '.2f')} GiB: {verdict}")


if __name__ == "__main__":
    main()
