#!/usr/bin/env python3
"""Correctness and timing harness for cuda/src/main/cuda/attention.cu on a CUDA GPU.

Loads the prebuilt cubin (attention.sm_90a.cubin beside this script, or --cubin), launches the kernels through
CuPy on PyTorch tensors, and checks them against a float64 PyTorch reference of AttentionOps' semantics:
causal, key padding mask, optional 64×64 block layout, a query with no visible key gets out = 0 and lse = −inf.
Relative errors ‖x − ref‖/‖ref‖ for out, lse, dq, dk, dv; every output element poisoned with NaN before each
launch so an unwritten element fails; a full block layout must give the dense kernels' bits; two runs must give
the same bits. Then times forward and forward+backward against torch.nn.functional.scaled_dot_product_attention
(is_causal=True, flash backend) in bf16 and prints a table last; --out names the folder for the log and the
numbers (attention_bench.json).

Usage: python3 attention_check.py [--cubin attention.sm_90a.cubin] [--out DIR] [--skip-check] [--skip-bench]
The cubin is cuda/build-kernels.sh's output; build it with -DATTENTION_VARIANTS to time the dense variants too.
"""
import argparse
import json
import math
import os
import sys
import time

import warnings

import cupy
import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", category=DeprecationWarning)
TILE = 64
LOG2E = 1.4426950408889634
# The kernels CudaAttention launches for dense attention (None = the 64-row block-list kernels with a null list).
# The dense128 variants exist only in a cubin built with -DATTENTION_VARIANTS; the benchmark times them too.
VARIANTS = {"fwd": None, "dq": None, "dkdv": None}


