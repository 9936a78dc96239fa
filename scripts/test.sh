#!/usr/bin/env bash
# Sets up everything a fresh machine needs and runs the whole test suite.
# This is README.md's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests start for real (bubblewrap for the CIS sandbox).
need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The package itself (compiles native/ through CMake), with the test extras.
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q '.[test]'

# C tests: portable and SIMD paths against the same vectors, built once with ASan/UBSan.
if [ -f native/tests/CMakeLists.txt ] || grep -q CHENG_BUILD_TESTS CMakeLists.txt; then
  cmake -S . -B build/sanitize -DCHENG_BUILD_TESTS=ON -DCHENG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build/sanitize -j 2 >/dev/null
  ctest --test-dir build/sanitize --output-on-failure
fi

.venv/bin/ruff check cheng_build tests benchmarks hooks
# Run from tests/ so `import cheng_build` is the installed package, not the source tree.
.venv/bin/python -m pytest -p no:cacheprovider "$@"
