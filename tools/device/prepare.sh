#!/usr/bin/env bash
# Packs what a GPU machine without Java or Maven needs into the git-ignored .travel/ folder of the repository:
#   .travel/lib/      runtime jars: core, cuda, cli (+ their runtime dependencies), bench when present
#   .travel/test/     the cuda module's test classes, their test dependencies and the JUnit console launcher
#   .travel/jre.tar.xz  a jlink runtime (JDK 25) with just the modules the jars need
#   .travel/run-tests.sh  the device-side test runner (a copy of tools/device/run-tests.sh)
#   .travel/common.sh     the functions it sources (a copy of tools/device/common.sh)
# Usage: JAVA_HOME=<JDK 25> tools/device/prepare.sh [--with-bench]
#   --with-bench  also pack the bench module (its GPU step benchmark; JMH stays behind)
# The whole folder must stay small enough to travel with a GPU job (about 22 MiB); the script prints its size.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.travel"
: "${JAVA_HOME:?set JAVA_HOME to a JDK 25}"
if ! "$JAVA_HOME/bin/java" -version 2>&1 | grep -q 'version "25'; then
  echo "prepare.sh: $JAVA_HOME is not a JDK 25" >&2
  exit 1
fi
export JAVA_HOME
console_version=1.14.1   # junit-platform for the project's junit-jupiter 5.14.1
with_bench=0
[[ "${1:-}" == "--with-bench" ]] && with_bench=1

cd "$root"
./mvnw -q -B -ntp -DskipTests package
rm -rf "$out"
mkdir -p "$out/lib" "$out/test"
# The source commit the jars were built from (with -dirty when the tree had changes), for the result records.
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit-dirty"
echo "$commit" > "$out/COMMIT"

# Runtime jars. xchart (plots) is left out: it needs java.desktop (AWT), which would double the runtime's size,
# and nothing on the device draws plots.
cp core/target/longexposure-core-*.jar cuda/target/longexposure-cuda-*[0-9T].jar "$out/lib/"
./mvnw -q -B -ntp -pl cuda dependency:copy-dependencies -DincludeScope=runtime -DexcludeGroupIds=org.longexposure \
  -DoutputDirectory="$out/lib"
if [[ -f cli/target/longexposure-cli.jar ]]; then
  cp cli/target/longexposure-cli.jar "$out/lib/"
  for j in cli/target/lib/*.jar; do
    case "$(basename "$j")" in
      xchart-*|longexposure-*) ;;
      *) cp -n "$j" "$out/lib/" ;;
    esac
  done
fi
if (( with_bench )) && ls bench/target/longexposure-bench*.jar >/dev/null 2>&1; then
  cp bench/target/longexposure-bench*.jar "$out/lib/"
  [[ -d bench/target/lib ]] && for j in bench/target/lib/*.jar; do
    # JMH and its dependencies stay behind: the device runs the plain-main GPU benchmarks only.
    case "$(basename "$j")" in longexposure-*|jmh-*|jopt-simple-*|commons-math3-*) ;; *) cp -n "$j" "$out/lib/" ;; esac
  done
fi

# Device tests: the cuda test jar, JUnit/AssertJ, the console launcher. byte-buddy (AssertJ's optional proxy
# library, 8 MB) is left out: the tests use plain assertions and assumptions only.
cp cuda/target/longexposure-cuda-*-tests.jar "$out/test/"
./mvnw -q -B -ntp -pl cuda dependency:copy-dependencies -DincludeScope=test \
  -DexcludeArtifactIds=byte-buddy,junit-jupiter,opentest4j,apiguardian-api,junit-jupiter-api,junit-jupiter-engine,junit-jupiter-params,junit-platform-commons,junit-platform-engine \
  -DexcludeGroupIds=org.longexposure -DoutputDirectory="$out/test"
for j in "$out"/test/*.jar; do
  [[ -e "$out/lib/$(basename "$j")" ]] && rm "$j"
done
./mvnw -q -B -ntp dependency:copy \
  -Dartifact=org.junit.platform:junit-platform-console-standalone:$console_version \
  -DoutputDirectory="$out/test"

# The runtime: base modules (jdk.zipfs lets the test launcher scan jars) plus whatever jdeps finds in the jars, except java.desktop and java.sql: they come
# only from the plotting code (xchart, left out above), commons-math3's optional parts and jackson-databind's
# optional ("requires static") support for java.beans/java.sql types, and java.desktop alone would double the size.
deps=""
for j in "$out"/lib/*.jar; do
  d=$("$JAVA_HOME/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps \
      --class-path "$out/lib/*" "$j" 2>/dev/null | tail -n 1 || true)
  [[ "$d" == java.* || "$d" == jdk.* ]] && deps="$deps,$d"
done
modules=$(echo "java.base,jdk.incubator.vector,java.logging,java.management,jdk.unsupported,jdk.zipfs$deps" | tr ',' '\n' \
  | grep -v -e '^java.desktop$' -e '^java.sql$' -e '^$' | sort -u | paste -sd, -)
echo "jlink modules: $modules"
rm -rf "$out/jre.tmp"
# No --compress: xz over the plain image gives 13 MB, against 20 MB for xz over a zip-9 compressed one.
"$JAVA_HOME/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files \
  --output "$out/jre.tmp"
# The JDK's shared libraries carry symbol tables (libjvm.so alone 5 MB of them): stripped, the runtime shrinks by
# about a sixth, which keeps the working tree plus .travel under the 64 MiB a device call may carry.
if command -v strip >/dev/null 2>&1; then
  find "$out/jre.tmp" -name '*.so' -exec strip --strip-unneeded {} +
fi
tar -C "$out/jre.tmp" -cf - . | xz -9e -T0 > "$out/jre.tar.xz"
rm -rf "$out/jre.tmp"
cp tools/device/run-tests.sh tools/device/common.sh "$out/"

du -sh "$out"
du -sh "$out"/* | sort -h
