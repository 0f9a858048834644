#!/usr/bin/env python3
"""Interoperability of Long Exposure's adapters with Hugging Face PEFT, checked by HF itself.

Run on the GPU machine (PyTorch + transformers + peft, offline); the Java side runs on the development machine
before and after. Inputs (a folder given by --in, see tools/interop/README.md for how it is assembled):
  ours_adapter/        an adapter written by `longexposure finetune` on models/opt-mini-256
  ours_eval.json       `longexposure eval` of that adapter on data/e2e-sample/valid.jsonl: {"loss", "tokens"}
  fixture_merged/      `longexposure merge` of the opt-preln fixture model with its adapter
It checks:
  1. our adapter loads with PeftModel.from_pretrained and HF's eval loss (same data encoding, same sequence
     length) equals ours;
  2. our merged model loads with from_pretrained and its logits equal PeftModel(base, adapter)'s;
and it produces, for the reverse direction (checked by the Java test suite):
  3. a LoRA adapter trained by peft on data/e2e-sample/train.jsonl, saved with save_pretrained, and HF's eval loss
     of it on data/e2e-sample/valid.jsonl (peft_adapter/ and peft_eval.json in --out).
Data encoding (as longexposure's JSONL reader): BOS + prompt + completion + EOS, prompt and completion tokenized
separately without special tokens, loss on completion + EOS, truncated to --seq-len; the loss is the mean over
all predicted tokens of the file. Computed in float32 on the CPU (deterministic), weights upcast from float16.
"""
import argparse, json, os, sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch
import transformers
import peft
from transformers import AutoTokenizer, OPTForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

ap = argparse.ArgumentParser()
ap.add_argument("--repo", default=".")
ap.add_argument("--in", dest="inp", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--seq-len", type=int, default=128)
ap.add_argument("--train-steps", type=int, default=30)
args = ap.parse_args()
torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = False
model_dir = os.path.join(args.repo, "models/opt-mini-256")
valid = os.path.join(args.repo, "data/e2e-sample/valid.jsonl")
train = os.path.join(args.repo, "data/e2e-sample/train.jsonl")
tok = AutoTokenizer.from_pretrained(model_dir)
BOS, EOS = 2, 2


def encode(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            p = tok(o["prompt"], add_special_tokens=False)["input_ids"]
            c = tok(o["completion"], add_special_tokens=False)["input_ids"]
            ids = [BOS] + p + c + [EOS]
            labels = [-100] * (1 + len(p)) + c + [EOS]
            rows.append((ids[: args.seq_len], labels[: args.seq_len]))
    return rows


def eval_loss(model, rows):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in rows:
            n = sum(1 for l in labels[1:] if l != -100)
            if n == 0:
                continue
            out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            total += out.loss.double().item() * n
            count += n
    return total / count, count


def base():
    return OPTForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)


report = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                       "peft": peft.__version__}, "seq_len": args.seq_len}
valid_rows = encode(valid)

# 1. our adapter in peft
ours = json.load(open(os.path.join(args.inp, "ours_eval.json")))
m = PeftModel.from_pretrained(base(), os.path.join(args.inp, "ours_adapter"))
hf_loss, hf_tokens = eval_loss(m, valid_rows)
report["ours_adapter_in_peft"] = {"hf_loss": hf_loss, "hf_tokens": hf_tokens, "our_loss": ours["loss"],
                                   "our_tokens": ours["tokens"], "rel_diff": abs(hf_loss - ours["loss"]) / hf_loss}
base_loss, _ = eval_loss(base(), valid_rows)
report["base_model_hf_loss"] = base_loss

# 2. our merged fixture model vs PeftModel(base, adapter)
fx = os.path.join(args.repo, "core/src/test/resources/fixtures/opt-preln")
fbase = OPTForCausalLM.from_pretrained(os.path.join(fx, "model"), torch_dtype=torch.float32)
fpeft = PeftModel.from_pretrained(fbase, os.path.join(fx, "adapter")).eval()
fmerged = OPTForCausalLM.from_pretrained(os.path.join(args.inp, "fixture_merged"), torch_dtype=torch.float32).eval()
g = torch.Generator().manual_seed(1)
ids = torch.randint(3, 211, (3, 13), generator=g)
with torch.no_grad():
    a = fpeft(input_ids=ids).logits
    b = fmerged(input_ids=ids).logits
report["merged_fixture_vs_peft"] = {"max_abs_diff": (a - b).abs().max().item(), "max_abs_logit": a.abs().max().item()}

# 3. an adapter trained by peft, for the Java side to load
tm = get_peft_model(base(), LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                                       target_modules=["q_proj", "v_proj"]))
tm.train()
opt = torch.optim.AdamW([p for p in tm.parameters() if p.requires_grad], lr=2e-3)
train_rows = encode(train)
for step in range(args.train_steps):
    ids_, labels_ = train_rows[(step * 7) % len(train_rows)]
    loss = tm(input_ids=torch.tensor([ids_]), labels=torch.tensor([labels_])).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
os.makedirs(args.out, exist_ok=True)
tm.save_pretrained(os.path.join(args.out, "peft_adapter"))
readme = os.path.join(args.out, "peft_adapter", "README.md")
if os.path.exists(readme):
    os.remove(readme)
pl, pt = eval_loss(tm, valid_rows)
json.dump({"loss": pl, "tokens": pt, "seq_len": args.seq_len, "data": "data/e2e-sample/valid.jsonl",
           "model": "models/opt-mini-256", "versions": report["versions"]},
          open(os.path.join(args.out, "peft_eval.json"), "w"), indent=2)
report["peft_trained_adapter_hf_loss"] = pl
json.dump(report, open(os.path.join(args.out, "interop_report.json"), "w"), indent=2)
print(json.dumps(report, indent=2))
ok = report["ours_adapter_in_peft"]["rel_diff"] < 1e-4 and report["merged_fixture_vs_peft"]["max_abs_diff"] < 1e-4
print("INTEROP", "OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
