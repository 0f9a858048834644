#!/usr/bin/env python3
"""Joins the outputs of tools/device/opt-mini-relu.sh into one summary (standard library only).

Reads, under --work: train/metrics.json (the recipe's record of the re-created model), expose/exposure.json,
predictors/predictor-report.json, ft-off/ and ft-auto/ (metrics.jsonl, validation.json: finetune with --sparsity off
and auto, same steps, data order and seed), evals/{off-dense,auto-dense,auto-sparse}.json (eval on packed held-out
rows), phases.tsv (wall seconds and exit status per phase) and machine.txt.

Step times: the first step of each run (kernel loading, first allocations) is left out of every median. In the
auto run, refresh steps run dense and then refit the predictors (refresh_ms, outside step_ms); sparse steps are
the others. Relative differences are (auto - off) / off.
"""
import argparse
import json
import os
import statistics


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        return []


def med(xs):
    return statistics.median(xs) if xs else None


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def rel(a, b):
    return None if a is None or b is None or b == 0 else (a - b) / b


def run_summary(d):
    m = lines(os.path.join(d, "metrics.jsonl"))
    v = load(os.path.join(d, "validation.json")) or {}
    if not m:
        return None
    steps = [x for x in m if x["step"] > 1]
    s = {"steps": len(m), "final_train_loss": m[-1]["loss"],
         "mean_train_loss_last_10": mean([x["loss"] for x in m[-10:]]),
         "median_step_ms_after_first": med([x["step_ms"] for x in steps]),
         "mean_step_ms_after_first": mean([x["step_ms"] for x in steps]),
         "first_step_ms": m[0]["step_ms"], "sum_step_ms": sum(x["step_ms"] for x in m),
         "valid_loss": v.get("valid_loss"), "valid_tokens": v.get("valid_tokens"),
         "valid_loss_sparse": v.get("valid_loss_sparse"), "train_loss": [x["loss"] for x in m],
         "step_ms": [round(x["step_ms"], 3) for x in m]}
    sp = [x for x in m if "sparsity" in x]
    if sp:
        sparse = [x for x in sp if not x["sparsity"]["dense_step"]]
        dense = [x for x in sp if x["sparsity"]["dense_step"]]
        s["refresh_steps"] = [x["step"] for x in dense]
        s["median_step_ms_sparse_steps"] = med([x["step_ms"] for x in sparse if x["step"] > 1])
        s["median_step_ms_refresh_steps_after_first"] = med([x["step_ms"] for x in dense if x["step"] > 1])
        s["refresh_ms"] = [round(x["sparsity"]["refresh_ms"], 1) for x in dense]
        s["sum_refresh_ms"] = sum(x["sparsity"]["refresh_ms"] for x in dense)
        nl = len(sp[0]["sparsity"]["attn_density"])
        layers = []
        for l in range(nl):
            def col(rows, key):
                return [r["sparsity"][key][l] for r in rows
                        if r["sparsity"].get(key) and r["sparsity"][key][l] is not None]
            layers.append({
                "layer": l,
                "attn_density_all_steps": mean(col(sp, "attn_density")),
                "attn_density_sparse_steps": mean(col(sparse, "attn_density")),
                "mlp_density_all_steps": mean(col(sp, "mlp_density")),
                "mlp_density_sparse_steps": mean(col(sparse, "mlp_density")),
                "attn_dense_at_refreshes": col(dense, "attn_dense"),
                "mlp_dense_at_refreshes": col(dense, "mlp_dense"),
                "attn_recall_stale_at_refreshes": col(dense, "attn_recall_stale"),
                "attn_recall_at_refreshes": col(dense, "attn_recall"),
                "attn_predicted_density_at_refreshes": col(dense, "attn_predicted_density"),
                "attn_coverage_at_refreshes": col(dense, "attn_coverage"),
                "mlp_recall_stale_at_refreshes": col(dense, "mlp_recall_stale"),
                "mlp_recall_at_refreshes": col(dense, "mlp_recall"),
                "mlp_predicted_density_at_refreshes": col(dense, "mlp_predicted_density"),
                "mlp_coverage_at_refreshes": col(dense, "mlp_coverage"),
            })
        s["layers"] = layers
    return s


