#!/usr/bin/env python3
"""Check a bundled OPT model folder without torch or transformers.

1. Always (Python standard library only): reads config.json and the safetensors header (8-byte little-endian
   header length, JSON header, raw data) and checks that the tensor names, shapes (V, C, H = ffn_dim, P = max
   positions + 2 for OPT's learned-position offset) and dtypes (F16 unless --dtype) match the config, that the
   data ranges tile the file exactly, and that a tied model stores no lm_head.weight.
2. With --corpus (needs numpy and the `regex` module): an independent float32 numpy forward of OPTForCausalLM
   (pre-LN, q scaled by HS^-0.5 after q_proj, causal softmax, ReLU FFN, final LayerNorm, tied output
   projection) on the split=val book of the corpus, tokenized by a plain byte-level BPE over vocab.json +
   merges.txt into rows of [</s>] + 511 tokens, as the training recipe does. Prints the mean cross-entropy over
   the first --rows rows and the per-layer fraction of zero fc1 ReLU outputs per token on the first 64 rows,
   to compare with training_log.json (final.val_loss_fp32_first_eval_rows, sparsity.val).

Usage: python3 check_model.py models/opt-mini-256 [--corpus DIR --rows 256]
"""
import argparse, json, os, struct, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--dtype", default="F16")
ap.add_argument("--corpus", help="dir with index.tsv and gutenberg-*.txt: run the numpy forward on the val book")
ap.add_argument("--rows", type=int, default=256)
args = ap.parse_args()

cfg = json.load(open(os.path.join(args.model, "config.json")))
st = os.path.join(args.model, "model.safetensors")
size = os.path.getsize(st)
with open(st, "rb") as f:
    hn = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(hn))
meta = header.pop("__metadata__", None)
C, H, V, L = cfg["hidden_size"], cfg["ffn_dim"], cfg["vocab_size"], cfg["num_hidden_layers"]
P = cfg["max_position_embeddings"] + 2
D = cfg.get("word_embed_proj_dim", C)
expected = {"model.decoder.embed_tokens.weight": [V, D], "model.decoder.embed_positions.weight": [P, C]}
if D != C:
    expected["model.decoder.project_in.weight"] = [C, D]
    expected["model.decoder.project_out.weight"] = [D, C]
if cfg["do_layer_norm_before"] and not cfg.get("_remove_final_layer_norm", False):
    expected["model.decoder.final_layer_norm.weight"] = [C]
    expected["model.decoder.final_layer_norm.bias"] = [C]
for i in range(L):
    pre = f"model.decoder.layers.{i}."
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        expected[pre + f"self_attn.{name}.weight"] = [C, C]
        expected[pre + f"self_attn.{name}.bias"] = [C]
    for name in ("self_attn_layer_norm", "final_layer_norm"):
        expected[pre + name + ".weight"] = [C]
        expected[pre + name + ".bias"] = [C]
    expected[pre + "fc1.weight"], expected[pre + "fc1.bias"] = [H, C], [H]
    expected[pre + "fc2.weight"], expected[pre + "fc2.bias"] = [C, H], [C]
if not cfg.get("tie_word_embeddings", True):
    expected["lm_head.weight"] = [V, D]

errors = []
missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
if missing or extra:
    errors.append(f"tensor names differ from config: missing {missing}, unexpected {extra}")
width = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
spans, params = [], 0
for k, v in header.items():
    n = 1
    for s in v["shape"]:
        n *= s
    params += n
    if k in expected and v["shape"] != expected[k]:
        errors.append(f"{k}: shape {v['shape']}, config implies {expected[k]}")
    if v["dtype"] != args.dtype:
        errors.append(f"{k}: dtype {v['dtype']}, expected {args.dtype}")
    a, b = v["data_offsets"]
    if b - a != n * width.get(v["dtype"], 0):
        errors.append(f"{k}: {b - a} data bytes for {n} {v['dtype']} values")
    spans.append((a, b))
pos = 0
for a, b in sorted(spans):
    if a != pos:
        errors.append(f"data ranges do not tile the file: gap or overlap at byte {pos} (next range starts at {a})")
    pos = b
if 8 + hn + pos != size:
    errors.append(f"file is {size} bytes, header + data say {8 + hn + pos}")
print(f"{st}: {size} bytes, header {hn} bytes, metadata {meta}, {len(header)} tensors, {params} parameters")
if errors:
    print("FAILED:\n  " + "\n  ".join(errors))
    sys.exit(1)
print("header OK: names, shapes and dtypes match config.json; data ranges tile the file")
if not args.corpus:
    sys.exit(0)

# ------------------------------------------------------------------------------- independent numpy forward
import numpy as np
import regex

