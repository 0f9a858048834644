#!/usr/bin/env bash
# The one device command: on the GPU machine, from the repository root with .travel/ carried (made by
# tools/device/prepare.sh --with-bench), runs
#   1. the cuda module's tests (every op against the CPU backend, training steps of a tiny model),
#   2. an end-to-end check of the command line on the GPU: finetune / eval / generate --backend cuda on the
#      bundled model and data, the same finetune on the CPU backend for comparison, and a short finetune with
#      --sparsity auto on the GPU,
#   3. the training-step benchmark against Hugging Face PEFT (bench/run-gpu.sh), cases from LE_CASES,
#   4. Long Exposure's sparse step against our dense step and HF (bench/run-sparse-gpu.sh), LE_SPARSE_CASES.
# Logs and result files go to $OUT. Set LE_SKIP=tests,e2e,bench,sparse (any subset) to leave parts out.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp/le-out}"
mkdir -p "$out"
skip=",${LE_SKIP:-},"
export PYTHONUNBUFFERED=1

if [[ "$skip" != *,tests,* ]]; then
  echo "== device tests"
  bash .travel/run-tests.sh .travel > "$out/tests.log" 2>&1
  echo "exit $?"
  grep -E '✘|\[ *[0-9]+ tests (successful|failed|skipped|aborted|found)' "$out/tests.log" | head -60
fi

le_runtime .travel /tmp/longexposure-jre keep
le_libpath=""
le_add_cuda_libs "" libnvrtc.so.13 libcublasLt.so.13
libpath=$le_libpath
cp=$(le_class_path .travel/lib)
le() {
  "$le_java" -Xmx8g --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -Dlongexposure.home="$PWD" -cp "$cp" org.longexposure.cli.Main "$@"
}

if [[ "$skip" != *,e2e,* ]]; then
  echo "== end to end: finetune / eval / generate on the GPU, finetune on the CPU"
  gpu_run=/tmp/le-ft-gpu
  cpu_run=/tmp/le-ft-cpu
  rm -rf "$gpu_run" "$cpu_run"
  { time le finetune --backend cuda ${libpath:+--cuda-lib-path "$libpath"} --no-plot --out "$gpu_run"; } \
    > "$out/e2e-finetune-gpu.log" 2>&1
  echo "gpu finetune exit $?"; tail -n 8 "$out/e2e-finetune-gpu.log"
  { time le finetune --backend cpu --threads 16 --no-plot --out "$cpu_run"; } > "$out/e2e-finetune-cpu.log" 2>&1
  echo "cpu finetune exit $?"; tail -n 8 "$out/e2e-finetune-cpu.log"
  cp "$gpu_run/metrics.jsonl" "$out/e2e-metrics-gpu.jsonl" 2>/dev/null
  cp "$cpu_run/metrics.jsonl" "$out/e2e-metrics-cpu.jsonl" 2>/dev/null
  for be in cuda cpu; do
    le eval --backend "$be" ${libpath:+--cuda-lib-path "$libpath"} --model models/opt-mini-256 \
      --adapter "$gpu_run/adapter" --data data/e2e-sample/valid.jsonl 2>&1 | tail -n 3
  done
  # Long Exposure on the GPU: the same fine-tuning with the sparse operators (predictors fitted at the start,
  # refreshed every 10 steps, per-layer dense fallback), packed 256-token rows so attention has tiles to skip.
  { time le finetune --backend cuda ${libpath:+--cuda-lib-path "$libpath"} --no-plot --out /tmp/le-ft-gpu-sparse \
      --sparsity auto --predictor-refresh 10 --pack --seq-len 256 --steps 60; } > "$out/e2e-finetune-gpu-sparse.log" 2>&1
  echo "gpu sparse finetune exit $?"; tail -n 6 "$out/e2e-finetune-gpu-sparse.log"
  cp /tmp/le-ft-gpu-sparse/metrics.jsonl "$out/e2e-metrics-gpu-sparse.jsonl" 2>/dev/null
  le generate --backend cuda ${libpath:+--cuda-lib-path "$libpath"} --model models/opt-mini-256 \
    --adapter "$gpu_run/adapter" --prompt "name[The Eagle] | eatType[coffee shop] | food[French] ||" \
    --max-new-tokens 24 2>&1 | tail -n 4
fi

if [[ "$skip" != *,bench,* ]]; then
  echo "== benchmark"
  LE_CASES="${LE_CASES:-opt-1.3b:1024}" OUT="$out" LONGEXPOSURE_CUDA_LIB_PATH="$libpath" bash bench/run-gpu.sh
fi

if [[ "$skip" != *,sparse,* ]]; then
  echo "== sparse step"
  LE_SPARSE_CASES="${LE_SPARSE_CASES:-opt-1.3b:1024}" OUT="$out" LONGEXPOSURE_CUDA_LIB_PATH="$libpath" \
    bash bench/run-sparse-gpu.sh
fi
