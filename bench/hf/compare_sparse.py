#!/usr/bin/env python3
"""Joins Long Exposure's sparse training steps with our dense step and the Hugging Face baseline of the same call.

Inputs: CudaStepBench results of one (model, seq): the dense step and sparse variants (their "sparsity" object says
which sockets ran sparse, the budgets and the realised densities), and hf_peft_step.py's sdpa result at the same
shape. For every sparse variant: ms/step, ratio to HF sdpa and to our dense step, peak memory (device arena
high-water mark; HF: torch max_memory_allocated) and its ratio to HF's, and the densities. The bars of the issue are
checked on the variant with both sockets sparse: at most 0.4 x HF's time, at most 0.6 x our dense step, peak memory
at most 0.7 x HF's.

With --pairs (more runs of the dense step and the both-sparse step of the same call, alternating: dense, sparse,
dense, sparse, ...) the bar against our dense step is judged on the median over all pairs, the first being --dense
and the both-sparse --sparse file: one pair moves by a few percent between runs, the median much less.

Usage: compare_sparse.py --dense D.json --sparse S1.json [S2.json ...] --hf H.json --out combined.json [--commit SHA]
       [--pairs D2.json S2.json [D3.json S3.json ...]]
Standard library only. Prints a table last.
"""

import argparse
import json
import time

BAR_HF, BAR_DENSE, BAR_MEMORY = 0.4, 0.6, 0.7


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"file": path, "error": f"{type(e).__name__}: {e}"}