t0 = time.time()


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = byte_to_unicode()
vocab = json.load(open(os.path.join(args.model, "vocab.json"), encoding="utf-8"))
with open(os.path.join(args.model, "merges.txt"), encoding="utf-8") as f:
    rank = {tuple(l.split()): i for i, l in enumerate(x for x in f.read().split("\n")[1:] if x.strip())}
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
bpe_cache = {}


def bpe(word):
    """Merge adjacent symbols of one pre-token by lowest merge rank until none applies."""
    if word in bpe_cache:
        return bpe_cache[word]
    parts = list(word)
    while len(parts) > 1:
        r, i = min((rank.get((parts[j], parts[j + 1]), 1 << 30), j) for j in range(len(parts) - 1))
        if r == 1 << 30:
            break
        a, b = parts[i], parts[i + 1]
        out, j = [], 0
        while j < len(parts):
            if j < len(parts) - 1 and parts[j] == a and parts[j + 1] == b:
                out.append(a + b)
                j += 2
            else:
                out.append(parts[j])
                j += 1
        parts = out
    ids = [vocab[p] for p in parts]
    bpe_cache[word] = ids
    return ids


with open(os.path.join(args.corpus, "index.tsv"), encoding="utf-8") as f:
    hdr = f.readline().rstrip("\n").split("\t")
    index = [dict(zip(hdr, l.rstrip("\n").split("\t"))) for l in f if l.strip()]
ids = []
for r in (r for r in index if r["split"] == "val"):
    with open(os.path.join(args.corpus, r["file"]), "rb") as f:
        text = f.read()[int(r["byte_start"]):int(r["byte_end"])].decode("utf-8")
    for m in PAT.findall(text):
        ids.extend(bpe("".join(B2U[b] for b in m.encode("utf-8"))))
    ids.append(2)
T = 512
n = len(ids) // (T - 1)
rows = np.concatenate([np.full((n, 1), 2), np.array(ids[: n * (T - 1)]).reshape(n, T - 1)], 1)
print(f"val: {len(ids)} tokens incl. separators, {n} rows of {T} ({time.time() - t0:.1f}s)", flush=True)

with open(st, "rb") as f:
    raw = f.read()
W = {k: np.frombuffer(raw[8 + hn + v["data_offsets"][0]:8 + hn + v["data_offsets"][1]],
                      dtype={"F16": "<f2", "F32": "<f4", "F64": "<f8"}[v["dtype"]]).astype(np.float32).reshape(v["shape"])
     for k, v in header.items()}
NH = cfg["num_attention_heads"]
HS = C // NH
if D != C:
    sys.exit("numpy forward covers word_embed_proj_dim == hidden_size only")


def layer_norm(x, p):
    m = x.mean(-1, keepdims=True)
    var = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(var + 1e-5) * W[p + ".weight"] + W[p + ".bias"]


def linear(x, p):
    return x @ W[p + ".weight"].T + W[p + ".bias"]


E, PE = W["model.decoder.embed_tokens.weight"], W["model.decoder.embed_positions.weight"]
causal = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)


def row_nll(r, zeros):
    """Summed next-token NLL of one row (T tokens); appends per-token zero fractions of fc1 ReLU if zeros."""
    x = E[r] + PE[np.arange(T) + 2]
    for i in range(L):
        p = f"model.decoder.layers.{i}."
        h = layer_norm(x, p + "self_attn_layer_norm")
        q = (linear(h, p + "self_attn.q_proj") * HS ** -0.5).reshape(T, NH, HS).transpose(1, 0, 2)
        k = linear(h, p + "self_attn.k_proj").reshape(T, NH, HS).transpose(1, 0, 2)
        v = linear(h, p + "self_attn.v_proj").reshape(T, NH, HS).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = x + linear((s @ v).transpose(1, 0, 2).reshape(T, C), p + "self_attn.out_proj")
        a = np.maximum(linear(layer_norm(x, p + "final_layer_norm"), p + "fc1"), 0)
        if zeros is not None:
            zeros[i].append((a == 0).mean(1))
        x = x + linear(a, p + "fc2")
    if "model.decoder.final_layer_norm.weight" in W:
        x = layer_norm(x, "model.decoder.final_layer_norm")
    z = x @ E.T
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -float(logp[np.arange(T - 1), r[1:]].sum())


nr = min(args.rows, n)
zeros = [[] for _ in range(L)]
total = 0.0
for j in range(nr):
    total += row_nll(rows[j], zeros if j < 64 else None)
print("fc1 ReLU zero fraction per token, rows 0-63, per layer:",
      [round(float(np.concatenate(z).mean()), 4) for z in zeros])
print(f"val loss, first {nr} rows, numpy fp32: {total / (nr * (T - 1)):.4f} ({time.time() - t0:.1f}s)")
