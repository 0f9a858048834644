#!/usr/bin/env bash
# Device side, in one call: Long Exposure's sparse LoRA training step against our dense step and the Hugging Face
# transformers + peft baseline (sdpa), OPT-1.3B built from bench/configs with random weights, batch 4, LoRA r=8
# alpha=16 on q_proj,v_proj, AdamW. Random weights have no sparsity to expose, so budgets impose the densities the
# Long Exposure paper measured on the real OPT-1.3B (docs/SPARSITY.md): attention rows keep at most 15% of their
# causal 64-token tiles beyond the diagonal and the sink (25% of the causal triangle at T=1024, 13% of all tiles),
# and each layer's MLP the paper's per-layer count of active 128-neuron blocks (mean 12.4 of 64). Random
# predictors of the real shapes choose the tiles and blocks on the GPU in every step, so their cost is in the time.
# Per case: our dense step, sparse attention only, sparse MLP only, both, then HF; bench/hf/compare_sparse.py joins
# them into $OUT/sparse-step-<model>-<seq>.json (to commit under bench/results/) and prints a table.
#
# Needs what bench/run-gpu.sh needs (.travel/ from tools/device/prepare.sh --with-bench; python3 with torch,
# transformers, peft). Environment: OUT (results folder, default bench/out), LE_COMMIT, LE_SPARSE_CASES (default
# below: model:seq,seq), LE_SPARSE_PAIRS (extra dense/both pairs for the median ratio, default 2),
# LONGEXPOSURE_CUDA_LIB_PATH.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-bench/out}"
mkdir -p "$out"
work="$(mktemp -d /tmp/le-sparse.XXXXXX)"
export PYTHONUNBUFFERED=1
cases="${LE_SPARSE_CASES:-opt-1.3b:1024,2048}"
extra_pairs="${LE_SPARSE_PAIRS:-2}"   # alternating dense/both runs after the first, for the median ratio
attn_fraction=0.15
# active 128-neuron blocks per layer of the real OPT-1.3B (LONG_EXPOSURE.md 9.6, 5%/0.9 rule)
mlp_blocks_opt_1_3b=27,6,3,0,0,0,10,4,13,17,7,9,15,19,14,13,17,19,19,20,11,11,17,26

# shellcheck source=../tools/device/common.sh
source "$root/tools/device/common.sh"

main() {
if ! le_runtime .travel "$work/jre"; then
  echo "error: no Java runtime under .travel/ (jre.tar.xz); build it with tools/device/prepare.sh --with-bench"
  exit 2
fi
commit="${LE_COMMIT:-$(cat .travel/COMMIT 2>/dev/null || echo unknown)}"
le_libpath="${LONGEXPOSURE_CUDA_LIB_PATH:-}"
le_add_cuda_libs "" libcuda.so.1 libnvrtc.so.13 libcublasLt.so.13
libpath="$le_libpath"
java_cmd=("$le_java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xmx16g
          -cp "$(le_class_path .travel/lib)")
first=1
for c in $cases; do
  model="${c%%:*}"
  seqs="${c#*:}"
  cfg="bench/configs/$model/config.json"
  case "$model" in
    opt-1.3b) blocks="$mlp_blocks_opt_1_3b" ;;
    *) echo "no measured MLP densities for $model; skipped"; continue ;;
  esac
  for t in ${seqs//,/ }; do
    step=(org.longexposure.bench.step.CudaStepBench --config "$cfg" --batch 4 --seq "$t" --rank 8 --alpha 16
          --targets q_proj,v_proj --warmup 3 --iters 9 ${libpath:+--cuda-lib-path "$libpath"} --commit "$commit")
    runs=()
    for v in dense attn mlp both; do
      extra=()
      case "$v" in
        attn) extra=(--attn-row-fraction "$attn_fraction") ;;
        mlp) extra=(--mlp-blocks "$blocks") ;;
        both) extra=(--attn-row-fraction "$attn_fraction" --mlp-blocks "$blocks") ;;
      esac
      f="$work/ours-$model-$t-$v.json"
      echo "== ours $model seq $t $v"
      timeout 120 "${java_cmd[@]}" "${step[@]}" "${extra[@]}" --out "$f" 2>&1 | grep -v '^WARNING' \
        || echo "ours $model $t $v: failed"
      [ "$v" = dense ] || runs+=("$f")
    done
    # more alternating pairs of the dense and the both-sparse step: the bar against our dense step is the median
    pairs=()
    for p in $(seq 1 "$extra_pairs"); do
      for v in dense both; do
        extra=()
        [ "$v" = both ] && extra=(--attn-row-fraction "$attn_fraction" --mlp-blocks "$blocks")
        f="$work/pair$p-$model-$t-$v.json"
        echo "== ours $model seq $t $v (pair $((p + 1)))"
        timeout 120 "${java_cmd[@]}" "${step[@]}" "${extra[@]}" --out "$f" 2>&1 | grep -v '^WARNING' \
          | grep 'ms/step' || echo "ours $model $t $v pair $p: failed"
        pairs+=("$f")
      done
    done
    h="$work/hf-$model-$t.json"
    echo "== HF $model seq $t"
    peak=()
    [ "$first" = 1 ] || peak=(--no-matmul-peak)
    timeout 180 python3 bench/hf/hf_peft_step.py --config "$cfg" --seq "$t" --batch 4 --rank 8 --alpha 16 \
      --targets q_proj,v_proj --attn sdpa --warmup 3 --iters 9 "${peak[@]}" --out "$h" || echo "HF $model $t: failed"
    first=0
    python3 bench/hf/compare_sparse.py --dense "$work/ours-$model-$t-dense.json" --sparse "${runs[@]}" --hf "$h" \
      --commit "$commit" --out "$out/sparse-step-$model-$t.json" ${pairs[@]:+--pairs "${pairs[@]}"}
  done
done
}

main 2>&1 | tee "$out/run-sparse-gpu.log"
