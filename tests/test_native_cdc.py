"""FastCDC: the C chunker against docs/chunker.md's reference, pyfastcdc, and its own invariants."""

from __future__ import annotations

import os
import random
from array import array
from pathlib import Path

import pytest
from helpers_native import chunks as ref_chunks
from helpers_native import gear_table, mask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build._native import ChunkerParams, cdc_chunks, cdc_file_chunks
from cheng_build._native._loader import ffi, lib

SMALL_AVGS = [256, 512, 1024, 2048]


@st.composite
def small_params(draw: st.DrawFn) -> ChunkerParams:
    avg = draw(st.sampled_from(SMALL_AVGS))
    min_size = draw(st.integers(64, avg))
    max_size = draw(st.integers(avg, 4 * avg))
    return ChunkerParams(min_size, avg, max_size, draw(st.integers(0, 3)))


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_gear_table_and_masks_follow_the_document() -> None:
    out = ffi.new("uint64_t[256]")
    lib.cb_cdc_gear(out)
    assert list(out) == gear_table()
    for bits in range(1, 49):
        assert lib.cb_cdc_mask(bits) == mask(bits)
        assert bin(mask(bits)).count("1") == bits
        assert mask(bits) >> 63 == 0
    p = ChunkerParams()
    state = ffi.new("uint8_t[]", lib.cb_cdc_size())
    c = ffi.cast("cb_cdc *", state)
    assert lib.cb_cdc_init(c, p.min_size, p.avg_size, p.max_size, p.normalization) == 0
    assert lib.cb_cdc_mask_s(c) == mask(20) and lib.cb_cdc_mask_l(c) == mask(16)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=small_params(), data=st.binary(max_size=12000))
def test_matches_reference_on_random_input(params: ChunkerParams, data: bytes) -> None:
    ours = cdc_chunks(data, params)
    assert ours == ref_chunks(data, params.min_size, params.avg_size, params.max_size, params.normalization)


@settings(max_examples=40, deadline=None)
@given(params=small_params(), n=st.integers(0, 60000), seed=st.integers(0, 2**32 - 1))
def test_chunks_cover_input_within_bounds(params: ChunkerParams, n: int, seed: int) -> None:
    data = random_bytes(n, seed)
    out = cdc_chunks(data, params)
    assert sum(length for _, length in out) == n
    pos = 0
    for i, (off, length) in enumerate(out):
        assert off == pos
        assert 0 < length <= params.max_size
        if i < len(out) - 1:
            assert length >= params.min_size & ~1
        pos += length


def test_low_entropy_input_matches_reference() -> None:
    p = ChunkerParams(64, 256, 1024, 2)
    out = cdc_chunks(bytes(10000), p)
    ref = ref_chunks(bytes(10000), 64, 256, 1024, 2)
    assert out == ref


def _pyfastcdc_chunks(data: bytes, avg: int, min_size: int, max_size: int, nc: int) -> list[tuple[int, int]]:
    from pyfastcdc import FastCDC

    return [(c.offset, c.length) for c in FastCDC(avg, min_size=min_size, max_size=max_size,
                                                  normalized_chunking=nc).cut_buf(data)]


def _compat_chunks(data: bytes, avg: int, min_size: int, max_size: int, nc: int, threads: int = 1) -> list:
    """Our C chunker with pyfastcdc's gear table and mask table (read from pyfastcdc at run time)."""
    from pyfastcdc.py import constants

    bits = avg.bit_length() - 1
    state = ffi.new("uint8_t[]", lib.cb_cdc_size())
    c = ffi.cast("cb_cdc *", state)
    gear = ffi.new("uint64_t[256]", list(constants.GEAR))
    rc = lib.cb_cdc_init_custom(c, min_size, avg, max_size, constants.MASKS[bits + nc],
                                constants.MASKS[bits - nc], gear)
    assert rc == 0
    cap = lib.cb_cdc_max_chunks(c, len(data)) + 1
    ends = ffi.new("uint64_t[]", cap)
    buf = ffi.from_buffer("uint8_t[]", data)
    n = lib.cb_cdc_chunk(c, buf, len(data), 1, threads, ends, cap, ffi.NULL)
    out, prev = [], 0
    for e in ffi.unpack(ends, n):
        out.append((prev, e - prev))
        prev = e
    return out


