#!/usr/bin/env bash
# Compiles every CUDA kernel source <src>/<stem>.cu into <out>/<stem>.sm_90a.cubin for Hopper (sm_90a), the
# prebuilt machine code that KernelLibrary loads on an SM 9.0 device. Other GPUs compile the bundled sources
# with NVRTC at run time instead. A cubin newer than its source and every .cuh header is left as it is.
#
# nvcc comes from $CUDA_HOME/bin/nvcc, else from PATH. Called by the Maven build (exec-maven-plugin) as
#   build-kernels.sh <src dir> <out dir>
set -euo pipefail

src=${1:?usage: build-kernels.sh <src dir> <out dir>}
out=${2:?usage: build-kernels.sh <src dir> <out dir>}

if [[ -n "${CUDA_HOME:-}" && -x "${CUDA_HOME}/bin/nvcc" ]]; then
  nvcc="${CUDA_HOME}/bin/nvcc"
elif command -v nvcc >/dev/null 2>&1; then
  nvcc=$(command -v nvcc)
else
  echo "build-kernels.sh: nvcc not found (looked for \$CUDA_HOME/bin/nvcc with CUDA_HOME='${CUDA_HOME:-}'," \
       "then nvcc on PATH). Install the CUDA 13 toolkit and set CUDA_HOME, or build with" \
       "-Dle.cuda.kernels.skip=true to leave the kernels out." >&2
  exit 1
fi

mkdir -p "$out"
shopt -s nullglob
headers=("$src"/*.cuh)
sources=("$src"/*.cu)
if (( ${#sources[@]} == 0 )); then
  echo "build-kernels.sh: no .cu files in $src" >&2
  exit 1
fi

for cu in "${sources[@]}"; do
  stem=$(basename "$cu" .cu)
  cubin="$out/$stem.sm_90a.cubin"
  stale=0
  if [[ ! -f "$cubin" || "$cu" -nt "$cubin" ]]; then
    stale=1
  fi
  for h in "${headers[@]}"; do
    if [[ "$h" -nt "$cubin" ]]; then stale=1; fi
  done
  if (( stale )); then
    echo "nvcc $stem.cu -> $(basename "$cubin")"
    "$nvcc" -cubin -gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 -lineinfo \
      -I "$src" -o "$cubin.tmp" "$cu"
    mv -f "$cubin.tmp" "$cubin"
  fi
done
