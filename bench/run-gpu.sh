#!/usr/bin/env bash
# Device side, in one call: the CUDA LoRA training-step benchmark (CudaStepBench) next to the Hugging Face
# transformers + peft baseline (bench/hf/hf_peft_step.py, attn_implementation="sdpa"), OPT models built from the
# real configs in bench/configs with random weights, batch 4, LoRA r=8 alpha=16 on q_proj,v_proj, AdamW.
# For each model: our step at every sequence length, then the HF step at the same lengths (the first HF run also
# measures the bf16 matmul peak). OPT-2.7B at 2048 runs last. bench/hf/compare.py joins everything into
# $OUT/lora-step-cuda-vs-hf.json (the file to commit under bench/results/) and prints a table last.
#
# Needs: a Java runtime and the jars, built on the development machine and carried: any bin/java under .travel/
# (or a .tgz of one there); every jar in .travel/lib, .travel/test and bench/target/ (the bench jar and bench/target/lib from
# `./mvnw -pl bench -am package -DskipTests`) goes on the class path; python3 with torch, transformers, peft. Environment: OUT (results folder, default bench/out), LE_COMMIT (source commit for the records),
# LE_CASES (default below), LE_EAGER=1 (also time HF eager attention at OPT-1.3B 1024),
# LONGEXPOSURE_CUDA_LIB_PATH (extra library folders; the CUDA toolkit's are looked up otherwise).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/tools/device/common.sh"
cd "$root"
out="${OUT:-bench/out}"
mkdir -p "$out"
work="$(mktemp -d /tmp/le-bench.XXXXXX)"
export PYTHONUNBUFFERED=1
cases="${LE_CASES:-opt-1.3b:512,1024,2048 opt-2.7b:512,1024 opt-350m:512 opt-2.7b:2048}"

main() {
# --- Java runtime and class path from what travelled
java_bin="$(find .travel -path '*/bin/java' -type f 2>/dev/null | head -n 1)"
if [ -z "$java_bin" ] && le_runtime .travel "$work/jre"; then
  java_bin="$le_java"
fi
if [ -z "$java_bin" ]; then
  tgz="$(find .travel -name '*.tgz' -o -name '*.tar.gz' 2>/dev/null | head -n 1)"
  if [ -n "$tgz" ]; then
    mkdir -p "$work/jre" && tar -xzf "$tgz" -C "$work/jre"
    java_bin="$(find "$work/jre" -path '*/bin/java' -type f | head -n 1)"
  fi
fi
if [ -z "$java_bin" ]; then
  echo "error: no Java runtime under .travel/ (bin/java or a .tgz of one); build it with the packaging script"
  exit 2
fi
# jars: whatever travelled in .travel/, plus the bench module's own build when bench/target was carried too
cp="$(le_class_path bench/target/lib bench/target .travel/lib .travel/test)"
if [ -z "$cp" ]; then
  echo "error: no jars under .travel/"
  exit 2
fi
commit="${LE_COMMIT:-$(cat .travel/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)}"

# --- CUDA library folders: libcuda.so.1 comes from the loader path; NVRTC and cuBLASLt from the toolkit
le_libpath="${LONGEXPOSURE_CUDA_LIB_PATH:-}"
le_add_cuda_libs "" libcuda.so.1 libnvrtc.so.13 libcublasLt.so.13
libpath=$le_libpath
echo "java: $java_bin; commit $commit; cuda lib path: ${libpath:-(loader path only)}"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,power.draw --format=csv,noheader || true

java_cmd=("$java_bin" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xmx16g -cp "$cp")

ours=()
hfs=()
first=1
for c in $cases; do
  model="${c%%:*}"
  seqs="${c#*:}"
  cfg="bench/configs/$model/config.json"
  for t in ${seqs//,/ }; do
    f="$work/ours-$model-$t.json"
    echo "== ours $model seq $t"
    timeout 120 "${java_cmd[@]}" org.longexposure.bench.step.CudaStepBench --config "$cfg" --batch 4 --seq "$t" \
      --rank 8 --alpha 16 --targets q_proj,v_proj --warmup 3 --iters 9 ${libpath:+--cuda-lib-path "$libpath"} \
      --commit "$commit" --out "$f" || echo "ours $model $t: failed (exit $?)"
    [ -f "$f" ] && ours+=("$f")
  done
  h="$work/hf-$model-${seqs//,/_}.json"
  echo "== HF $model seq $seqs"
  extra=()
  [ "$first" = 1 ] || extra+=(--no-matmul-peak)
  timeout 180 python3 bench/hf/hf_peft_step.py --config "$cfg" --seq "$seqs" --batch 4 --rank 8 --alpha 16 \
    --targets q_proj,v_proj --attn sdpa --warmup 3 --iters 9 "${extra[@]}" --out "$h" \
    || echo "HF $model $seqs: failed (exit $?)"
  [ -f "$h" ] && hfs+=("$h")
  first=0
done
if [ "${LE_EAGER:-0}" = 1 ]; then
  h="$work/hf-eager.json"
  timeout 120 python3 bench/hf/hf_peft_step.py --config bench/configs/opt-1.3b/config.json --seq 1024 \
    --attn eager --no-matmul-peak --out "$h" || echo "HF eager: failed"
  [ -f "$h" ] && hfs+=("$h")
fi

python3 bench/hf/compare.py --ours "${ours[@]}" --hf "${hfs[@]}" --commit "$commit" \
  --out "$out/lora-step-cuda-vs-hf.json"
}

main 2>&1 | tee "$out/run-gpu.log"
