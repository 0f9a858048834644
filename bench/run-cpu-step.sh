#!/usr/bin/env bash
# Builds the benchmarks and runs the CPU LoRA training-step benchmark (with the GEMM micro-benchmark beside it in
# the same process) on a model folder; writes bench/results/<date>-<machine>-<commit>-lora-step-cpu.json.
# Usage: bench/run-cpu-step.sh [MODEL_DIR] [extra LoraStepBench options, e.g. --batch 4 --seq 256]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
JAVA_HOME="$(.ci/find-jdk25)"
export JAVA_HOME
model="${1:-../shared/models/opt-mini-relu}"
shift || true
./mvnw -q -B -ntp -DskipTests -pl bench -am package
commit="$(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty)"
machine="$(hostname -s 2>/dev/null || echo host)-$(nproc)cpu"
out="bench/results/$(date -u +%Y-%m-%d)-${machine}-${commit}-lora-step-cpu.json"
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector -XX:+UseParallelGC -Xmx8g \
  -cp "bench/target/classes:bench/target/lib/*" org.longexposure.bench.step.LoraStepBench "$model" \
  --commit "$commit" --out "$out" "$@"
