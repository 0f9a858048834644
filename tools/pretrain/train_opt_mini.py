#!/usr/bin/env python3
"""Train a small ReLU OPT language model from scratch and measure its fc1 ReLU sparsity.

Architecture (all command-line arguments; the defaults are the bundled models/opt-mini-256):
OPTForCausalLM, vocab 50272 (OPT/fairseq ids), --hidden 256, --layers 4, --heads 4, --ffn 1024,
--max-pos 1024, pre-LN (do_layer_norm_before=True), word_embed_proj_dim = hidden (no project_in/out),
ReLU, dropout 0.0, biases on, tied input/output embeddings, pad 1 / bos 2 / eos 2.

Data: --corpus holds gutenberg-*.txt (public-domain Project Gutenberg books) and index.tsv, whose rows give
each book's file, byte range and split.  Books with split=train are trained on; the split=val book is never
trained on and is used for held-out loss, checkpoint selection and the sparsity measurements.
Tokenizer: OPT byte-level BPE (--tok holds vocab.json + merges.txt) via tokenizers.ByteLevelBPETokenizer.
For parallel tokenization each book is cut into ~256 K-character chunks, only right after a '\\n' that follows a
non-space and precedes a non-space or '\\n' + non-space; the byte-level pre-tokenizer ends a pre-token there anyway,
so the ids equal those of the whole book (checked on the val book at run time; on a mismatch every book is
re-encoded whole).
Every row is [</s>(id 2)] + (seq-1) tokens of the concatenated token stream (books separated by id 2),
matching OPT's convention of prepending </s> as BOS.

Optimisation: AdamW (betas 0.9/0.95, wd 0.1 on matrices and embeddings, none on biases/LayerNorm), batch
64 x 512, peak lr 1e-3, 200-step linear warmup, cosine decay to --min-lr-ratio (0.05) of the peak lr over a
wall-clock budget (--train-seconds, 120 s), bf16 autocast, fp32 master weights, grad-norm clip 1.0.  The
corpus (~11M tokens) is small, so the val loss stops improving after ~8 epochs: a short budget whose cosine
ends there beats a longer one.  Every --eval-every steps the val loss is measured on the first --eval-rows
val rows and the weights with the best val loss seen are the ones saved (float16, safetensors).  Optional
val-plateau rule (off by default, enabled by a smaller --min-steps): once past --min-steps, if the val loss
has not improved by more than --plateau-delta for --patience evaluations, the run switches to a linear
anneal of the current lr to 0 over max(300, 25% of the steps so far) steps and then stops.  --deadline
(seconds since script start) stops training in any case.

After saving, the float16 file is reloaded and evaluated in fp32 on all val rows, and the fc1 ReLU outputs
(fc2 inputs) are measured per layer on the val book: per-token zero fraction, and the fraction of neurons
that are zero for every token of a 4 x seq batch (union sparsity), also for the untrained initialisation.

Usage (paths are examples):
  python train_opt_mini.py --corpus corpus/ --tok tokenizers/opt/ --out /tmp/opt-mini-256
Outputs in --out: model/ (config.json, generation_config.json, model.safetensors) and metrics.json
(arguments, data sizes, loss curve, evaluations, final losses, sparsity tables, timings).
"""
import argparse, hashlib, json, math, os, sys, time

T0 = time.time()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import torch
import torch.nn.functional as F
from tokenizers import ByteLevelBPETokenizer
import transformers
from transformers import OPTConfig, OPTForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--corpus", required=True, help="dir with gutenberg-*.txt and index.tsv")
ap.add_argument("--tok", required=True, help="dir with OPT vocab.json and merges.txt")
ap.add_argument("--out", required=True)
ap.add_argument("--extra-eval", action="append", default=[],
                help="NAME=FILE: extra held-out text file(s) to report loss/sparsity on (books split on 3 blank lines)")
# architecture
ap.add_argument("--vocab-size", type=int, default=50272)
ap.add_argument("--hidden", type=int, default=256)
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--ffn", type=int, default=1024)
ap.add_argument("--max-pos", type=int, default=1024)
ap.add_argument("--word-embed-proj-dim", type=int, default=None, help="default: = --hidden")
# schedule and optimiser
ap.add_argument("--train-seconds", type=float, default=120.0, help="wall-clock budget of the cosine schedule")
ap.add_argument("--deadline", type=float, default=300.0, help="hard stop for training, seconds since script start")
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--seq", type=int, default=512)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--min-lr-ratio", type=float, default=0.05)
ap.add_argument("--warmup", type=int, default=200)
ap.add_argument("--wd", type=float, default=0.1)
ap.add_argument("--eval-every", type=int, default=100)
ap.add_argument("--eval-rows", type=int, default=256)
ap.add_argument("--patience", type=int, default=4)
ap.add_argument("--plateau-delta", type=float, default=0.005)
ap.add_argument("--min-steps", type=int, default=1000000,
                help="the val-plateau rule applies only after this many steps; the default leaves it off")
