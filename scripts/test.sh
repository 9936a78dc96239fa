#!/usr/bin/env bash
# Sets up everything a fresh machine needs and runs the whole test suite.
# This is README.md's test command; .ci/run calls exactly this. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '== %s\n' "$*"; }

# System packages the tests start for real: bubblewrap (CIS sandbox), chromium (the web view's
# browser test), cmake (native build; also comes from PyPI through scikit-build-core if absent),
# node/npm (the Helia interop and UnixFS differential tests), cargo (a Rust project in the
# sandbox), git (the hooks and the clean-clone test). A test that finds one missing fails under
# CI=true (tests/helpers_parts.py), so a failed install stops here, saying what failed.
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }
need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v git >/dev/null 2>&1 || need_apt+=(git)
# node: also the ECMAScript oracle of the RWAD v2 batch's canonical (JCS) numbers
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v cargo >/dev/null 2>&1 || need_apt+=(cargo)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)  # network namespaces of the mDNS test
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed; the tests need: ${need_apt[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || die "could not install ${need_apt[*]} (apt-get install failed); the tests need them"
  for tool in bwrap cmake chromium git node npm cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after apt-get install"
  done
fi

# The package itself (compiles native/ through CMake via scikit-build-core), with the test extras.
say "pip install .[test]"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip || die "could not upgrade pip in .venv"
.venv/bin/python -m pip install -q '.[test]' || die "pip install '.[test]' failed"
# A real Synapse homeserver for the multi-node CIS tests (tests/helpers_synapse.py starts it), in
# its own venv so its pinned dependencies never meet libp2p's. A failed install fails the run.
say "pip install matrix-synapse into .venv-synapse"
python3 -m venv .venv-synapse
.venv-synapse/bin/python -m pip install -q 'matrix-synapse==1.163.2' \
  || die "pip install matrix-synapse into .venv-synapse failed (the multi-node CIS tests need it)"
# The hook scripts import the checkout beside them (as pre-commit runs them from a clone), so the
# checkout gets its own copy of the native library too.
bash scripts/dev-build.sh

# C tests: every backend against the same vectors, built once with ASan/UBSan.
say "C tests under -fsanitize=address,undefined"
cmake -S . -B build/sanitize -DCHENG_BUILD_TESTS=ON -DCHENG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/sanitize -j 2 >/dev/null
ctest --test-dir build/sanitize --output-on-failure

say "ruff"
.venv/bin/ruff check cheng_build tests benchmarks hooks

say "mypy --strict cheng_build"
.venv/bin/mypy --strict cheng_build

# `pytest` (not `python -m pytest`) keeps the checkout off sys.path: the tests import the
# installed package, as a user gets it.
say "pytest"
.venv/bin/pytest -p no:cacheprovider "$@"
