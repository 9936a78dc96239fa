#!/usr/bin/env bash
# Builds native/ with CMake into build/dev and copies libchengnative.so into cheng_build/_native/
# (gitignored), so `PYTHONPATH=<checkout>` finds it without `pip install`.
# Usage: bash scripts/dev-build.sh [Release|Debug]   (extra cmake -D flags via CMAKE_ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
build_type="${1:-Release}"
command -v cmake >/dev/null 2>&1 || {
  echo "dev-build: cmake not found" >&2
  echo "  how: apt-get install cmake (or pip install cmake), then rerun" >&2
  exit 2
}
# shellcheck disable=SC2086
cmake -S . -B build/dev -DCMAKE_BUILD_TYPE="$build_type" ${CMAKE_ARGS:-} >/dev/null
cmake --build build/dev -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
lib="$(find build/dev -maxdepth 2 -name 'libchengnative.so' -print -quit)"
[ -n "$lib" ] || { echo "dev-build: build/dev has no libchengnative.so" >&2; exit 1; }
# Copy to a temp name then rename: a process that has the old library mapped keeps it intact.
cp "$lib" cheng_build/_native/.libchengnative.so.tmp
mv -f cheng_build/_native/.libchengnative.so.tmp cheng_build/_native/libchengnative.so
# The CIS namespaces-sandbox helper (Linux only), the same way.
nsinit="$(find build/dev -maxdepth 2 -name 'cis-nsinit' -type f -print -quit)"
if [ -n "$nsinit" ]; then
  cp "$nsinit" cheng_build/_native/.cis-nsinit.tmp
  mv -f cheng_build/_native/.cis-nsinit.tmp cheng_build/_native/cis-nsinit
fi
echo "dev-build: cheng_build/_native/libchengnative.so ($build_type)"