ap.add_argument("--seed", type=int, default=1234)
ap.add_argument("--chunk-chars", type=int, default=1 << 18, help="tokenization chunk size (characters)")
ap.add_argument("--sparsity-batches", type=int, default=16, help="number of 4 x seq batches for sparsity stats")
ap.add_argument("--device", default="cuda")
ap.add_argument("--tiny", action="store_true", help="smoke test: tiny model, few steps (not the recipe)")
args = ap.parse_args()

dev = torch.device(args.device)
use_cuda = dev.type == "cuda"
torch.manual_seed(args.seed)
if use_cuda:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
os.makedirs(args.out, exist_ok=True)
M = {"argv": sys.argv, "args": vars(args), "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
     "device": torch.cuda.get_device_name(0) if use_cuda else "cpu", "timings": {}}


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, flush=True)


# ----------------------------------------------------------------------------------------------- data
def read_index(corpus):
    rows = []
    with open(os.path.join(corpus, "index.tsv"), encoding="utf-8") as f:
        hdr = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                rows.append(dict(zip(hdr, line.rstrip("\n").split("\t"))))
    return rows


def cut(text, target):
    """Cut text into pieces of about target characters, right after a '\\n' that follows a non-space and is
    followed by a non-space or by '\\n' + non-space (the GPT-2 pre-tokenizer ends a pre-token there anyway)."""
    out, start, n = [], 0, len(text)

    def ok(q):
        return 0 < q < n - 2 and not text[q - 1].isspace() and (
            not text[q + 1].isspace() or (text[q + 1] == "\n" and not text[q + 2].isspace()))

    while start < n:
        p = text.find("\n", start + target)
        while p != -1 and not ok(p):
            p = text.find("\n", p + 1)
        if p == -1:
            out.append(text[start:])
            break
        out.append(text[start:p + 1])
        start = p + 1
    return out


def encode_chunked(tok, texts, target):
    pieces, owner = [], []
    for i, t in enumerate(texts):
        for c in cut(t, target):
            pieces.append(c)
            owner.append(i)
    ids = [[] for _ in texts]
    for i, e in zip(owner, tok.encode_batch(pieces)):
        ids[i].extend(e.ids)
    return ids, len(pieces)


index = read_index(args.corpus)
cache = {}
books = []
for r in index:
    fn = r["file"]
    if fn not in cache:
        cache[fn] = open(os.path.join(args.corpus, fn), "rb").read()
    books.append((r["split"], int(r["pg_id"]), cache[fn][int(r["byte_start"]):int(r["byte_end"])].decode("utf-8")))
extra = {}
for spec in args.extra_eval:
    name, path = spec.split("=", 1)
    extra[name] = [b for b in open(path, encoding="utf-8").read().split("\n\n\n\n") if b.strip()]
if args.tiny:
    books = [(s, p, t[:20000]) for s, p, t in books[:3] + [b for b in books if b[0] == "val"][:1]]
    extra = {k: [t[:20000] for t in v[:2]] for k, v in extra.items()}

tok = ByteLevelBPETokenizer(os.path.join(args.tok, "vocab.json"), os.path.join(args.tok, "merges.txt"))
t = time.time()
book_ids, n_pieces = encode_chunked(tok, [b[2] for b in books], args.chunk_chars)
M["timings"]["tokenize_s"] = round(time.time() - t, 2)
# chunking check: the val book encoded whole must give the same ids as its chunks
val_i = [i for i, b in enumerate(books) if b[0] == "val"]
whole = [e.ids for e in tok.encode_batch([books[i][2] for i in val_i])]
chunk_ok = all(w == book_ids[i] for w, i in zip(whole, val_i))
if not chunk_ok:
    log("chunked tokenization differs from whole-book tokenization: re-encoding every book whole")
    book_ids = [e.ids for e in tok.encode_batch([b[2] for b in books])]
