# Sourced by the GPU-machine scripts (run-tests.sh, run-all.sh, profile-step.sh, bench/run-gpu.sh); prepare.sh
# copies it into .travel/ next to run-tests.sh. It defines functions only and sets no shell options: each script
# keeps its own (set -e or not).
#   le_runtime TRAVEL DIR [keep]   unpack the carried Java runtime, set le_java to its bin/java
#   le_add_cuda_libs NAME LIB...   add to le_libpath the folders of the CUDA libraries the loader does not know
#   le_class_path DIR...           print the jars of the given folders as one class path

# le_runtime TRAVEL DIR [keep]: unpacks TRAVEL/jre.tar.xz (the jlink runtime prepare.sh packs) into DIR, afresh, and
# sets le_java to DIR/bin/java. With "keep", a runtime already unpacked in DIR is used as it is. Returns 1, with
# le_java empty, when there is no runtime to unpack or the archive holds no bin/java.
le_runtime() {
  local travel=$1 dir=$2 keep=${3:-}
  le_java=""
  if [[ "$keep" != keep || ! -x "$dir/bin/java" ]]; then
    [[ -f "$travel/jre.tar.xz" ]] || return 1
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -C "$dir" -xJf "$travel/jre.tar.xz" || return 1
  fi
  [[ -x "$dir/bin/java" ]] || return 1
  le_java="$dir/bin/java"
}

# le_add_cuda_libs NAME LIB...: for each LIB (e.g. libnvrtc.so.13) that the dynamic loader's cache does not list,
# looks in the CUDA toolkit's usual folders (/usr/local/cuda*/lib64, /usr/local/cuda*/targets/*/lib,
# /usr/lib/x86_64-linux-gnu), then anywhere under /usr and /opt, and appends the folder holding it to le_libpath
# (colon-separated; the caller sets le_libpath first, empty or with folders of its own). With NAME non-empty, says
# for each such LIB "NAME: LIB found in DIR", or on stderr that it was not found; otherwise it is silent.
le_add_cuda_libs() {
  local name=$1 lib dir cand found
  shift
  for lib in "$@"; do
    # A here-string, not a pipe: under pipefail, grep -q leaving early could fail ldconfig with SIGPIPE.
    if grep -q "$lib" <<< "$(ldconfig -p 2>/dev/null)"; then
      continue
    fi
    dir=""
    for cand in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu; do
      if [[ -e "$cand/$lib" ]]; then
        dir=$cand
        break
      fi
    done
    if [[ -z "$dir" ]]; then
      found=$(find /usr /opt -name "$lib" -print -quit 2>/dev/null) || true
      if [[ -n "$found" ]]; then
        dir=$(dirname "$found")
      fi
    fi
    if [[ -n "$dir" ]]; then
      le_libpath="${le_libpath:+$le_libpath:}$dir"
      if [[ -n "$name" ]]; then
        echo "$name: $lib found in $dir"
      fi
    elif [[ -n "$name" ]]; then
      echo "$name: $lib not found; the tests that need it will fail or skip" >&2
    fi
  done
}

# le_class_path DIR...: prints the jars directly in each DIR (the folders in the order given, the jars of each
# sorted), joined by ':'; an empty line when there are none. The JUnit console launcher is left out: it is started
# with -jar, never put on a class path.
le_class_path() {
  local dir jar cp=""
  for dir in "$@"; do
    for jar in "$dir"/*.jar; do
      if [[ -f "$jar" && "$jar" != *junit-platform-console-standalone* ]]; then
        cp="${cp:+$cp:}$jar"
      fi
    done
  done
  printf '%s\n' "$cp"
}
