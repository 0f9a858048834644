#!/usr/bin/env bash
# Kernel-level breakdown of one training step on the GPU machine: Nsight Compute times every kernel of a
# CudaStepBench run (1 warm-up step, 1 measured step; --cache-control none so that L2 stays as the step leaves it,
# --clock-control none), and a plain run of the same configuration gives the step's median wall time. Their
# difference is what the step spends between kernels (launch latency, dependency gaps, host waits).
# From the repository root with .travel/ carried (tools/device/prepare.sh --with-bench).
# Environment: OUT (results folder, default /tmp/le-out), LE_KB_CASES (words: dense | sparse; default "sparse"),
# LE_KB_SEQ (default 1024). OPT-1.3B shape, B 4, LoRA r=8 alpha=16 on q_proj,v_proj; "sparse" imposes the
# paper's densities as bench/run-sparse-gpu.sh does. Writes $OUT/kernel-breakdown-<case>-<seq>.json.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp/le-out}"
mkdir -p "$out"
le_runtime .travel /tmp/longexposure-jre keep
le_libpath=""
le_add_cuda_libs "" libcuda.so.1 libnvrtc.so.13 libcublasLt.so.13
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
cp=$(le_class_path .travel/lib)
commit="$(cat .travel/COMMIT 2>/dev/null || echo unknown)"
seq="${LE_KB_SEQ:-1024}"
blocks=27,6,3,0,0,0,10,4,13,17,7,9,15,19,14,13,17,19,19,20,11,11,17,26
for c in ${LE_KB_CASES:-sparse}; do
  extra=()
  [[ "$c" == sparse ]] && extra=(--attn-row-fraction 0.15 --mlp-blocks "$blocks")
  step=(org.longexposure.bench.step.CudaStepBench --config bench/configs/opt-1.3b/config.json --batch 4
        --seq "$seq" --rank 8 --alpha 16 --targets q_proj,v_proj ${le_libpath:+--cuda-lib-path "$le_libpath"}
        --commit "$commit" "${extra[@]}")
  java=("$le_java" -Xmx16g --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp "$cp")
  echo "== $c, seq $seq: plain run"
  timeout 150 "${java[@]}" "${step[@]}" --warmup 3 --iters 15 --out "$out/kb-plain-$c-$seq.json" 2>&1 \
    | grep -v '^WARNING' | grep 'ms/step'
  echo "== $c, seq $seq: ncu"
  timeout 400 "$ncu" --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
    "${java[@]}" "${step[@]}" --warmup 1 --iters 1 --out "$out/kb-ncu-$c-$seq.json" \
    > "$out/kb-ncu-$c-$seq.csv" 2> "$out/kb-ncu-$c-$seq.log"
  python3 tools/device/kernel_breakdown.py --csv "$out/kb-ncu-$c-$seq.csv" --plain "$out/kb-plain-$c-$seq.json" \
    --case "$c" --commit "$commit" --out "$out/kernel-breakdown-$c-$seq.json"
done