extra_ids = {k: [e.ids for e in tok.encode_batch(v)] for k, v in extra.items()}
M["timings"]["tokenize_total_s"] = round(time.time() - t, 2)
M["tokenization"] = {"pieces": n_pieces, "chunk_chars": args.chunk_chars, "val_chunked_equals_whole": chunk_ok}
BOS = 2


def make_rows(docs, seq):
    stream = []
    for ids in docs:
        stream.extend(ids)
        stream.append(BOS)  # </s> separates documents
    body = torch.tensor(stream, dtype=torch.long)
    n = len(body) // (seq - 1)
    body = body[: n * (seq - 1)].view(n, seq - 1)
    return torch.cat([torch.full((n, 1), BOS, dtype=torch.long), body], 1)


train_docs = [ids for (s, p, _), ids in zip(books, book_ids) if s == "train"]
val_docs = [ids for (s, p, _), ids in zip(books, book_ids) if s == "val"]
train_rows = make_rows(train_docs, args.seq).to(dev)
val_rows = make_rows(val_docs, args.seq).to(dev)
extra_rows = {k: make_rows(v, args.seq).to(dev) for k, v in extra_ids.items()}
g = torch.Generator(device="cpu")
g.manual_seed(args.seed)
M["data"] = {"train_books": len(train_docs), "train_tokens": sum(len(d) for d in train_docs),
             "train_rows": int(train_rows.shape[0]), "val_pg": [p for s, p, _ in books if s == "val"],
             "val_tokens": sum(len(d) for d in val_docs), "val_rows": int(val_rows.shape[0]),
             "extra": {k: {"books": len(v), "tokens": sum(len(d) for d in v), "rows": int(extra_rows[k].shape[0])}
                       for k, v in extra_ids.items()}}
log("data", json.dumps(M["data"]), json.dumps(M["tokenization"]), json.dumps(M["timings"]))

# ----------------------------------------------------------------------------------------------- model
cfg_kw = dict(vocab_size=args.vocab_size, hidden_size=args.hidden, num_hidden_layers=args.layers,
              num_attention_heads=args.heads, ffn_dim=args.ffn, max_position_embeddings=args.max_pos,
              do_layer_norm_before=True, word_embed_proj_dim=args.word_embed_proj_dim or args.hidden,
              activation_function="relu", dropout=0.0, attention_dropout=0.0, layerdrop=0.0, enable_bias=True,
              layer_norm_elementwise_affine=True, init_std=0.02, pad_token_id=1, bos_token_id=2, eos_token_id=2,
              tie_word_embeddings=True, use_cache=True)
if args.tiny:
    cfg_kw.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256, word_embed_proj_dim=64)
cfg = OPTConfig(**cfg_kw)
M["config"] = cfg_kw


def build_model(seed):
    torch.manual_seed(seed)
    try:
        m = OPTForCausalLM._from_config(cfg, attn_implementation="sdpa" if use_cuda else "eager")
    except Exception as e:  # noqa: BLE001
        log("from_config(sdpa) failed, falling back:", repr(e))
        m = OPTForCausalLM(cfg)
    return m.to(dev)


model = build_model(args.seed)
emb = model.get_input_embeddings().weight
tied = model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
n_params = sum(p.numel() for p in model.parameters())
M["model"] = {"params": n_params, "tied_embeddings": bool(tied),
              "attn_implementation": getattr(model.config, "_attn_implementation", None)}
log("model", json.dumps(M["model"]))

decay, no_decay = [], []
for n, p in model.named_parameters():
    (decay if p.dim() >= 2 else no_decay).append(p)
groups = [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
try:
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=use_cuda)
except TypeError:
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=use_cuda)


@torch.no_grad()
def evaluate(m, rows, bs=32, use_amp=True, max_rows=None):
    was = m.training
    m.eval()
    rows = rows if max_rows is None else rows[:max_rows]
    tot, n = 0.0, 0
    for i in range(0, rows.shape[0], bs):
        x = rows[i:i + bs]
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp and use_cuda):
            logits = m(input_ids=x, use_cache=False).logits
        V = logits.shape[-1]
        tot += F.cross_entropy(logits[:, :-1].float().reshape(-1, V), x[:, 1:].reshape(-1), reduction="sum").item()
        n += x[:, 1:].numel()
    m.train(was)
    return tot / max(n, 1)