class Attention:
    """The kernels of one cubin, launched on the current PyTorch stream."""

    def __init__(self, cubin):
        self.mod = cupy.RawModule(path=cubin)
        self.fns = {}

    def has(self, name):
        try:
            self.mod.get_function(name)
            return True
        except Exception:
            return False

    def fn(self, name, smem):
        f = self.fns.get(name)
        if f is None:
            f = self.mod.get_function(name)
            self.fns[name] = f
        if smem > 48 * 1024:
            try:
                f.max_dynamic_shared_size_bytes = smem
            except AttributeError:
                cupy.cuda.driver.funcSetAttribute(f.ptr, 8, smem)
        return f

    @staticmethod
    def p(t):
        return np.uint64(0 if t is None else t.data_ptr())

    def launch(self, name, grid, block, smem, args):
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)  # noqa
        with stream:
            self.fn(name, smem)(grid, block, args, shared_mem=smem)

    def forward(self, q, k, v, out, lse, mask, nh, scale, layout=None, variant=None):
        """variant (dense only): None = the 64-row list kernel, 'dense128' = 128-row CTAs of 8 warps."""
        B, T, C = q.shape
        hs = C // nh
        nb = (T + TILE - 1) // TILE
        if layout is None and variant == "dense128":
            smem = (2 * TILE + 4 * TILE) * (hs + 8) * 2
            self.launch(f"attention_forward_dense128_bf16_hs{hs}", ((T + 127) // 128, nh, B), (256, 1, 1), smem,
                        (self.p(q), self.p(k), self.p(v), self.p(out), self.p(lse), self.p(mask), np.int32(T),
                         np.int32(nh), np.float32(scale)))
            return
        rp, ci = (None, None) if layout is None else (layout[0], layout[1])
        smem = (TILE + 4 * TILE) * (hs + 8) * 2
        self.launch(f"attention_forward_bf16_hs{hs}", (nh, B, nb), (128, 1, 1), smem,
                    (self.p(q), self.p(k), self.p(v), self.p(out), self.p(lse), self.p(mask), self.p(rp),
                     self.p(ci), np.int32(T), np.int32(nh), np.float32(scale)))

    def backward(self, dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, layout=None, scratch=None,
                 dq_variant=None, dkdv_variant=None, parts="pkq"):
        """dq_variant, dkdv_variant (dense only): None or 'dense128' (both None: the one launch of
        attention_backward that holds both passes); parts: which of prep (p), dK/dV (k), dQ (q) to launch (for
        timing one kernel alone; with no variant, k or q launches the combined kernel once)."""
        B, T, C = q.shape
        hs = C // nh
        nb = (T + TILE - 1) // TILE
        tp = nb * TILE
        if scratch is None:
            scratch = torch.empty(2, B, nh, tp, dtype=torch.float32, device=q.device)
        dpad, l2pad = scratch[0], scratch[1]
        n = B * tp * nh
        if "p" in parts:
            self.launch(f"attention_backward_prep_bf16_hs{hs}", ((n + 255) // 256, 1, 1), (256, 1, 1), 0,
                        (self.p(do), self.p(out), self.p(lse), self.p(dpad), self.p(l2pad), np.int32(B),
                         np.int32(T), np.int32(nh)))
        rp, ci = (None, None) if layout is None else layout
        variants = layout is None and (dq_variant is not None or dkdv_variant is not None)
        if not variants:
            if "k" in parts or "q" in parts:
                smem = 6 * TILE * (hs + 8) * 2 + 4 * TILE * 4
                self.launch(f"attention_backward_bf16_hs{hs}", (nh, B, 2 * nb), (128, 1, 1), smem,
                            (self.p(q), self.p(k), self.p(v), self.p(do), self.p(mask), self.p(l2pad),
                             self.p(dpad), self.p(rp), self.p(ci), self.p(dq), self.p(dk), self.p(dv), np.int32(T),
                             np.int32(nh), np.float32(scale)))
            return
        if "k" in parts:
            smem = 8 * TILE * (hs + 8) * 2 + 4 * TILE * 4
            self.launch(f"attention_backward_dkdv_{dkdv_variant or 'dense128'}_bf16_hs{hs}",
                        ((T + 127) // 128, nh, B), (256, 1, 1), smem,
                        (self.p(q), self.p(k), self.p(v), self.p(do), self.p(mask), self.p(l2pad), self.p(dpad),
                         self.p(dk), self.p(dv), np.int32(T), np.int32(nh), np.float32(scale)))
        if "q" in parts:
            smem = (4 * TILE + 4 * TILE) * (hs + 8) * 2
            self.launch(f"attention_backward_dq_{dq_variant or 'dense128'}_bf16_hs{hs}", ((T + 127) // 128, nh, B),
                        (256, 1, 1), smem,
                        (self.p(q), self.p(k), self.p(v), self.p(do), self.p(mask), self.p(l2pad), self.p(dpad),
                         self.p(dq), np.int32(T), np.int32(nh), np.float32(scale)))


def random_layout(gen, nh, nb, density, device):
    """CSR block layout over NH·nB rows: each causal tile kept with probability density (rows may be empty)."""
    rows, cols = [0], []
    for _ in range(nh):
        for qb in range(nb):
            keep = (torch.rand(qb + 1, generator=gen) < density).nonzero().flatten().tolist()
            cols.extend(keep)
            rows.append(len(cols))
    if not cols:
        cols = [0]
    return (torch.tensor(rows, dtype=torch.int32, device=device), torch.tensor(cols, dtype=torch.int32, device=device))


def full_layout(nh, nb, device):
    rows, cols = [0], []
    for _ in range(nh):
        for qb in range(nb):
            cols.extend(range(qb + 1))
            rows.append(len(cols))
    return (torch.tensor(rows, dtype=torch.int32, device=device), torch.tensor(cols, dtype=torch.int32, device=device))


def reference(q, k, v, do, mask, nh, scale, layout=None):
    """float64 out, lse, dq, dk, dv of the bf16 inputs (upcast), AttentionOps semantics."""
    B, T, C = q.shape
    hs = C // nh
    f = lambda x: x.double().view(B, T, nh, hs).transpose(1, 2)  # (B, NH, T, HS)
    q64, k64, v64, do64 = f(q), f(k), f(v), f(do)
    i = torch.arange(T, device=q.device)
    vis = (i[None, :] <= i[:, None])[None, None] & (mask != 0)[:, None, None, :]  # (B, 1, T, T)
    if layout is not None:
        rp, ci = layout[0].cpu().tolist(), layout[1].cpu().tolist()
        nb = (T + TILE - 1) // TILE
        tiles = torch.zeros(nh, nb, nb, dtype=torch.bool)
        for h in range(nh):
            for qb in range(nb):
                for p in range(rp[h * nb + qb], rp[h * nb + qb + 1]):
                    tiles[h, qb, ci[p]] = True
        el = tiles.repeat_interleave(TILE, 1).repeat_interleave(TILE, 2)[:, :T, :T].to(q.device)
        vis = vis & el[None]
    s = torch.matmul(q64, k64.transpose(-1, -2)) * scale
    s = s.masked_fill(~vis, -math.inf)
    lse = torch.logsumexp(s, dim=-1)  # (B, NH, T), -inf where nothing visible
    p = torch.exp(s - lse[..., None].masked_fill(torch.isinf(lse[..., None]), 0.0))
    p = p.masked_fill(~vis, 0.0)
    o = torch.matmul(p, v64)
    dv = torch.matmul(p.transpose(-1, -2), do64)
    dp = torch.matmul(do64, v64.transpose(-1, -2))
    d = (do64 * o).sum(-1, keepdim=True)
    ds = p * (dp - d)
    dq = torch.matmul(ds, k64) * scale
    dk = torch.matmul(ds.transpose(-1, -2), q64) * scale
    g = lambda x: x.transpose(1, 2).reshape(B, T, C)
    return g(o), lse, g(dq), g(dk), g(dv)


def rel(x, ref):
    x, ref = x.double(), ref.double()
    den = ref.norm().item()
    return (x - ref).norm().item() / (den if den > 0 else 1.0)


def make_mask(gen, B, T, kind, device):
    m = torch.ones(B, T, dtype=torch.int32)
    if kind == "pad":
        for b in range(B):
            n = int(torch.randint(0, max(1, T // 3) + 1, (1,), generator=gen))
            if n:
                m[b, T - n:] = 0  # padding at the end: queries there still see the real keys
        if B > 1:
            m[B - 1, : max(1, T // 5)] = 0  # leading padding: first queries see no key at all
    if kind == "pad" and B > 2:
        m[1, :] = 0  # a fully padded row
    return m.to(device)


def run_case(att, gen, B, T, nh, hs, mask_kind, layout_kind, density, log):
    dev = "cuda"
    C = nh * hs
    scale = 1.0 / math.sqrt(hs)
    q = torch.randn(B, T, C, generator=gen).to(dev, torch.bfloat16)
    k = torch.randn(B, T, C, generator=gen).to(dev, torch.bfloat16)
    v = torch.randn(B, T, C, generator=gen).to(dev, torch.bfloat16)
    do = torch.randn(B, T, C, generator=gen).to(dev, torch.bfloat16)
    mask = make_mask(gen, B, T, mask_kind, dev)
    nb = (T + TILE - 1) // TILE
    layout = None
    if layout_kind == "random":
        layout = random_layout(gen, nh, nb, density, dev)
    elif layout_kind == "full":
        layout = full_layout(nh, nb, dev)

    def run(lay, fv=VARIANTS["fwd"], qv=VARIANTS["dq"], kv=VARIANTS["dkdv"]):
        out = torch.full((B, T, C), float("nan"), dtype=torch.bfloat16, device=dev)
        lse = torch.full((B, nh, T), float("nan"), dtype=torch.float32, device=dev)
        att.forward(q, k, v, out, lse, mask, nh, scale, lay, fv)
        dq, dk, dv = (torch.full((B, T, C), float("nan"), dtype=torch.bfloat16, device=dev) for _ in range(3))
        scratch = torch.full((2, B, nh, nb * TILE), float("nan"), dtype=torch.float32, device=dev)
        att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, lay, scratch, dq_variant=qv,
                     dkdv_variant=kv)
        torch.cuda.synchronize()
        return out, lse, dq, dk, dv

    res = run(layout)
    ref = reference(q, k, v, do, mask, nh, scale, layout)
    names = ["out", "lse", "dq", "dk", "dv"]
    errs = {}
    ok = True
    for name, x, r in zip(names, res, ref):
        if torch.isnan(x).any():
            ok = False
            errs[name] = float("nan")
            continue
        if name == "lse":
            inf_x, inf_r = torch.isinf(x), torch.isinf(r)
            if not torch.equal(inf_x, inf_r) or (x[inf_x] > 0).any():
                ok = False
                errs[name] = float("inf")
                continue
            fin = ~inf_r
            errs[name] = rel(x[fin], r[fin]) if fin.any() else 0.0
        else:
            errs[name] = rel(x, r)
        ok = ok and errs[name] < 2e-2
    again = run(layout)
    same = all(torch.equal(a, b) for a, b in zip(res, again))
    ok = ok and same
    extra = ""
    if layout_kind == "full":
        bit = True
        dense_kinds = [(None, None, None)]
        if att.has(f"attention_forward_dense128_bf16_hs{hs}"):
            dense_kinds.append(("dense128", "dense128", "dense128"))
        for fv, qv, kv in dense_kinds:
            dense = run(None, fv, qv, kv)
            bit = bit and all(torch.equal(a, b) for a, b in zip(res, dense))
        extra = f" full==dense({','.join(str(k[0] or 'list') for k in dense_kinds)}):{bit}"
        ok = ok and bit
    if layout_kind == "dense" and att.has(f"attention_forward_dense128_bf16_hs{hs}"):
        # the tuning variants must give the production kernels' bits
        same_v = True
        for fv, qv, kv in [("dense128", "dense128", "dense128")]:
            alt = run(None, fv, qv, kv)
            same_v = same_v and all(torch.equal(a, b) for a, b in zip(res, alt))
        extra += f" variants-identical:{same_v}"
        ok = ok and same_v
    line = (f"B={B} T={T} NH={nh} HS={hs} mask={mask_kind} layout={layout_kind}"
            + (f"({density})" if layout_kind == "random" else "")
            + " " + " ".join(f"{n}={errs[n]:.2e}" for n in names) + f" deterministic:{same}{extra} "
            + ("OK" if ok else "FAIL"))
    print(line)
    log.write(line + "\n")
    return ok


def median_ms(fn, reps, warm=5, batch=10):
    """Median over reps samples of the mean time of batch back-to-back calls (the host queues them ahead of the
    device, so host launch overhead stays out of the device time)."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(batch):
            fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / batch)
    times.sort()
    return times[len(times) // 2], times[0], times[-1]


def bench(att, B, nh, hs, T, reps, log):
    dev = "cuda"
    C = nh * hs
    scale = 1.0 / math.sqrt(hs)
    g = torch.Generator(device=dev)
    g.manual_seed(1234 + T + hs)
    mk = lambda: torch.randn(B, T, C, device=dev, generator=g, dtype=torch.float32).to(torch.bfloat16)
    q, k, v, do = mk(), mk(), mk(), mk()
    mask = torch.ones(B, T, dtype=torch.int32, device=dev)
    out = torch.empty_like(q)
    lse = torch.empty(B, nh, T, dtype=torch.float32, device=dev)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(q), torch.empty_like(q)
    nb = (T + TILE - 1) // TILE
    scratch = torch.empty(2, B, nh, nb * TILE, dtype=torch.float32, device=dev)

    r = {}
    # each kernel family alone, every variant present in the cubin
    fwd_v = {}
    has_v = att.has(f"attention_forward_dense128_bf16_hs{hs}")
    for fv in [None, "dense128"] if has_v else [None]:
        fwd_v[fv] = median_ms(lambda: att.forward(q, k, v, out, lse, mask, nh, scale, None, fv), reps)[0]
    att.forward(q, k, v, out, lse, mask, nh, scale, None, VARIANTS["fwd"])
    r["prep"] = median_ms(lambda: att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, None, scratch,
                                                parts="p"), reps)[0]
    # None: the combined dK/dV + dQ launch (timed once, under both names); dense128: each pass alone
    both = median_ms(lambda: att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, None, scratch,
                                          parts="kq"), reps)[0]
    kv_v, dq_v = {None: both}, {None: both}
    if has_v:
        kv_v["dense128"] = median_ms(lambda: att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, None,
                                                          scratch, dkdv_variant="dense128", parts="k"), reps)[0]
        dq_v["dense128"] = median_ms(lambda: att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, None,
                                                          scratch, dq_variant="dense128", parts="q"), reps)[0]
    best = lambda d: min(d, key=d.get)
    bf, bk, bq = best(fwd_v), best(kv_v), best(dq_v)
    r["fwd_variants_ms"] = {str(a): b for a, b in fwd_v.items()}
    r["dkdv_variants_ms"] = {str(a): b for a, b in kv_v.items()}
    r["dq_variants_ms"] = {str(a): b for a, b in dq_v.items()}
    r["best"] = [str(bf), str(bk), str(bq)]
    # the table times the kernels CudaAttention launches (VARIANTS), whatever the fastest variant was
    fwd = lambda: att.forward(q, k, v, out, lse, mask, nh, scale, None, VARIANTS["fwd"])
    bwd = lambda: att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, scale, None, scratch,
                               dq_variant=VARIANTS["dq"], dkdv_variant=VARIANTS["dkdv"])

    def fwdbwd():
        fwd()
        bwd()

    # sdpa on the same (B, T, NH, HS) memory, seen as (B, NH, T, HS).
    t4 = lambda x: x.view(B, T, nh, hs).transpose(1, 2)
    qs, ks, vs = (t4(x).detach().requires_grad_(True) for x in (q, k, v))
    dos = t4(do)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def s_fwd():
        with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)

    def s_fwdbwd():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)
        torch.autograd.grad(o, (qs, ks, vs), dos)

    r["ours_fwd"] = median_ms(fwd, reps)[0]
    r["ours_fwdbwd"] = median_ms(fwdbwd, reps)[0]
    r["ours_bwd"] = median_ms(bwd, reps)[0]
    r["sdpa_fwd"] = median_ms(s_fwd, reps)[0]
    r["sdpa_fwdbwd"] = median_ms(s_fwdbwd, reps)[0]
    # second timing of our fwd+bwd: the spread between the two is the noise floor
    r["ours_fwdbwd_again"] = median_ms(fwdbwd, reps)[0]
    flops_fwd = 4.0 * B * nh * hs * T * T / 2  # causal: half the T×T tiles, two products
    r["tflops_fwd"] = flops_fwd / (r["ours_fwd"] * 1e-3) / 1e12
    r["tflops_fwdbwd"] = 3.5 * flops_fwd / (r["ours_fwdbwd"] * 1e-3) / 1e12  # FA convention: bwd = 2.5× fwd
    r.update(B=B, NH=nh, HS=hs, T=T)
    log.write(json.dumps(r) + "\n")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cubin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "attention.sm_90a.cubin"))
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default=".", help="folder for attention_check.log and attention_bench.json")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="launch forward and backward once at B=4 NH=32 HS=64 T=1024 (for a profiler) and exit")
    a = ap.parse_args()
    outdir = a.out
    log = open(os.path.join(outdir, "attention_check.log"), "w")
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__} cupy {cupy.__version__} seed {a.seed}")
    att = Attention(a.cubin)
    if a.profile:
        B, nh, hs, T = 4, 32, 64, 1024
        mk = lambda: torch.randn(B, T, nh * hs, device="cuda").to(torch.bfloat16)
        q, k, v, do = mk(), mk(), mk(), mk()
        mask = torch.ones(B, T, dtype=torch.int32, device="cuda")
        out, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
        lse = torch.empty(B, nh, T, device="cuda")
        for _ in range(2):
            att.forward(q, k, v, out, lse, mask, nh, 0.125)
            att.backward(dq, dk, dv, do, out, lse, q, k, v, mask, nh, 0.125)
        torch.cuda.synchronize()
        return
    all_ok = True
    if not a.skip_check:
        gen = torch.Generator()
        gen.manual_seed(a.seed)
        cases = [
            (2, 1, 3, 64, "none", "dense", 0),
            (3, 63, 2, 64, "pad", "dense", 0),
            (2, 65, 2, 80, "pad", "dense", 0),
            (3, 200, 3, 128, "pad", "dense", 0),
            (2, 1000, 2, 64, "pad", "dense", 0),
            (2, 1000, 2, 80, "none", "dense", 0),
            (2, 333, 2, 32, "pad", "dense", 0),
            (3, 257, 2, 96, "pad", "dense", 0),
            (1, 130, 2, 128, "none", "dense", 0),
            (3, 300, 3, 64, "pad", "random", 0.5),
            (2, 1000, 2, 80, "pad", "random", 0.3),
            (2, 130, 2, 128, "none", "random", 0.6),
            (1, 77, 2, 32, "pad", "random", 0.5),
            (3, 200, 2, 64, "pad", "full", 1.0),
            (1, 1000, 2, 80, "pad", "full", 1.0),
        ]
        for c in cases:
            all_ok &= run_case(att, gen, *c, log)
        print("CHECK", "PASS" if all_ok else "FAIL")
    rows = []
    ceilings = {}
    if not a.skip_bench:
        # the two ceilings of METHOD.md, on random data: a bf16 matrix product and a device-to-device copy
        x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        y = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        ms = median_ms(lambda: torch.mm(x, y), 10, batch=5)[0]
        ceilings["bf16_matmul_tflops"] = 2 * 8192 ** 3 / (ms * 1e-3) / 1e12
        src = torch.randn(256 * 1024 * 1024, device="cuda")  # 1 GiB
        dst = torch.empty_like(src)
        ms = median_ms(lambda: dst.copy_(src), 10, batch=3)[0]
        ceilings["copy_gbps_read_plus_write"] = 2 * src.numel() * 4 / (ms * 1e-3) / 1e9
        del x, y, src, dst
        print(f"ceilings: {ceilings}")
        for (B, nh, hs, T) in [(4, 32, 64, 512), (4, 32, 64, 1024), (4, 32, 64, 2048), (4, 32, 80, 1024)]:
            rows.append(bench(att, B, nh, hs, T, a.reps, log))
        res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "seed": a.seed,
               "check": "PASS" if all_ok else "FAIL", "ceilings": ceilings, "rows": rows}
        with open(os.path.join(outdir, "attention_bench.json"), "w") as f:
            json.dump(res, f, indent=1)
        for r in rows:
            print(f"HS={r['HS']} T={r['T']}: fwd {r['fwd_variants_ms']} prep {r['prep']:.3f} dkdv "
                  f"{r['dkdv_variants_ms']} dq {r['dq_variants_ms']} best {r['best']}")
        print(f"{'B':>2} {'NH':>3} {'HS':>3} {'T':>5} | {'fwd ms':>7} {'sdpa':>7} {'x':>5} | {'f+b ms':>7} {'sdpa':>7} "
              f"{'x':>5} | {'again':>7} {'bwd':>7} | {'TF fwd':>6} {'TF f+b':>6}")
        for r in rows:
            print(f"{r['B']:>2} {r['NH']:>3} {r['HS']:>3} {r['T']:>5} | {r['ours_fwd']:7.3f} {r['sdpa_fwd']:7.3f} "
                  f"{r['ours_fwd'] / r['sdpa_fwd']:5.2f} | {r['ours_fwdbwd']:7.3f} {r['sdpa_fwdbwd']:7.3f} "
                  f"{r['ours_fwdbwd'] / r['sdpa_fwdbwd']:5.2f} | {r['ours_fwdbwd_again']:7.3f} {r['ours_bwd']:7.3f} | "
                  f"{r['tflops_fwd']:6.1f} {r['tflops_fwdbwd']:6.1f}")
    log.close()
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