def exposure_summary(e):
    if not e:
        return None
    layers = []
    for l in e["layers"]:
        heads = l["heads"]
        nq = len(heads[0]["tile_mass"])
        # head-mean tile mass: the share of a query block's attention that falls on each key block
        mass = [[round(mean([h["tile_mass"][q][k] for h in heads]), 4) for k in range(nq)] for q in range(nq)]
        layers.append({"layer": l["layer"], "token_sparsity": l["token_sparsity"],
                       "union_sparsity": l["union_sparsity"],
                       "union_sparsity_per_batch": l["union_sparsity_per_batch"],
                       "block_sparsity_exact": l["block_sparsity_exact"],
                       "block_sparsity_near_zero": l["block_sparsity_near_zero"],
                       "tile_density": l["tile_density"],
                       "tile_density_per_head": [h["tile_density"] for h in heads],
                       "tile_mass_head_mean": mass})
    return {k: e.get(k) for k in ("data", "batch_size", "seq_len", "longest_batch_seq_len", "config",
                                  "micro_batches", "real_tokens")} | {"layers": layers}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    w = a.work
    S = {}
    try:
        S["machine"] = open(os.path.join(w, "machine.txt"), encoding="utf-8").read().strip().splitlines()
    except OSError:
        S["machine"] = None
    phases = {}
    try:
        for line in open(os.path.join(w, "phases.tsv"), encoding="utf-8"):
            name, rc, sec = line.rstrip("\n").split("\t")
            phases[name] = {"exit": int(rc), "seconds": float(sec)}
    except OSError:
        pass
    S["phases"] = phases
    t = load(os.path.join(w, "train", "metrics.json"))
    if t:
        S["model_training"] = {k: t.get(k) for k in ("args", "versions", "device", "data", "model", "train", "final",
                                                    "timings", "saved", "sample_greedy")}
        S["model_training"]["sparsity_val"] = t.get("sparsity", {}).get("val")
        S["model_training"]["evals"] = t.get("evals")
    S["exposure"] = exposure_summary(load(os.path.join(w, "expose", "exposure.json")))
    S["predictors_held_out"] = load(os.path.join(w, "predictors", "predictor-report.json"))
    off = run_summary(os.path.join(w, "ft-off"))
    auto = run_summary(os.path.join(w, "ft-auto"))
    S["finetune_off"] = off
    S["finetune_auto"] = auto
    ev = {k: load(os.path.join(w, "evals", k + ".json")) for k in ("off-dense", "auto-dense", "auto-sparse")}
    S["eval_packed"] = ev
    if off and auto:
        g = lambda e: (e or {}).get("loss")  # noqa: E731
        S["comparison"] = {
            "valid_loss_off": off["valid_loss"], "valid_loss_auto_dense_eval": auto["valid_loss"],
            "valid_loss_auto_sparse_eval": auto["valid_loss_sparse"],
            "rel_valid_auto_dense_eval": rel(auto["valid_loss"], off["valid_loss"]),
            "rel_valid_auto_sparse_eval": rel(auto["valid_loss_sparse"], off["valid_loss"]),
            "packed_loss_off": g(ev["off-dense"]), "packed_loss_auto_dense_eval": g(ev["auto-dense"]),
            "packed_loss_auto_sparse_eval": g(ev["auto-sparse"]),
            "rel_packed_auto_dense_eval": rel(g(ev["auto-dense"]), g(ev["off-dense"])),
            "rel_packed_auto_sparse_eval": rel(g(ev["auto-sparse"]), g(ev["off-dense"])),
            "max_abs_rel_train_loss_per_step": max(abs(rel(b, a)) for a, b in zip(off["train_loss"],
                                                                                 auto["train_loss"])),
            "median_step_ms_off": off["median_step_ms_after_first"],
            "median_step_ms_auto_sparse_steps": auto.get("median_step_ms_sparse_steps"),
            "speedup_sparse_step_over_dense": (off["median_step_ms_after_first"] / auto["median_step_ms_sparse_steps"]
                                               if auto.get("median_step_ms_sparse_steps") else None),
            "finetune_wall_s_off": phases.get("finetune_off", {}).get("seconds"),
            "finetune_wall_s_auto": phases.get("finetune_auto", {}).get("seconds"),
        }
        rels = [S["comparison"][k] for k in ("rel_valid_auto_dense_eval", "rel_valid_auto_sparse_eval",
                                             "rel_packed_auto_dense_eval", "rel_packed_auto_sparse_eval")]
        S["comparison"]["within_1_percent"] = all(r is not None and abs(r) <= 0.01 for r in rels)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(S, f, indent=1)
    c = S.get("comparison")
    if c:
        print(json.dumps({k: v for k, v in c.items()}, indent=1))
    if S["exposure"]:
        print("layer  per-token  union  tile-density")
        for l in S["exposure"]["layers"]:
            print(f"{l['layer']:5d}  {l['token_sparsity']:9.3f}  {l['union_sparsity']:5.3f}  {l['tile_density']:12.3f}")
    if auto and auto.get("layers"):
        print("layer  attn-density(all)  mlp-density(all)  attn-dense@refresh  stale-recall(min-max)")
        for l in auto["layers"]:
            r = l["attn_recall_stale_at_refreshes"]
            print(f"{l['layer']:5d}  {l['attn_density_all_steps']:17.3f}  {l['mlp_density_all_steps']:16.3f}  "
                  f"{sum(bool(x) for x in l['attn_dense_at_refreshes'])}/{len(l['attn_dense_at_refreshes'])}"
                  f"  {min(r) if r else float('nan'):.3f}-{max(r) if r else float('nan'):.3f}")


if __name__ == "__main__":
    main()