# ----------------------------------------------------------------------------------------------- train
N, B = train_rows.shape[0], args.batch
perm, pos, epoch = torch.randperm(N, generator=g).to(dev), 0, 0
t_train0 = time.time()
budget = min(args.train_seconds, args.deadline - (t_train0 - T0))
step, phase, cool = 0, "main", None
best_val, best_step, best_state = float("inf"), 0, None
curve, evals, val_hist = [], [], []
stop_reason = "budget"
model.train()
log(f"training: {N} rows of {args.seq}, batch {B}, budget {budget:.0f}s")
while True:
    now = time.time()
    el = now - t_train0
    if now - T0 >= args.deadline:
        stop_reason = "deadline"
        break
    if phase == "main":
        if el >= budget:
            stop_reason = "budget"
            break
        p = min(1.0, el / budget)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (
            args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))
    else:
        if step >= cool["start"] + cool["len"]:
            stop_reason = "anneal_done"
            break
        lr = cool["lr0"] * max(0.0, 1.0 - (step - cool["start"]) / cool["len"])
    for grp in opt.param_groups:
        grp["lr"] = lr
    if pos + B > N:
        perm, pos, epoch = torch.randperm(N, generator=g).to(dev), 0, epoch + 1
    x = train_rows[perm[pos:pos + B]]
    pos += B
    with torch.autocast(**amp):
        loss = model(input_ids=x, labels=x, use_cache=False).loss
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    step += 1
    if step % 10 == 0 or step == 1:
        lv = loss.item()
        curve.append([step, round(time.time() - t_train0, 2), round(lv, 4), float(f"{lr:.3e}"), round(gn.item(), 3)])
        if not math.isfinite(lv):
            stop_reason = "nonfinite_loss"
            break
    if step % args.eval_every == 0:
        v = evaluate(model, val_rows, max_rows=args.eval_rows)
        val_hist.append(v)
        improved = v < best_val - 1e-4
        if improved:
            best_val, best_step = v, step
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        evals.append({"step": step, "time_s": round(time.time() - t_train0, 1), "epoch": round(step * B / N, 3),
                      "train_loss": curve[-1][2] if curve else None, "val_loss": round(v, 4), "lr": float(f"{lr:.3e}"),
                      "phase": phase, "best": improved})
        log(f"step {step} ep {step * B / N:.2f} lr {lr:.2e} train {curve[-1][2]:.4f} val {v:.4f}"
            f"{' *' if improved else ''} {phase}")
        if phase == "main" and step >= args.min_steps and len(val_hist) > args.patience:
            before = min(val_hist[:-args.patience])
            recent = min(val_hist[-args.patience:])
            if recent > before - args.plateau_delta:
                cool = {"start": step, "len": max(300, int(0.25 * step)), "lr0": lr}
                phase = "anneal"
                log(f"val plateau at step {step}: annealing lr {lr:.2e} -> 0 over {cool['len']} steps")
train_time = time.time() - t_train0
M["train"] = {"steps": step, "stop_reason": stop_reason, "train_seconds": round(train_time, 1),
              "epochs": round(step * B / N, 3), "tokens_seen": step * B * args.seq,
              "tokens_per_s": round(step * B * args.seq / max(train_time, 1e-9)), "anneal": cool,
              "best_step": best_step, "best_val_loss_bf16": round(best_val, 4) if math.isfinite(best_val) else None,
              "last_step_val_loss_bf16": round(val_hist[-1], 4) if val_hist else None,
              "final_train_loss_logged": curve[-1][2] if curve else None}
M["loss_curve_columns"] = ["step", "time_s", "train_loss", "lr", "grad_norm"]
M["loss_curve"] = curve
M["evals"] = evals
log("train done", json.dumps(M["train"]))
if best_state is not None:
    model.load_state_dict(best_state)
