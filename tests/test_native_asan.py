"""The property tests again, against the ASan/UBSan build of the library (when one is built).

scripts/test.sh builds build/sanitize (for ctest) before pytest runs, so CI runs this; a
developer runs the cmake line of docs/chunker.md first. This is what found a use-after-free in
the binding (a temporary's memory freed before the C call that read it), which no assertion on
results could see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_parts import require_part

REPO = Path(__file__).resolve().parents[1]
SANITIZED = REPO / "build" / "sanitize" / "libchengnative.so"
SELECTED = [
    "tests/test_native_hashes.py::test_streaming_equals_one_shot",
    "tests/test_native_hashes.py::test_random_lengths_and_offsets",
    "tests/test_native_hashes.py::test_copy_is_independent",
    "tests/test_native_simhash.py",
    "tests/test_cheng_scan.py",
    "tests/test_publish_content.py::test_scan_package_equals_one_call_per_file",
    "tests/test_publish_content.py::test_scan_package_grows_its_record_room",
    "tests/test_publish_content.py::test_scan_package_counts_lines_right_at_every_length",
    "tests/test_api_decls_c.py",
    "tests/test_native_chunk_hash.py::test_cdc_against_oracles_and_cdc_chunks",
    "tests/test_native_chunk_hash.py::test_fixed_size_against_oracles",
    "tests/test_native_file_hash.py",
    "tests/test_native_cdc.py::test_matches_reference_on_random_input",
    "tests/test_native_cdc.py::test_threads_give_identical_cut_points",
]


def _runtime(name: str) -> str | None:
    for cc in ("gcc", "cc"):
        try:
            out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True,
                                 check=False).stdout.strip()
        except OSError:
            continue
        if out and os.path.isabs(out) and os.path.exists(out):
            return out
    return None


@pytest.mark.slow
def test_property_tests_pass_under_address_sanitizer() -> None:
    if not SANITIZED.is_file():
        require_part("the sanitized build build/sanitize",
                     "scripts/test.sh builds it (cmake -S . -B build/sanitize -DCHENG_SANITIZE=ON ...)")
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if not asan or not ubsan:
        require_part("the ASan/UBSan runtimes", "apt-get install gcc (libasan, libubsan)")
    env = {**os.environ, "LD_PRELOAD": f"{asan}:{ubsan}", "ASAN_OPTIONS": "detect_leaks=0",
           "UBSAN_OPTIONS": "print_stacktrace=1", "CHENG_NATIVE_LIB": str(SANITIZED),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-s", "-p", "no:cacheprovider",
                           *SELECTED], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if "is stale" in proc.stdout + proc.stderr:
        require_part("an up-to-date build/sanitize", "scripts/test.sh rebuilds it before pytest")
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-6000:])
