#!/usr/bin/env python3
"""Hugging Face baseline of the LoRA training step: ms per step and peak GPU memory.

Builds ``OPTForCausalLM`` from an OPT ``config.json`` (random weights, no download), in bf16 on the GPU, puts
PEFT LoRA (r, alpha, dropout 0) on the target modules, and times one full optimizer step:

    loss = model(input_ids=ids, attention_mask=ones, labels=ids).loss   # forward + shifted cross-entropy
    loss.backward()                                                      # input grads + LoRA grads only
    clip_grad_norm_(lora_params, max_grad_norm)                          # as Long Exposure's Trainer (default 1)
    opt.step(); opt.zero_grad(set_to_none=True)                          # torch.optim.AdamW over LoRA A, B

ids: (B, T) random token ids in [3, V), the same batch every step (the compute does not depend on the values).
Warm-up steps first, then the median of the timed steps, each timed with CUDA events. Peak memory is
``torch.cuda.max_memory_allocated`` after a reset before the warm-up: weights, LoRA parameters and AdamW state,
activations saved for backward, and the transient peaks inside the step. The same script measures the bf16
matrix-product rate of the GPU (median TFLOP/s of an 8192^3 bf16 ``torch.matmul``), the ceiling the step's
rate is compared with.

Usage (on the GPU machine; no network needed):
    python3 bench/hf/hf_peft_step.py --config bench/configs/opt-1.3b/config.json --seq 512,1024,2048 \
        --attn sdpa [--attn eager] [--config ... --seq ...] --out results.json

Give one --seq for all configs, or one per --config (paired in order). One JSON object per measurement is
printed as it completes; all of them, with the matmul peak and the software versions, go to --out.
"""

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