@settings(max_examples=40, deadline=None)
@given(avg=st.sampled_from([256, 1024, 4096, 16384]), nc=st.integers(0, 3), extra=st.integers(0, 3),
       n=st.integers(0, 300_000), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_same_cut_points_as_pyfastcdc_with_its_tables(avg: int, nc: int, extra: int, n: int, seed: int,
                                                       data: st.DataObject) -> None:
    # The cut rule is FastCDC-2020's as pyfastcdc runs it; with its gear and masks we must agree.
    min_size = data.draw(st.integers(max(64, avg // 4), avg))
    max_size = data.draw(st.integers(max(1024, avg), max(1024, avg * (2 + extra))))
    buf = random_bytes(n, seed)
    ours = _compat_chunks(buf, avg, min_size, max_size, nc, threads=data.draw(st.integers(1, 4)))
    assert ours == _pyfastcdc_chunks(buf, avg, min_size, max_size, nc)


def test_same_cut_points_as_pyfastcdc_at_default_sizes() -> None:
    buf = random_bytes(24 << 20, 7)
    ours = _compat_chunks(buf, 262144, 65536, 1048576, 2, threads=2)
    assert len(ours) > 40
    assert ours == _pyfastcdc_chunks(buf, 262144, 65536, 1048576, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=small_params(), n=st.integers(0, 200_000), seed=st.integers(0, 2**32 - 1),
       factor=st.integers(2, 6))
def test_streaming_equals_whole_buffer(tmp_path: Path, params: ChunkerParams, n: int, seed: int,
                                       factor: int) -> None:
    data = random_bytes(n, seed)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    # A small window forces many refills, each keeping an undecided tail.
    window = factor * params.max_size
    assert list(cdc_file_chunks(path, params, window=window)) == cdc_chunks(data, params)


def test_streaming_equals_whole_buffer_default_params(tmp_path: Path) -> None:
    data = random_bytes(40 << 20, 3)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert list(cdc_file_chunks(path)) == cdc_chunks(data)


@settings(max_examples=40, deadline=None)
@given(params=small_params(), n=st.integers(0, 400_000), seed=st.integers(0, 2**32 - 1),
       threads=st.integers(2, 9))
def test_threads_give_identical_cut_points(params: ChunkerParams, n: int, seed: int, threads: int) -> None:
    data = random_bytes(n, seed)
    assert cdc_chunks(data, params, threads=threads) == cdc_chunks(data, params)


def test_threads_on_repetitive_input() -> None:
    # Segments of a periodic input all start "in phase": the merge must still follow the true chain.
    p = ChunkerParams(64, 256, 1024, 1)
    data = (random_bytes(3000, 1) * 200) + bytes(50000) + random_bytes(7777, 2) * 30
    for t in (2, 3, 4, 7, 16):
        assert cdc_chunks(data, p, threads=t) == cdc_chunks(data, p)


def test_one_byte_insertion_changes_at_most_three_chunks() -> None:
    data = random_bytes(64 << 20, 11)
    before = cdc_chunks(data, threads=2)
    after = cdc_chunks(b"\x5a" + data, threads=2)
    shifted = {(off + 1, length) for off, length in before}
    changed = [c for c in after if c not in shifted]
    assert len(before) > 150
    assert len(changed) <= 3


def test_input_types_without_copy() -> None:
    data = random_bytes(100_000, 5)
    p = ChunkerParams(64, 1024, 4096, 2)
    want = cdc_chunks(data, p)
    assert cdc_chunks(bytearray(data), p) == want
    assert cdc_chunks(memoryview(data), p) == want
    assert cdc_chunks(array("B", data), p) == want
    assert cdc_chunks(b"", p) == []
    assert cdc_chunks(b"abc", p) == [(0, 3)]
    with pytest.raises(TypeError):
        cdc_chunks("text", p)
    with pytest.raises((TypeError, ValueError, BufferError)):
        cdc_chunks(memoryview(data)[::2], p)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"min_size": 300000}, "min_size"),
        ({"min_size": 0}, "min_size"),
        ({"min_size": 63, "avg_size": 256, "max_size": 1024}, "min_size"),
        ({"avg_size": 300000}, "power of two"),
        ({"avg_size": 0}, "avg_size"),
        ({"max_size": 100000}, "max_size"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": 2**31}, "max_size"),
        ({"normalization": 4}, "normalization"),
        ({"min_size": -1}, "negative"),
        ({"avg_size": 2**70}, "avg_size"),
        ({"normalization": True}, "int"),
        ({"min_size": 1.5}, "int"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ChunkerParams(**kwargs)


def test_spec_round_trip() -> None:
    p = ChunkerParams(1024, 4096, 16384, 1)
    assert p.spec == "fastcdc-v1-1024-4096-16384-n1"
    assert ChunkerParams.from_spec(p.spec) == p
    assert ChunkerParams.from_spec(ChunkerParams().spec) == ChunkerParams()
    for bad in ("fastcdc-1-2-3", "size-262144", "fastcdc-v1-64-100-1024-n2"):
        with pytest.raises(ValueError):
            ChunkerParams.from_spec(bad)


def test_file_errors_and_bad_window(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(cdc_file_chunks(tmp_path / "missing"))
    with pytest.raises(ValueError, match="window"):
        cdc_file_chunks(tmp_path / "missing", ChunkerParams(), window=1 << 20)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert list(cdc_file_chunks(empty)) == []
    small = tmp_path / "small"
    small.write_bytes(os.urandom(1000))
    assert list(cdc_file_chunks(small)) == [(0, 1000)]


@settings(max_examples=200, deadline=None)
@given(min_size=st.integers(-5, 3000), avg_size=st.integers(-5, 5000), max_size=st.integers(-5, 20000),
       normalization=st.integers(-2, 5), seed=st.integers(0, 2**32 - 1))
def test_any_parameters_are_rejected_or_chunk_correctly(min_size: int, avg_size: int, max_size: int,
                                                         normalization: int, seed: int) -> None:
    valid = (64 <= min_size <= avg_size <= max_size and avg_size >= 256 and avg_size & (avg_size - 1) == 0
             and 0 <= normalization <= 3)
    if not valid:
        with pytest.raises(ValueError):
            ChunkerParams(min_size, avg_size, max_size, normalization)
        return
    params = ChunkerParams(min_size, avg_size, max_size, normalization)
    data = random_bytes(3 * max_size + 17, seed)
    assert cdc_chunks(data, params) == ref_chunks(data, min_size, avg_size, max_size, normalization)


def test_reader_grows_a_window_that_decides_nothing(tmp_path: Path) -> None:
    # A window smaller than max_size (as when a small file grows while read) must grow, not stall.
    from cheng_build._native import chunking

    p = ChunkerParams(64, 256, 1024, 2)
    data = random_bytes(50_000, 9)
    path = tmp_path / "g.bin"
    path.write_bytes(data)
    got = list(chunking._file_chunks(path, chunking._state(p), 1))
    assert got == cdc_chunks(data, p)
