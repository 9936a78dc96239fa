"""hash_file_fixed: a file's fixed-size chunk digests against hashlib/blake3, for any thread count
and every hash backend, and the errors for a file that changes or cannot be read."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_native_chunk_hash import blake3_pkg

from cheng_build._native import chunk_and_hash, force_backend, hash_file_fixed


def _oracle(algo: str, data: bytes, size: int) -> bytes:
    mv = memoryview(data)
    if algo == "sha256":
        return b"".join(hashlib.sha256(mv[o:o + size]).digest() for o in range(0, len(data), size))
    b3 = blake3_pkg()
    return b"".join(b3.blake3(mv[o:o + size]).digest() for o in range(0, len(data), size))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 400_000), seed=st.integers(0, 2**32 - 1), size=st.integers(1, 140_000),
       algo=st.sampled_from(["sha256", "blake3"]), threads=st.integers(1, 6))
def test_against_oracles(n: int, seed: int, size: int, algo: str, threads: int) -> None:
    data = random.Random(seed).randbytes(n)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "f"
        f.write_bytes(data)
        assert hash_file_fixed(f, size, algo=algo, threads=threads) == (n, _oracle(algo, data, size))


@pytest.fixture(params=["blake3", "sha256"])
def each_backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    algo = request.param
    names = ["avx512", "avx2", "sse41", "portable"] if algo == "blake3" else ["shani", "portable"]
    try:
        yield algo, [n for n in names if force_backend(algo, n)] or pytest.fail("no backend")
    finally:
        assert force_backend(algo, "auto")


def test_every_backend_same_digests(each_backend: tuple[str, list[str]], tmp_path: Path) -> None:
    algo, names = each_backend
    data = random.Random(7).randbytes((5 << 20) + 4321)
    f = tmp_path / "f"
    f.write_bytes(data)
    want = _oracle(algo, data, 262144)
    for name in names:
        assert force_backend(algo, name)
        for threads in (1, 2, 3):
            assert hash_file_fixed(f, 262144, algo=algo, threads=threads) == (len(data), want), name


def test_same_as_chunk_and_hash(tmp_path: Path) -> None:
    data = random.Random(3).randbytes((3 << 20) + 17)
    f = tmp_path / "f"
    f.write_bytes(data)
    size, digests = hash_file_fixed(f, 262144, threads=2)
    old = chunk_and_hash(f, fixed_size=262144, threads=2)
    assert size == len(data)
    assert [d for _, _, d in old] == [digests[i:i + 32] for i in range(0, len(digests), 32)]


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    assert hash_file_fixed(tmp_path / "e", 262144, threads=2) == (0, b"")


def test_bad_arguments(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    for bad in (0, -1, (1 << 30) + 1, True):
        with pytest.raises(ValueError, match="fixed_size"):
            hash_file_fixed(f, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="algo"):
        hash_file_fixed(f, 10, algo="md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        hash_file_fixed(f, 10, threads=0)
    with pytest.raises(FileNotFoundError):
        hash_file_fixed(tmp_path / "missing", 10)
    with pytest.raises(IsADirectoryError):
        hash_file_fixed(tmp_path, 10)


def test_file_that_shrinks_while_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The size is taken at open; a file shorter than that when read is ESTALE, not a short
    digest list (the C side reports -3, tested there for every thread count)."""
    f = tmp_path / "f"
    f.write_bytes(random.Random(5).randbytes(1 << 20))
    real_fstat = os.fstat
    calls = []

    def fstat_then_truncate(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        if not calls:
            os.truncate(f, 300_000)  # between taking the size and reading
        calls.append(fd)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_truncate)
    with pytest.raises(OSError) as exc:
        hash_file_fixed(f, 262144, threads=2)
    assert exc.value.errno == errno.ESTALE


def test_file_that_grows_while_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"a" * 600_000)
    real_fstat = os.fstat
    calls = []

    def fstat_then_append(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        if not calls:
            with open(f, "ab") as fh:
                fh.write(b"b" * 1000)
        calls.append(fd)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_append)
    with pytest.raises(OSError) as exc:
        hash_file_fixed(f, 262144)
    assert exc.value.errno == errno.ESTALE
