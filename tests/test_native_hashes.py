"""SHA-256 and BLAKE3 through the binding, every backend, against hashlib and the blake3 package."""

from __future__ import annotations

import hashlib
import random
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_parts import import_part
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build._native import Blake3, Sha256, backends, blake3, force_backend, sha256


def blake3_pkg() -> Any:
    """The reference blake3 package (the oracle), imported by the tests that compare with it."""
    return import_part("blake3", "pip install '.[test]' (scripts/test.sh does)")

# Lengths around BLAKE3's 1024-byte chunks and the tree levels above them (2, 4, 8 ... chunks),
# up to 70,000 bytes, plus a few in between.
BOUNDARY_LENGTHS = sorted(
    {n for k in range(0, 69) for n in (1024 * k - 1, 1024 * k, 1024 * k + 1) if 0 <= n <= 70_000}
    | {1024 * (1 << e) + d for e in range(7) for d in (-65, -64, -1, 0, 1, 64, 65)}
    | {0, 1, 63, 64, 65, 127, 128, 129, 70_000}
)
RNG_DATA = random.Random(1234).randbytes(70_001)


def _backends(algo: str) -> list[str]:
    names = ["avx512", "avx2", "sse41", "portable"] if algo == "blake3" else ["shani", "portable"]
    return [n for n in names if force_backend(algo, n)] or pytest.fail("no backend available")


@pytest.fixture(params=["blake3", "sha256"])
def each_backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    algo = request.param
    try:
        yield algo, _backends(algo)
    finally:
        assert force_backend(algo, "auto")


def _oracle(algo: str, data: bytes) -> bytes:
    return hashlib.sha256(data).digest() if algo == "sha256" else blake3_pkg().blake3(data).digest()


def _ours(algo: str, data: bytes) -> bytes:
    return sha256(data) if algo == "sha256" else blake3(data)


def test_every_backend_on_boundary_lengths(each_backend: tuple[str, list[str]]) -> None:
    algo, names = each_backend
    for name in names:
        assert force_backend(algo, name)
        for n in BOUNDARY_LENGTHS:
            assert _ours(algo, RNG_DATA[:n]) == _oracle(algo, RNG_DATA[:n]), (name, n)


def test_every_backend_on_1mib_and_100mib(each_backend: tuple[str, list[str]]) -> None:
    algo, names = each_backend
    big = random.Random(99).randbytes(100 << 20)
    want_1m = _oracle(algo, big[: 1 << 20])
    want_100m = _oracle(algo, big)
    for name in names:
        assert force_backend(algo, name)
        assert _ours(algo, memoryview(big)[: 1 << 20]) == want_1m, name
        assert _ours(algo, big) == want_100m, name


def test_keyed_and_derive_key_on_boundary_lengths() -> None:
    key = bytes(range(32))
    try:
        _keyed_and_derive(key)
    finally:
        assert force_backend("blake3", "auto")


def _keyed_and_derive(key: bytes) -> None:
    for name in _backends("blake3"):
        assert force_backend("blake3", name)
        for n in BOUNDARY_LENGTHS[::3]:
            data = RNG_DATA[:n]
            assert blake3(data, key=key) == blake3_pkg().blake3(data, key=key).digest(), (name, n)
            want = blake3_pkg().blake3(data, derive_key_context="cheng 2026 test context").digest()
            assert blake3(data, context="cheng 2026 test context") == want, (name, n)


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=9000), cuts=st.lists(st.integers(0, 9000), max_size=6),
       length=st.integers(0, 200), mode=st.sampled_from(["plain", "keyed", "derive"]))
def test_streaming_equals_one_shot(data: bytes, cuts: list[int], length: int, mode: str) -> None:
    kwargs: dict = {}
    if mode == "keyed":
        kwargs = {"key": b"k" * 32}
    elif mode == "derive":
        kwargs = {"context": "ctx"}
    b, s = Blake3(**kwargs), Sha256()
    prev = 0
    for c in [*sorted(min(c, len(data)) for c in cuts), len(data)]:
        b.update(data[prev:c])
        s.update(bytearray(data[prev:c]))
        prev = c
    pkg_kwargs = {"key": kwargs["key"]} if mode == "keyed" else (
        {"derive_key_context": "ctx"} if mode == "derive" else {})
    assert b.digest(length) == blake3_pkg().blake3(data, **pkg_kwargs).digest(length)
    assert b.digest() == blake3(data, **kwargs)
    assert s.digest() == hashlib.sha256(data).digest()
    assert s.hexdigest() == hashlib.sha256(data).hexdigest()
    s.update(b"more")  # digest() did not end the stream
    assert s.digest() == hashlib.sha256(data + b"more").digest()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 70_000), cuts=st.lists(st.integers(0, 70_000), max_size=4),
       length=st.integers(1, 300), mode=st.sampled_from(["plain", "keyed", "derive"]))
