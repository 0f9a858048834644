#!/usr/bin/env bash
# Per-op GPU-time breakdown of the LoRA training step (CudaStepBench --profile) on the GPU machine, from the
# repository root with .travel/ carried (tools/device/prepare.sh --with-bench). Cases: LE_PROFILE_CASES, words
# of model:seq[:autotune], e.g. "opt-1.3b:1024 opt-1.3b:1024:on opt-2.7b:1024" (GEMM autotune off unless ":on").
# Batch 4, LoRA r=8 alpha=16 on q_proj,v_proj, AdamW, random weights; 3 warm-up, 9 timed, LE_PROFILE_STEPS
# (default 3) profiled steps. Each case's JSON and log go to $OUT/profile-<model>-<seq>[-on].{json,log}; the
# tables print as they come.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp/le-out}"
mkdir -p "$out"
le_runtime .travel /tmp/longexposure-jre keep
le_libpath=""
le_add_cuda_libs "" libnvrtc.so.13 libcublasLt.so.13
libpath=$le_libpath
cp=$(le_class_path .travel/lib)
commit="$(cat .travel/COMMIT 2>/dev/null || echo unknown)"
for c in ${LE_PROFILE_CASES:-opt-1.3b:1024}; do
  IFS=: read -r model seq tune <<< "$c"
  tune="${tune:-off}"
  name="profile-$model-$seq$([[ "$tune" == on ]] && echo -on)"
  echo "== $name"
  timeout 150 "$le_java" -Xmx16g --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -cp "$cp" org.longexposure.bench.step.CudaStepBench --config "bench/configs/$model/config.json" \
    --batch 4 --seq "$seq" --rank 8 --alpha 16 --targets q_proj,v_proj --warmup 3 --iters 9 \
    --profile "${LE_PROFILE_STEPS:-3}" --gemm-autotune "$tune" ${libpath:+--cuda-lib-path "$libpath"} \
    --commit "$commit" --out "$out/$name.json" > "$out/$name.log" 2>&1
  echo "exit $?"
  grep -E 'ms/step|^profile' "$out/$name.log"
  sed -n '/^category/,/^ *gpu ms/p' "$out/$name.log" | head -30
done
