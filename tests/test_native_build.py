"""The CMake build: a clear message without a compiler, and the options scripts/test.sh uses."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers_parts import require_part

REPO = Path(__file__).resolve().parents[1]
cmake = shutil.which("cmake")


@pytest.fixture(autouse=True)
def _needs_cmake() -> None:
    if cmake is None:
        require_part("cmake", "scripts/test.sh: apt-get install cmake")


def test_missing_c_compiler_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc")}
    proc = subprocess.run([cmake, "-S", str(REPO), "-B", str(tmp_path / "b")], capture_output=True,
                          text=True, env=env, check=False)
    assert proc.returncode != 0
    assert "cheng-build: no C compiler found" in proc.stderr
    assert "build-essential" in proc.stderr


def test_configure_with_tests_and_sanitizers(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        require_part("a C compiler", "apt-get install build-essential")
    proc = subprocess.run([cmake, "-S", str(REPO), "-B", str(tmp_path / "b"), "-DCHENG_BUILD_TESTS=ON",
                           "-DCHENG_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    tests = subprocess.run(["ctest", "--test-dir", str(tmp_path / "b"), "-N"], capture_output=True,
                           text=True, check=False).stdout
    for name in ("native_cdc", "native_simhash", "native_chunk_hash", "native_chengtok"):
        assert name in tests