def test_every_blake3_backend_streams_like_the_package(n: int, cuts: list[int], length: int,
                                                        mode: str) -> None:
    # Each backend (avx512 included where the CPU has it) against the blake3 package: random
    # split points, every mode, extended output; lengths up to 68 chunks reach the 16-way groups.
    data = RNG_DATA[:n]
    kwargs: dict = {"key": b"K" * 32} if mode == "keyed" else (
        {"context": "ctx 2026"} if mode == "derive" else {})
    pkg_kwargs = {"key": b"K" * 32} if mode == "keyed" else (
        {"derive_key_context": "ctx 2026"} if mode == "derive" else {})
    want = blake3_pkg().blake3(data, **pkg_kwargs).digest(length)
    try:
        for name in _backends("blake3"):
            assert force_backend("blake3", name)
            b, prev = Blake3(**kwargs), 0
            for c in [*sorted(min(c, n) for c in cuts), n]:
                b.update(data[prev:c])
                prev = c
            assert b.digest(length) == want, (name, n, cuts)
    finally:
        assert force_backend("blake3", "auto")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}


def test_avx512_is_chosen_where_the_cpu_and_os_have_it() -> None:
    # Linux lists avx512f only when the kernel saves the ZMM state, the condition our xgetbv
    # check reads too: there the 16-way backend must be available and picked by default.
    import platform

    flags = _cpu_flags()
    if not flags:  # no /proc/cpuinfo (not Linux): nothing to compare the detection with
        return
    if platform.machine() not in {"x86_64", "AMD64"} or "avx512f" not in flags:
        assert not force_backend("blake3", "avx512")
        return
    assert "avx2" in flags
    assert force_backend("blake3", "avx512")
    assert backends()["blake3"] == "avx512"
    assert force_backend("blake3", "auto")
    assert backends()["blake3"] == "avx512"


def test_copy_is_independent() -> None:
    s = Sha256(b"abc")
    t = s.copy()
    t.update(b"def")
    assert s.digest() == hashlib.sha256(b"abc").digest()
    assert t.digest() == hashlib.sha256(b"abcdef").digest()


def test_input_types_and_errors() -> None:
    data = RNG_DATA[:5000]
    want = hashlib.sha256(data).digest()
    assert sha256(bytearray(data)) == want
    assert sha256(memoryview(data)) == want
    assert sha256(array("B", data)) == want
    with pytest.raises(TypeError):
        sha256("text")
    with pytest.raises(ValueError, match="32 bytes"):
        blake3(b"", key=b"short")
    with pytest.raises(ValueError, match="not both"):
        blake3(b"", key=b"k" * 32, context="c")
    with pytest.raises(ValueError):
        Blake3().digest(-1)
    assert blake3(b"", length=0) == b""
    assert len(blake3(b"x", length=131)) == 131


def test_backends_are_named() -> None:
    b = backends()
    assert b["sha256"] in {"shani", "portable"}
    assert b["blake3"] in {"avx512", "avx2", "sse41", "portable"}
    assert not force_backend("blake3", "no-such-backend")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 70_000), start=st.integers(0, 64))
def test_random_lengths_and_offsets(n: int, start: int) -> None:
    # Unaligned views into a larger buffer: no backend may assume alignment.
    data = memoryview(RNG_DATA)[start:start + n]
    assert blake3(data) == blake3_pkg().blake3(data).digest()
    assert sha256(data) == hashlib.sha256(data).digest()


def test_calls_release_the_gil() -> None:
    # With the switch interval made huge, the interpreter never takes the GIL from a running
    # thread: the main thread can get back in while the worker is still hashing only if the
    # native call released the GIL.
    import sys
    import threading

    big = random.Random(3).randbytes(96 << 20)
    started, done = threading.Event(), threading.Event()

    def worker() -> None:
        started.set()
        sha256(big)
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        during_call = not done.is_set()
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert during_call
