"""chunk_and_hash: digests against hashlib/blake3, cut points against cdc_chunks, any thread count."""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers_parts import import_part
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build._native import ChunkerParams, cdc_chunks, chunk_and_hash


def blake3_pkg() -> Any:
    """The reference blake3 package (the oracle), imported by the tests that compare with it."""
    return import_part("blake3", "pip install '.[test]' (scripts/test.sh does)")


def _digest(algo: str, data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest() if algo == "sha256" else blake3_pkg().blake3(data).digest()


def _expected(data: bytes, spans: list[tuple[int, int]], algo: str) -> list[tuple[int, int, bytes]]:
    mv = memoryview(data)
    return [(o, n, _digest(algo, mv[o:o + n])) for o, n in spans]


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 300_000), seed=st.integers(0, 2**32 - 1), size=st.integers(1, 70_000),
       algo=st.sampled_from(["sha256", "blake3"]), threads=st.integers(1, 6))
def test_fixed_size_against_oracles(n: int, seed: int, size: int, algo: str, threads: int) -> None:
    data = random.Random(seed).randbytes(n)
    spans = [(o, min(size, n - o)) for o in range(0, n, size)]
    assert chunk_and_hash(data, fixed_size=size, algo=algo, threads=threads) == _expected(data, spans, algo)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 400_000), seed=st.integers(0, 2**32 - 1), avg=st.sampled_from([256, 1024, 4096]),
       algo=st.sampled_from(["sha256", "blake3"]), threads=st.integers(1, 6))
def test_cdc_against_oracles_and_cdc_chunks(n: int, seed: int, avg: int, algo: str, threads: int) -> None:
    data = random.Random(seed).randbytes(n)
    params = ChunkerParams(avg // 4, avg, avg * 4, 2)
    got = chunk_and_hash(data, params, algo=algo, threads=threads)
    assert got == _expected(data, cdc_chunks(data, params), algo)


def test_default_sizes_threads_invariant() -> None:
    data = random.Random(5).randbytes(24 << 20)
    one = chunk_and_hash(data, algo="blake3")
    assert len(one) > 40
    assert chunk_and_hash(data, algo="blake3", threads=2) == one
    assert chunk_and_hash(data, algo="blake3", threads=5) == one
    assert [(o, n) for o, n, _ in one] == cdc_chunks(data)
    fixed = chunk_and_hash(data, fixed_size=262144, threads=3)
    assert fixed == chunk_and_hash(data, fixed_size=262144)
    assert fixed[7][2] == hashlib.sha256(data[7 * 262144:8 * 262144]).digest()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 200_000), seed=st.integers(0, 2**32 - 1))
def test_path_equals_buffer(tmp_path: Path, n: int, seed: int) -> None:
    data = random.Random(seed).randbytes(n)
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    p = ChunkerParams(1024, 4096, 16384, 2)
    assert chunk_and_hash(path, p, algo="blake3") == chunk_and_hash(data, p, algo="blake3")
    assert chunk_and_hash(str(path), fixed_size=4096) == chunk_and_hash(bytearray(data), fixed_size=4096)


def test_concurrent_callers_get_their_own_results() -> None:
    # cffi drops the GIL inside the C call: several Python threads run the kernel at once.
    datas = [random.Random(s).randbytes(3 << 20) for s in range(4)]
    want = [chunk_and_hash(d, algo="blake3") for d in datas]
    got: dict[int, list] = {}

    def work(i: int) -> None:
        got[i] = chunk_and_hash(datas[i], algo="blake3", threads=2)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [got[i] for i in range(4)] == want


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        chunk_and_hash(b"x", ChunkerParams(), fixed_size=10)
    for bad in (0, -5, True, 1.5):
        with pytest.raises(ValueError, match="fixed_size"):
            chunk_and_hash(b"x", fixed_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="algo"):
        chunk_and_hash(b"x", algo="md5")  # type: ignore[arg-type]
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="threads"):
            chunk_and_hash(b"x", threads=bad)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        chunk_and_hash(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert chunk_and_hash(empty) == []
    assert chunk_and_hash(b"") == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 1_500_000), seed=st.integers(0, 2**32 - 1), threads=st.integers(1, 4),
       fixed=st.sampled_from([None, 1000, 4096, 65536]), window=st.integers(1 << 12, 1 << 18))
def test_file_read_in_windows_equals_buffer(tmp_path: Path, n: int, seed: int, threads: int,
                                            fixed: int | None, window: int) -> None:
    # Small windows force many refills (the real window is 64 MiB): each must carry the
    # undecided tail over, with the parallel search too.
    from cheng_build._native import chunking

    data = random.Random(seed).randbytes(n)
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    params = None if fixed else ChunkerParams(1024, 4096, 16384, 2)
    saved = chunking._HASH_WINDOW
    chunking._HASH_WINDOW = window
    try:
        got = chunk_and_hash(path, params, fixed_size=fixed, algo="blake3", threads=threads)
    finally:
        chunking._HASH_WINDOW = saved
    assert got == chunk_and_hash(data, params, fixed_size=fixed, algo="blake3")


@pytest.mark.parametrize("fixed", [None, 4096])
def test_fifo_input_size_unknown_up_front(tmp_path: Path, fixed: int | None) -> None:
    # A pipe reports size 0: the reader starts with a one-byte window and must grow it.
    import os

    data = random.Random(17).randbytes(300_000)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as f:
            for i in range(0, len(data), 7000):
                f.write(data[i:i + 7000])

    t = threading.Thread(target=writer)
    t.start()
    params = None if fixed else ChunkerParams(1024, 4096, 16384, 2)
    got = chunk_and_hash(fifo, params, fixed_size=fixed, algo="blake3", threads=2)
    t.join()
    assert got == chunk_and_hash(data, params, fixed_size=fixed, algo="blake3")
