#!/usr/bin/env bash
# opt-mini-relu on the GPU with its real predicted sparsity. The 91 MB model cannot travel with a device job, so
# this script re-creates it on the GPU machine with its own recipe, then runs the command line on it:
#   1. unpack the corpus subset (tools/device/pack-opt-mini-relu.sh) and train the model with train_recipe.py on a
#      shortened wall-clock budget (the recipe stops early once the held-out loss plateaus); add the OPT tokenizer
#      files of models/opt-mini-256 (the same vocab.json and merges.txt) so the command line can load it;
#   2. expose --backend cuda on held-out text (the val book, The House of Mirth, 4 x 512-token rows): per-layer
#      per-token and union ReLU sparsity, attention tile masses;
#   3. fit-predictors --backend cuda on the same held-out text (held-out recall and density per layer);
#   4. finetune --backend cuda, LoRA on data/e2e-sample (packed 512-token rows), --sparsity off and --sparsity auto
#      with the same steps, data order and seed; eval of both adapters on packed held-out rows (dense, and sparse
#      with the auto run's predictors);
#   5. opt_mini_relu_summary.py (next to this script) joins everything into summary.json;
#   6. (part "bench") the step benchmark (CudaStepBench; the bench jar in lib/: prepare.sh --with-bench) on the
#      model's configuration with random weights: the dense LoRA step, and sparse attention whose tiles are chosen
#      on the GPU by random predictors under imposed per-row budgets (--attn-row-fraction), to time the sparse step
#      with device-side prediction at densities like those the auto run realised.
# Everything lands in $OUT (at most 8 files: summary.json, run.log, train-metrics.json, exposure.json,
# predictor-report.json, metrics-off.jsonl, metrics-auto.jsonl, extras.tar.gz; the bench part: run.log and
# step-bench.json).
#
# Usage (GPU machine; python3 with torch, transformers and tokenizers; no Java needed):
#   OUT=DIR bash tools/device/opt-mini-relu.sh [--travel DIR] [--pack DIR] [--root DIR] [--train-seconds S]
#       [--steps N] [--refresh N] [--seq T] [--backend cuda|cpu] [--model DIR] [--tiny] [--parts LIST]
#       [--bench-fractions LIST]
#   --travel DIR   holds jre.tar.xz and lib/ (tools/device/prepare.sh); default: this script's folder if it holds
#                  them, else <root>/.travel
#   --pack DIR     the packed corpus and recipe; default: <script folder>/opt-mini-relu, else
#                  <root>/.travel/opt-mini-relu
#   --root DIR     the repository (data/e2e-sample, models/opt-mini-256); default: the nearest folder above this
#                  script that holds both
#   --train-seconds S  the recipe's cosine budget (default 180; its deadline is S + 60 s after its start)
#   --steps N      finetune steps (default 100); --refresh N: auto's predictor refresh interval (default 20)
#   --seq T        tokens per row for expose, fit-predictors, finetune and eval (default 512)
#   --backend B    cuda (default) or cpu, for a local dry run of the Java side
#   --model DIR    skip the training and use this model folder (a local dry run)
#   --tiny         pass --tiny to the recipe (its smoke-test model: a local dry run with CPU torch)
#   --parts LIST   any of model,cli,bench (default model,cli,bench; "cli" needs "model" or --model)
#   --bench-fractions LIST  attention row budgets for the bench part (default 0.6,0.35)
set -uo pipefail
export PYTHONUNBUFFERED=1

here=$(cd "$(dirname "$0")" && pwd)
root=""
travel=""
pack=""
train_seconds=180
steps=100
refresh=20
seq=512
backend=cuda
model=""
tiny=""
parts=model,cli,bench
fractions=0.6,0.35
while (( $# )); do
  case "$1" in
    --travel) travel="$2"; shift 2 ;;
    --pack) pack="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --train-seconds) train_seconds="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --refresh) refresh="$2"; shift 2 ;;
    --seq) seq="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --tiny) tiny="--tiny"; shift ;;
    --parts) parts="$2"; shift 2 ;;
    --bench-fractions) fractions="$2"; shift 2 ;;
    *) echo "opt-mini-relu.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [[ -z "$root" ]]; then
  d="$here"
  while [[ "$d" != / && ! ( -d "$d/data/e2e-sample" && -d "$d/models/opt-mini-256" ) ]]; do d=$(dirname "$d"); done
  root="$d"
fi
[[ -z "$travel" ]] && { [[ -f "$here/jre.tar.xz" ]] && travel="$here" || travel="$root/.travel"; }
if [[ -z "$pack" ]]; then
  [[ -d "$here/opt-mini-relu" ]] && pack="$here/opt-mini-relu" || pack="$root/.travel/opt-mini-relu"
fi
out="${OUT:-/tmp/opt-mini-relu-out}"
work=/tmp/opt-mini-relu
mkdir -p "$out" "$work"
log="$out/run.log"
for need in "$root/data/e2e-sample/train.jsonl" "$root/models/opt-mini-256/vocab.json" "$travel/lib"; do
  [[ -e "$need" ]] || { echo "opt-mini-relu.sh: $need not found" | tee -a "$log" >&2; exit 2; }