import torch


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", required=True, help="OPT config.json (repeatable)")
    p.add_argument("--seq", action="append", default=None,
                   help="comma-separated sequence lengths: once for all configs, or once per --config (default 1024)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--attn", action="append", default=None, help="sdpa and/or eager (default sdpa)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="global-norm clipping; <= 0: none")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=9)
    p.add_argument("--keep-dropout", action="store_true",
                   help="keep the config's hidden dropout (default: 0, as Long Exposure's OPT has none)")
    p.add_argument("--no-matmul-peak", action="store_true", help="skip the bf16 matmul ceiling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="JSON file with every result")
    return p.parse_args(argv)


def pair_configs_with_seqs(configs, seqs):
    """Pairs each --config with its --seq list: one --seq for all, or one per --config in order."""
    seqs = seqs or ["1024"]
    if len(seqs) == 1:
        seqs = seqs * len(configs)
    if len(seqs) != len(configs):
        raise SystemExit(f"give one --seq for all configs or one per --config; got {len(seqs)} for "
                         f"{len(configs)} configs")
    return [(c, [int(t) for t in s.split(",")]) for c, s in zip(configs, seqs)]


def cuda_time_ms(fn, warmup, iters):
    """Median and all times (ms) of fn(), each call bracketed by CUDA events on the current stream."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), times


def matmul_peak(n=8192, warmup=5, iters=20):
    """bf16 C = A·B, (n, n)·(n, n), fp32 accumulation (torch default): median TFLOP/s over iters.

    Three input pairs are rotated so that no run finds its operands in L2 (each operand is 128 MiB at n=8192).
    """
    g = torch.Generator(device="cuda").manual_seed(1)
    pairs = [(torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g),
              torch.randn(n, n, device="cuda", dtype=torch.bfloat16, generator=g)) for _ in range(3)]
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    state = {"i": 0}

    def run():
        a, b = pairs[state["i"] % 3]
        state["i"] += 1
        torch.matmul(a, b, out=c)

    med, times = cuda_time_ms(run, warmup, iters)
    flops = 2.0 * n * n * n
    ok = bool(torch.isfinite(c).all().item())
    del pairs, c
    torch.cuda.empty_cache()
    return {"n": n, "dtype": "bf16", "ms_median": med, "tflops_median": flops / (med * 1e-3) / 1e12,
            "tflops_best": flops / (min(times) * 1e-3) / 1e12, "output_finite": ok}


def build_model(cfg_path, attn, keep_dropout):
    from transformers import OPTConfig, OPTForCausalLM

    with open(cfg_path) as f:
        raw = json.load(f)
    for k in ("_name_or_path", "torch_dtype", "dtype", "transformers_version", "architectures"):
        raw.pop(k, None)
    if not keep_dropout:
        raw["dropout"] = 0.0
    raw["use_cache"] = False
    cfg = OPTConfig(**raw)
    cfg._attn_implementation = attn
    # Build directly on the GPU in bf16: random initialisation there takes a second, not a minute.
    with torch.device("cuda"):
        try:
            model = OPTForCausalLM._from_config(cfg, attn_implementation=attn, dtype=torch.bfloat16)
        except TypeError:
            model = OPTForCausalLM._from_config(cfg, attn_implementation=attn, torch_dtype=torch.bfloat16)
    model = model.to(device="cuda", dtype=torch.bfloat16)
    return model, raw


def measure(cfg_path, seqs, attn, a):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(a.seed)
    model, raw = build_model(cfg_path, attn, a.keep_dropout)
    n_params = sum(p.numel() for p in model.parameters())
    lcfg = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=0.0,
                      target_modules=a.targets.split(","), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    lora_dtypes = sorted({str(p.dtype) for p in trainable})
    opt = torch.optim.AdamW(trainable, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    try:
        actual_attn = model.base_model.model.config._attn_implementation
    except AttributeError:
        actual_attn = "unknown"
    name = os.path.basename(os.path.dirname(os.path.abspath(cfg_path)))
    results = []
    for t in seqs:
        g = torch.Generator(device="cuda").manual_seed(a.seed + t)
        ids = torch.randint(3, raw["vocab_size"], (a.batch, t), device="cuda", generator=g)
        mask = torch.ones_like(ids)
        losses = []

        def step():
            out = model(input_ids=ids, attention_mask=mask, labels=ids)
            out.loss.backward()
            if a.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, a.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(out.loss.detach())

        row = {"model": name, "config": cfg_path, "attn": attn, "attn_effective": actual_attn,
               "batch": a.batch, "seq": t, "tokens": a.batch * t, "lora_r": a.rank, "lora_alpha": a.alpha,
               "targets": a.targets, "dropout": raw["dropout"], "params": n_params,
               "trainable_params": n_trainable, "trainable_dtypes": lora_dtypes,
               "max_grad_norm": a.max_grad_norm, "warmup": a.warmup, "iters": a.iters}
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            med, times = cuda_time_ms(step, a.warmup, a.iters)
            loss_vals = [float(x) for x in losses]
            row.update({
                "ms_median": med, "ms_all": times, "ms_min": min(times),
                "tokens_per_s": a.batch * t / (med * 1e-3),
                "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
                "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
                "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
                "loss_first": loss_vals[0], "loss_last": loss_vals[-1],
                "loss_finite": all(math.isfinite(x) for x in loss_vals),
            })
        except torch.cuda.OutOfMemoryError as e:
            row.update({"error": "out of memory: " + str(e).splitlines()[0]})
        except Exception as e:  # record and go on with the next measurement
            traceback.print_exc()
            row.update({"error": f"{type(e).__name__}: {e}"})
        finally:
            losses.clear()
            opt.zero_grad(set_to_none=True)
        print(json.dumps(row), flush=True)
        results.append(row)
    del opt, model, trainable
    gc.collect()
    torch.cuda.empty_cache()
    return results


def main(argv):
    a = parse_args(argv)
    pairs = pair_configs_with_seqs(a.config, a.seq)
    attns = a.attn or ["sdpa"]
    import peft
    import transformers

    dev = torch.cuda.get_device_properties(0)
    out = {
        "benchmark": "lora-step-hf",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"gpu": dev.name, "gpu_memory_gib": dev.total_memory / 2**30,
                    "sm": f"{dev.major}{dev.minor}", "sms": dev.multi_processor_count,
                    "host": platform.node(), "cpus": os.cpu_count()},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "step": "forward + cross-entropy + backward + clip_grad_norm_ + AdamW.step + zero_grad; bf16 weights, "
                "LoRA params as peft keeps them (float32)",
        "results": [],
    }
    if not a.no_matmul_peak:
        out["matmul_peak"] = matmul_peak()
        print(json.dumps({"matmul_peak": out["matmul_peak"]}), flush=True)
    for cfg_path, seqs in pairs:
        for attn in attns:
            try:
                out["results"].extend(measure(cfg_path, seqs, attn, a))
            except Exception as e:  # a model that cannot be built: record it, go on
                traceback.print_exc()
                out["results"].append({"config": cfg_path, "attn": attn, "seq": seqs[0],
                                       "model": os.path.basename(os.path.dirname(os.path.abspath(cfg_path))),
                                       "error": f"{type(e).__name__}: {e}"})
                gc.collect()
                torch.cuda.empty_cache()
            with open(a.out, "w") as f:
                json.dump(out, f, indent=2)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"{'model':10} {'attn':6} {'seq':>5} {'ms/step':>9} {'tok/s':>9} {'peak GiB':>9}")
    for r in out["results"]:
        if "error" in r:
            print(f"{r['model']:10} {r['attn']:6} {r['seq']:5} {r['error'][:40]}")
        else:
            print(f"{r['model']:10} {r['attn']:6} {r['seq']:5} {r['ms_median']:9.1f} {r['tokens_per_s']:9.0f} "
                  f"{r['peak_allocated_gib']:9.2f}")
    if "matmul_peak" in out:
        print(f"bf16 matmul 8192^3: {out['matmul_peak']['tflops_median']:.0f} TFLOP/s (median)")


if __name__ == "__main__":
    main(sys.argv[1:])