def variant(doc):
    s = doc.get("sparsity")
    if s is None:
        return "dense"
    parts = []
    if "attn_density_causal_mean" in s:
        parts.append("attention")
    if "mlp_density_mean" in s:
        parts.append("mlp")
    return "sparse " + "+".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dense", required=True)
    ap.add_argument("--sparse", nargs="+", required=True)
    ap.add_argument("--hf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--pairs", nargs="*", default=[])
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("--pairs takes dense and sparse results in pairs")
    dense = load(a.dense)
    sparse = [load(p) for p in a.sparse]
    hf = load(a.hf)

    hf_row = None
    if "config" in dense:
        key = (dense["config"]["model"], dense["config"]["seq"])
        for r in hf.get("results", []):
            if r.get("attn") == "sdpa" and (r.get("model"), r.get("seq")) == key and "error" not in r:
                hf_row = r
    rows = []
    for doc in [dense] + sparse:
        if "step" not in doc:
            rows.append({"variant": "?", "error": doc.get("error", "no result"), "file": doc.get("file")})
            continue
        row = {"variant": variant(doc), "model": doc["config"]["model"], "seq": doc["config"]["seq"],
               "batch": doc["config"]["batch"], "ms": doc["step"]["ms_median"], "ms_min": doc["step"]["ms_min"],
               "peak_gib": doc["memory"]["peak_gib"], "loss_last": doc["step"]["loss_last"]}
        if "step" in dense:
            row["ratio_to_our_dense"] = row["ms"] / dense["step"]["ms_median"]
            row["memory_ratio_to_our_dense"] = row["peak_gib"] / dense["memory"]["peak_gib"]
        if hf_row is not None:
            row["ratio_to_hf"] = row["ms"] / hf_row["ms_median"]
            row["memory_ratio_to_hf"] = row["peak_gib"] / hf_row["peak_allocated_gib"]
        s = doc.get("sparsity")
        if s is not None:
            for k in ("attn_max_row_fraction", "attn_density_causal_mean", "attn_density_square_mean",
                      "mlp_density_mean", "mlp_max_blocks"):
                if k in s:
                    row[k] = s[k]
        rows.append(row)

    bar = {"hf_max": BAR_HF, "dense_max": BAR_DENSE, "memory_max": BAR_MEMORY, "passed": False}
    both = next((r for r in rows if r.get("variant") == "sparse attention+mlp"), None)
    pairs = []
    if both is not None and "step" in dense:
        pairs.append({"dense_ms": dense["step"]["ms_median"], "sparse_ms": both["ms"]})
        for d_path, s_path in zip(a.pairs[0::2], a.pairs[1::2]):
            d, sp = load(d_path), load(s_path)
            if "step" in d and "step" in sp:
                pairs.append({"dense_ms": d["step"]["ms_median"], "sparse_ms": sp["step"]["ms_median"]})
            else:
                pairs.append({"error": d.get("error", sp.get("error", "no result")), "files": [d_path, s_path]})
        for p in pairs:
            if "error" not in p:
                p["ratio"] = p["sparse_ms"] / p["dense_ms"]
    ratios = sorted(p["ratio"] for p in pairs if "ratio" in p)
    if both is not None and "ratio_to_hf" in both and ratios:
        n = len(ratios)
        median = ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
        bar.update({"ms": both["ms"], "hf_ms": hf_row["ms_median"], "dense_ms": dense["step"]["ms_median"],
                    "ratio_to_hf": both["ratio_to_hf"], "ratio_to_our_dense": median,
                    "ratio_to_our_dense_basis": f"median over {n} alternating dense/sparse pair(s) of this call",
                    "pairs": pairs, "memory_ratio_to_hf": both["memory_ratio_to_hf"],
                    "hf_ok": both["ratio_to_hf"] <= BAR_HF, "dense_ok": median <= BAR_DENSE,
                    "memory_ok": both["memory_ratio_to_hf"] <= BAR_MEMORY})
        bar["passed"] = bar["hf_ok"] and bar["dense_ok"] and bar["memory_ok"]

    combined = {"benchmark": "sparse-lora-step-vs-dense-and-hf",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": a.commit,
                "machine": {**hf.get("machine", {}), "jvm_host": dense.get("machine")},
                "software": hf.get("software", {}), "matmul_peak": hf.get("matmul_peak"),
                "hf": {"ms": hf_row["ms_median"], "peak_gib": hf_row["peak_allocated_gib"]} if hf_row else None,
                "bar": bar, "rows": rows, "ours": [dense] + sparse, "hf_raw": hf}
    with open(a.out, "w") as f:
        json.dump(combined, f, indent=2)

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    if hf_row is not None:
        print(f"HF sdpa: {hf_row['ms_median']:.1f} ms, {hf_row['peak_allocated_gib']:.2f} GiB")
    print(f"{'variant':22} {'ms':>7} {'/dense':>7} {'/HF':>6} {'GiB':>6} {'/HF':>5} {'attn d':>7} {'mlp d':>6}")
    for r in rows:
        if "error" in r:
            print(f"error: {r['error']}")
            continue
        print(f"{r['variant']:22} {r['ms']:7.1f} {fmt(r.get('ratio_to_our_dense'), '7.2f')} "
              f"{fmt(r.get('ratio_to_hf'), '6.2f')} {r['peak_gib']:6.2f} {fmt(r.get('memory_ratio_to_hf'), '5.2f')} "
              f"{fmt(r.get('attn_density_causal_mean'), '7.3f')} {fmt(r.get('mlp_density_mean'), '6.3f')}")
    for i, p in enumerate(bar.get("pairs", [])):
        if "ratio" in p:
            print(f"pair {i + 1}: dense {p['dense_ms']:.1f} ms, sparse {p['sparse_ms']:.1f} ms, ratio {p['ratio']:.3f}")
    print(f"bars (both sparse): /HF {fmt(bar.get('ratio_to_hf'), '.2f')} <= {BAR_HF}, /dense (median of pairs) "
          f"{fmt(bar.get('ratio_to_our_dense'), '.2f')} <= {BAR_DENSE}, memory/HF "
          f"{fmt(bar.get('memory_ratio_to_hf'), '.2f')} <= {BAR_MEMORY}: {'PASS' if bar['passed'] else 'FAIL'}")


if __name__ == "__main__":
    main()
