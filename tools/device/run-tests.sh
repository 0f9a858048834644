#!/usr/bin/env bash
# Runs the cuda module's tests (CPU-side and device tests) on a GPU machine from a folder made by
# tools/device/prepare.sh: unpacks the carried Java runtime into /tmp, puts the CUDA toolkit's library folders
# on LD_LIBRARY_PATH when the dynamic loader does not already know libnvrtc/libcublasLt, and runs the JUnit
# console launcher, printing the test tree (the carried runtime has no java.xml, so no XML reports). Needs
# common.sh next to it (prepare.sh copies both into .travel/).
# Usage: bash run-tests.sh [travel dir (default: the folder of this script)] [extra launcher arguments...]
set -euo pipefail

travel=$(cd "${1:-$(dirname "$0")}" && pwd)
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
le_runtime "$travel" /tmp/longexposure-jre

le_libpath=""
le_add_cuda_libs run-tests.sh libnvrtc.so.13 libcublasLt.so.13
if [[ -n "$le_libpath" ]]; then
  export LD_LIBRARY_PATH="$le_libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

cp_list=$(le_class_path "$travel/lib" "$travel/test")
"$le_java" -Xmx8g --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -jar "$travel"/test/junit-platform-console-standalone-*.jar execute \
  --class-path "$cp_list" --select-package org.longexposure.cuda --details=tree --disable-banner --disable-ansi-colors \
  "$@"
