"""`cheng-pkg demo` and the library loader, run the way a user runs them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_parts import import_part

from cheng_build._native import ChunkerParams, cdc_chunks, library_path
from cheng_build.cli.pkg import main

REPO = Path(__file__).resolve().parents[1]


def test_demo_prints_every_chunk_and_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = os.urandom(3 << 20)
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    assert main(["demo", str(path), "--threads:2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:-1]]
    assert [(int(o), int(n)) for o, n, _ in rows] == cdc_chunks(data)
    assert all(d == hashlib.sha256(data[int(o):int(o) + int(n)]).hexdigest() for o, n, d in rows)
    assert lines[-1].startswith(f"{len(rows)} chunks, {len(data)} bytes, {ChunkerParams().spec}, sha256")


def test_demo_json_fixed_size_blake3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blake3 = import_part("blake3", "pip install '.[test]' (scripts/test.sh does)")
    data = os.urandom(1_000_000)
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    assert main(["demo", str(path), "--chunker=size-262144", "--algo", "blake3", "--format:json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["length"] for c in out["chunks"]] == [262144, 262144, 262144, 213568]
    assert out["chunks"][3]["digest"] == blake3.blake3(data[786432:]).hexdigest()


def test_demo_sample_shows_dedup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("after inserting 1 byte at the front:")
    unchanged, total = int(last.split()[7]), int(last.split()[9])
    assert total - unchanged <= 3


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        (["demo", "/no/such/file"], "demo: no such file: /no/such/file"),
        (["demo", "--chunker", "rabin"], "demo: bad --chunker value 'rabin'"),
        (["demo", "--chunker", "fastcdc-v1-64-300-1024-n2"], "demo: bad --chunker value"),
        (["demo", "--chunker", "size-0"], "demo: bad --chunker value 'size-0'"),
        (["demo", "--threads", "0"], "demo: --threads must be at least 1"),
        (["demo", "--algo", "md5"], "demo: argument --algo: invalid choice"),
    ],
)
def test_demo_bad_input_exits_2_with_a_clear_first_line(argv: list[str], first: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(first)
    assert "Traceback" not in "\n".join(err)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, check=False)


def test_missing_library_says_how_to_build() -> None:
    proc = _python("import cheng_build._native", CHENG_NATIVE_LIB="/nonexistent/libchengnative.so")
    assert proc.returncode != 0
    assert "native library not found: /nonexistent/libchengnative.so" in proc.stderr
    assert "scripts/dev-build.sh" in proc.stderr and "pip install ." in proc.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO), "CHENG_NATIVE_LIB": "/nonexistent/x.so"}
    cli = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", "demo"], capture_output=True,
                         text=True, env=env, check=False)
    assert cli.returncode == 1
    assert cli.stderr.startswith("demo: native library not found")
    assert "Traceback" not in cli.stderr


def test_library_not_a_shared_object(tmp_path: Path) -> None:
    bogus = tmp_path / "libchengnative.so"
    bogus.write_text("not an ELF file")
    proc = _python("import cheng_build._native", CHENG_NATIVE_LIB=str(bogus))
    assert proc.returncode != 0
    assert "cannot load native library" in proc.stderr


def test_env_var_points_at_a_library() -> None:
    proc = _python("from cheng_build._native import library_path, cdc_chunks; print(library_path())",
                   CHENG_NATIVE_LIB=str(library_path()))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(library_path())


def test_find_library_prefers_own_copy_then_an_installed_one(tmp_path: Path) -> None:
    from cheng_build._native._loader import find_library

    own = tmp_path / "src" / "cheng_build" / "_native" / "libchengnative.so"
    site = tmp_path / "site"
    installed = site / "cheng_build" / "_native" / "libchengnative.so"
    assert find_library(own, [str(tmp_path / "nothing"), str(site)]) == own  # neither exists
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"")
    assert find_library(own, [str(tmp_path / "nothing"), str(site)]) == installed
    own.parent.mkdir(parents=True)
    own.write_bytes(b"")
    assert find_library(own, [str(site)]) == own


def test_preparsed_ffi_module_is_current(tmp_path: Path) -> None:
    # _ffi.py is generated from _cdef.CDEF and committed; a stale one would declare old signatures.
    from cheng_build._native import _ffi_build

    fresh = _ffi_build.generate(tmp_path / "_ffi.py").read_text()
    committed = Path(_ffi_build.__file__).with_name("_ffi.py").read_text()
    assert fresh == committed, "run: python -m cheng_build._native._ffi_build"


def test_loader_falls_back_to_parsing_the_declarations() -> None:
    code = ("import sys; sys.modules['cheng_build._native._ffi'] = None\n"
            "from cheng_build._native import cdc_chunks, sha256\n"
            "import cheng_build._native._loader as l; print(type(l.ffi).__module__)\n"
            "print(cdc_chunks(bytes(100)), sha256(b'abc').hex()[:8])")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["cffi.api", "[(0,", "100)]", "ba7816bf"]
