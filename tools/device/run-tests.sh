#!/usr/bin/env bash
# Runs the cuda module's tests (CPU-side and device tests) on a GPU machine from a folder made by
# tools/device/prepare.sh: unpacks the carried Java runtime into /tmp, puts the CUDA toolkit's library folders
# on LD_LIBRARY_PATH when the dynamic loader does not already know libnvrtc/libcublasLt, and runs the JUnit
# console launcher, printing the test tree (the carried runtime has no java.xml, so no XML reports).
# Usage: bash run-tests.sh [travel dir (default: the folder of this script)] [extra launcher arguments...]
set -euo pipefail

travel=$(cd "${1:-$(dirname "$0")}" && pwd)
shift || true
jre=/tmp/longexposure-jre
rm -rf "$jre"
mkdir -p "$jre"
tar -C "$jre" -xJf "$travel/jre.tar.xz"

for lib in libnvrtc.so.13 libcublasLt.so.13; do
  if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
    dir=""
    for cand in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu; do
      if [[ -e "$cand/$lib" ]]; then dir=$cand; break; fi
    done
    if [[ -z "$dir" ]]; then
      found=$(find /usr /opt -name "$lib" 2>/dev/null | head -n 1 || true)
      [[ -n "$found" ]] && dir=$(dirname "$found")
    fi
    if [[ -n "$dir" ]]; then
      echo "run-tests.sh: $lib found in $dir"
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    else
      echo "run-tests.sh: $lib not found; the tests that need it will fail or skip" >&2
    fi
  fi
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

cp_list=$(ls "$travel"/lib/*.jar "$travel"/test/*.jar | grep -v console-standalone | tr '\n' ':')
"$jre/bin/java" -Xmx8g --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -jar "$travel"/test/junit-platform-console-standalone-*.jar execute \
  --class-path "$cp_list" --select-package org.longexposure.cuda --details=tree --disable-banner --disable-ansi-colors \
  "$@"