# training loss of the selected weights, measured on 256 training rows (no grad)
M["train"]["selected_train_loss_bf16"] = round(evaluate(model, train_rows[:: max(1, N // 256)][:256]), 4)

# ----------------------------------------------------------------------------------------------- save
mdir = os.path.join(args.out, "model")
model.to(torch.float16)
model.config.use_cache = True
import inspect  # transformers v5 always writes safetensors and dropped the safe_serialization argument
_kw = {"safe_serialization": True} if "safe_serialization" in inspect.signature(model.save_pretrained).parameters else {}
model.save_pretrained(mdir, **_kw)
st = os.path.join(mdir, "model.safetensors")
h = hashlib.sha256(open(st, "rb").read()).hexdigest()
M["saved"] = {"files": {f: os.path.getsize(os.path.join(mdir, f)) for f in sorted(os.listdir(mdir))}, "sha256": h}
log("saved", json.dumps(M["saved"]))
del model, opt, best_state
if use_cuda:
    torch.cuda.empty_cache()

# reload the saved fp16 file and evaluate in fp32 (exactly the shipped weights)
try:
    m = OPTForCausalLM.from_pretrained(mdir, dtype=torch.float32)
except TypeError:
    m = OPTForCausalLM.from_pretrained(mdir, torch_dtype=torch.float32)
m = m.to(dev).eval()
M["final"] = {"val_loss_fp32": round(evaluate(m, val_rows, use_amp=False), 4),
              "val_loss_fp32_first_eval_rows": round(evaluate(m, val_rows, use_amp=False, max_rows=args.eval_rows), 4),
              "val_tokens_evaluated": int(val_rows.shape[0] * (args.seq - 1)),
              "train_loss_fp32_256rows": round(evaluate(m, train_rows[:: max(1, N // 256)][:256], use_amp=False), 4)}
for k, r in extra_rows.items():
    M["final"][f"{k}_loss_fp32"] = round(evaluate(m, r, use_amp=False), 4)
log("final", json.dumps(M["final"]))


# ----------------------------------------------------------------------------------------------- sparsity
@torch.no_grad()
def sparsity(mm, rows, nb):
    """fc1 ReLU outputs (= fc2 inputs) over nb batches of 4 x seq tokens, fp32 compute."""
    layers = mm.model.decoder.layers
    acts = {}
    hs = [l.fc2.register_forward_pre_hook(lambda mod, inp, i=i: acts.__setitem__(i, inp[0].detach()))
          for i, l in enumerate(layers)]
    L = len(layers)
    zero_tok, union, blk = [[] for _ in range(L)], [[] for _ in range(L)], [{1: [], 3: [], 5: []} for _ in range(L)]
    nb = min(nb, rows.shape[0] // 4)
    for b in range(nb):
        x = rows[4 * b:4 * b + 4]
        mm(input_ids=x, use_cache=False)
        for i in range(L):
            a = acts[i].reshape(-1, acts[i].shape[-1]).float()  # tokens x ffn
            z = a == 0
            zero_tok[i].append(z.float().mean(1).cpu())
            union[i].append(z.all(0).float().mean().item())
            nmax = a.max(0).values  # per-neuron max over the batch (ReLU output >= 0)
            lmax = nmax.max()
            bmax = nmax.view(-1, 128).max(1).values
            for pct in (1, 3, 5):
                blk[i][pct].append((bmax < (pct / 100.0) * lmax).float().mean().item())
    for hh in hs:
        hh.remove()
    out = []
    for i in range(L):
        zt = torch.cat(zero_tok[i])
        out.append({"layer": i, "tokens": int(zt.numel()), "batches": nb,
                    "zero_frac_per_token_mean": round(zt.mean().item(), 4),
                    "zero_frac_per_token_p10": round(zt.quantile(0.1).item(), 4),
                    "zero_frac_per_token_p90": round(zt.quantile(0.9).item(), 4),
                    "union_zero_frac_4xseq_mean": round(sum(union[i]) / nb, 4),
                    "union_zero_frac_4xseq_min": round(min(union[i]), 4),
                    "union_zero_frac_4xseq_max": round(max(union[i]), 4),
                    **{f"blocks128_below_{p}pct_mean": round(sum(blk[i][p]) / nb, 4) for p in (1, 3, 5)}})
    return out


M["sparsity"] = {"val": sparsity(m, val_rows, args.sparsity_batches)}
for k, r in extra_rows.items():
    M["sparsity"][k] = sparsity(m, r, args.sparsity_batches)
init_m = build_model(args.seed).float().eval()
M["sparsity"]["val_at_init"] = sparsity(init_m, val_rows, 4)
del init_m
for row in M["sparsity"]["val"]:
    log("sparsity val", json.dumps(row))

# sanity: greedy continuation of a prompt
try:
    ids = torch.tensor([[BOS] + tok.encode("It was a bright cold day in April, and").ids], device=dev)
    out = m.generate(ids, max_new_tokens=40, do_sample=False)
    M["sample_greedy"] = tok.decode(out[0, 1:].tolist())
    log("sample:", repr(M["sample_greedy"]))
except Exception as e:  # noqa: BLE001
    M["sample_greedy"] = f"failed: {e!r}"
M["timings"]["total_s"] = round(time.time() - T0, 1)
if use_cuda:
    M["timings"]["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
json.dump(M, open(os.path.join(args.out, "metrics.json"), "w"), indent=1)
log("done")