done
has() { [[ ",$parts," == *,"$1",* ]]; }
if [[ -n "$model" ]]; then
  parts="${parts//model/}"
fi
if has cli && ! has model && [[ -z "$model" ]]; then
  echo "opt-mini-relu.sh: part cli needs part model or --model DIR" | tee -a "$log" >&2
  exit 2
fi
if has model; then
  for need in "$pack/train_recipe.py" "$pack/corpus/index.tsv"; do
    [[ -e "$need" ]] || { echo "opt-mini-relu.sh: $need not found" | tee -a "$log" >&2; exit 2; }
  done
fi
phases="$work/phases.tsv"
: > "$phases"
say() { echo "== $*" | tee -a "$log"; }
# run NAME CMD...: runs CMD with its output in the log, records its wall time and exit status
run() {
  local name="$1"; shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" >> "$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")" >> "$phases"
  echo "   $name: exit $rc, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s" | tee -a "$log"
  return $rc
}

say "machine"
{ nvidia-smi -L 2>&1 | head -4; nproc; python3 -c 'import torch, transformers, tokenizers;
print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)' 2>&1
  cat "$travel/COMMIT" 2>/dev/null; } | tee -a "$log" | tee "$work/machine.txt"

# 1. the model, re-created with its recipe
tok="$root/models/opt-mini-256"
if has model; then
  say "train opt-mini-relu with its recipe (budget ${train_seconds} s)"
  rm -rf "$work/corpus" "$work/train"
  mkdir -p "$work/corpus"
  cp "$pack/corpus/index.tsv" "$work/corpus/"
  for x in "$pack"/corpus/*.xz; do xz -dc "$x" > "$work/corpus/$(basename "${x%.xz}")"; done
  (cd "$work/corpus" && for s in "$pack"/corpus/*.sha256; do sha256sum -c "$s"; done) 2>&1 | tee -a "$log"
  run train python3 "$pack/train_recipe.py" --corpus "$work/corpus" --tok "$tok" --out "$work/train" \
    --train-seconds "$train_seconds" --deadline "$((train_seconds + 60))" $tiny
  cp "$work/train/metrics.json" "$out/train-metrics.json" 2>/dev/null
  model="$work/train/model"
  if [[ ! -f "$model/model.safetensors" ]]; then
    echo "opt-mini-relu.sh: the recipe wrote no model (see run.log)" | tee -a "$log" >&2
    exit 1
  fi
  for f in vocab.json merges.txt special_tokens_map.json tokenizer_config.json; do cp "$tok/$f" "$model/"; done
fi
corpus_dir="$work/corpus"
jre="$work/jre"
if [[ -f "$travel/jre.tar.xz" ]]; then
  [[ -x "$jre/bin/java" ]] || { mkdir -p "$jre" && tar -C "$jre" -xJf "$travel/jre.tar.xz"; }
  java="$jre/bin/java"
else
  java="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
fi
libpath=""
for so in libnvrtc.so.13 libcublasLt.so.13; do
  if ! ldconfig -p 2>/dev/null | grep -q "$so"; then
    f="$(find /usr/local /usr/lib /opt -maxdepth 6 -name "$so" -print -quit 2>/dev/null)"
    [[ -n "$f" ]] && libpath="${libpath:+$libpath:}$(dirname "$f")"
  fi
done
bopts=(--backend "$backend")
[[ "$backend" == cuda && -n "$libpath" ]] && bopts+=(--cuda-lib-path "$libpath")

if has cli; then

# Held-out text: the split=val book, cut at paragraph ends into samples of at least 3,000 characters (each fills a
# 512-token row), starting 20,000 characters in (past the front matter), whitespace folded; without the corpus (a
# dry run on a given model), data/gutenberg-sample.
if [[ -f "$corpus_dir/index.tsv" ]]; then
  python3 - "$corpus_dir" "$work/heldout-text.jsonl" <<'EOF' 2>&1 | tee -a "$log"
import json, os, re, sys
corpus, dst = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(corpus, "index.tsv"), encoding="utf-8")]
hdr, rows = rows[0], [dict(zip(rows[0], r)) for r in rows[1:] if r and r[0]]
val = [r for r in rows if r["split"] == "val"][0]
raw = open(os.path.join(corpus, val["file"]), "rb").read()[int(val["byte_start"]):int(val["byte_end"])]
text = raw.decode("utf-8")[20000:]
out, cur = [], []
for para in text.split("\n\n"):
    p = re.sub(r"\s+", " ", para).strip()
    if p:
        cur.append(p)
    if sum(len(c) + 1 for c in cur) >= 3000:
        out.append(" ".join(cur))
        cur = []
with open(dst, "w", encoding="utf-8") as f:
    for s in out[:64]:
        f.write(json.dumps({"text": s}) + "\n")
print(f"held-out text: {min(64, len(out))} samples of the val book (PG {val['pg_id']}, {val['title']})")
EOF
  heldout="$work/heldout-text.jsonl"
else
  heldout="$root/data/gutenberg-sample/valid-text.jsonl"
fi

# 2-4. the command line
le() {
  "$java" -Xmx"${LE_XMX:-16g}" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -Dlongexposure.home="$root" -cp "$travel/lib/*" org.longexposure.cli.Main "$@"
}
e2e="$root/data/e2e-sample"
rm -rf "$work/expose" "$work/predictors" "$work/ft-off" "$work/ft-auto" "$work/evals"
mkdir -p "$work/evals"

say "expose on held-out text ($heldout)"
run expose le expose "${bopts[@]}" --no-plot --model "$model" --data "$heldout" --out "$work/expose" \
  --batch-size 4 --seq-len "$seq" --batches 8
say "fit-predictors on held-out text"
run fit_predictors le fit-predictors "${bopts[@]}" --model "$model" --data "$heldout" --out "$work/predictors" \
  --batch-size 4 --seq-len "$seq" --batches 10 --held-out 2

common=(finetune "${bopts[@]}" --no-plot --model "$model" --data "$e2e/train.jsonl" --valid "$e2e/valid.jsonl"
  --pack --seq-len "$seq" --batch-size 4 --steps "$steps" --lr 5e-4 --seed 0)
say "finetune --sparsity off"
run finetune_off le "${common[@]}" --out "$work/ft-off"
say "finetune --sparsity auto --predictor-refresh $refresh"
run finetune_auto le "${common[@]}" --out "$work/ft-auto" --sparsity auto --predictor-refresh "$refresh"

say "eval on packed held-out rows"
# eval_to FILE ARGS...: eval's result line (one JSON object) into FILE
eval_to() {
  local f="$1"; shift
  le "$@" > "$f.out" 2>&1
  local rc=$?
  cat "$f.out"
  grep '^{' "$f.out" | tail -1 > "$f"
  rm -f "$f.out"
  return $rc
}
ev=(eval "${bopts[@]}" --model "$model" --data "$e2e/valid.jsonl" --pack --seq-len "$seq" --batch-size 4)
run eval_off_dense eval_to "$work/evals/off-dense.json" "${ev[@]}" --adapter "$work/ft-off/adapter"
run eval_auto_dense eval_to "$work/evals/auto-dense.json" "${ev[@]}" --adapter "$work/ft-auto/adapter"
run eval_auto_sparse eval_to "$work/evals/auto-sparse.json" "${ev[@]}" --adapter "$work/ft-auto/adapter" \
  --predictors "$work/ft-auto/predictors"

say "summary"
cp "$work/expose/exposure.json" "$out/" 2>/dev/null
cp "$work/predictors/predictor-report.json" "$out/" 2>/dev/null
cp "$work/ft-off/metrics.jsonl" "$out/metrics-off.jsonl" 2>/dev/null
cp "$work/ft-auto/metrics.jsonl" "$out/metrics-auto.jsonl" 2>/dev/null
python3 "$here/opt_mini_relu_summary.py" --work "$work" --out "$out/summary.json" 2>&1 | tee -a "$log"
(cd "$work" && tar -czf "$out/extras.tar.gz" --ignore-failed-read phases.tsv machine.txt evals \
  ft-off/validation.json ft-auto/validation.json ft-auto/predictors/predictors.json predictors/predictors.json \
  heldout-text.jsonl 2>/dev/null)
fi

if has bench; then
  cfg="$pack/config.json"
  [[ -n "$model" && -f "$model/config.json" ]] && cfg="$model/config.json"
  say "step benchmark on $cfg (random weights), batch 4 x $seq"
  rm -rf "$work/bench" && mkdir -p "$work/bench"
  sb=(org.longexposure.bench.step.CudaStepBench --backend "$backend" --config "$cfg" --batch 4 --seq "$seq" --rank 8
      --alpha 16 --targets q_proj,v_proj --warmup 5 --iters "${LE_BENCH_ITERS:-21}"
      --commit "$(cat "$travel/COMMIT" 2>/dev/null)")
  [[ "$backend" == cuda && -n "$libpath" ]] && sb+=(--cuda-lib-path "$libpath")
  bj() { "$java" -Xmx"${LE_XMX:-16g}" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
      -cp "$travel/lib/*" "$@"; }
  run bench_dense bj "${sb[@]}" --out "$work/bench/dense.json"
  run bench_dense_profile bj "${sb[@]}" --profile 5 --out "$work/bench/dense-profile.json"
  for f in ${fractions//,/ }; do
    run "bench_attn_$f" bj "${sb[@]}" --attn-row-fraction "$f" --out "$work/bench/attn-$f.json"
    run "bench_attn_${f}_profile" bj "${sb[@]}" --attn-row-fraction "$f" --profile 5 \
      --out "$work/bench/attn-$f-profile.json"
  done
  python3 - "$work/bench" "$out/step-bench.json" <<'EOF' 2>&1 | tee -a "$log"
import json, os, sys
d, dst = sys.argv[1], sys.argv[2]
res = {f[:-5]: json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d)) if f.endswith(".json")}
json.dump(res, open(dst, "w"), indent=1)
print("wrote", dst, "with", ", ".join(res))
EOF
fi
cat "$phases" | tee -a "$log"
