"""SimHash64: token hash vs XXH64, fingerprints vs a reference and the PyPI simhash package."""

from __future__ import annotations

import itertools

import pytest
from helpers_native import simhash64 as ref_simhash64
from helpers_native import xxh64
from helpers_parts import import_part
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build._native import hamming, pairs_within, simhash64, simhash64_batch, token_hash
from cheng_build._native import simhash as native_simhash
from cheng_build._native._loader import ffi, lib

tokens_st = st.lists(st.one_of(st.text(max_size=12), st.binary(max_size=40)), max_size=300)
fp_st = st.integers(0, 2**64 - 1)


def test_token_hash_is_xxh64_published_vectors() -> None:
    # XXH64, seed 0: published values for "" and "abc".
    assert token_hash(b"") == 0xEF46DB3751D8E999
    assert token_hash("abc") == 0x44BC2CF5AD770999
    assert token_hash("中文") == token_hash("中文".encode())


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_token_hash_matches_reference_xxh64(data: bytes) -> None:
    assert token_hash(data) == xxh64(data)


@settings(max_examples=150, deadline=None)
@given(tokens=tokens_st)
def test_fingerprint_matches_reference(tokens: list) -> None:
    assert simhash64(tokens) == ref_simhash64(tokens)


@settings(max_examples=100, deadline=None)
@given(tokens=st.lists(st.text(max_size=10), min_size=1, max_size=400))
def test_fingerprint_matches_simhash_package_with_our_token_hash(tokens: list[str]) -> None:
    # The package's aggregation (weights 1, bit set when more than half the tokens have it) is the
    # oracle; only the token hash is swapped for ours, given as the 8 big-endian bytes it reads.
    simhash_pkg = import_part("simhash", "pip install '.[test]' (scripts/test.sh does)")
    theirs = simhash_pkg.Simhash(tokens, hashfunc=lambda b: xxh64(b).to_bytes(8, "big")).value
    assert simhash64(tokens) == theirs


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(tokens_st, max_size=12))
def test_batch_equals_one_by_one(docs: list[list]) -> None:
    assert simhash64_batch(docs) == [simhash64(d) for d in docs] == [ref_simhash64(d) for d in docs]


@settings(max_examples=80, deadline=None)
@given(docs=st.lists(st.lists(st.text(max_size=40), max_size=60), max_size=8))
def test_str_documents_read_in_place_equal_the_packed_path(docs: list[list[str]]) -> None:
    # The object-reading kernel (str tokens, C reads the lists in place) against the NUL-joined
    # path and the reference: tokens of every length around the 8- and 16-byte boundaries of the
    # short-token hash, NULs, non-ASCII text, empty tokens and documents.
    direct = native_simhash._pylists([list(d) for d in docs])
    assert direct is not None, "the in-place path is unavailable on CPython"
    assert direct == [ref_simhash64(d) for d in docs]
    assert direct == [native_simhash.simhash64_batch([[t.encode() for t in d]])[0] for d in docs]


def test_object_layout_is_confirmed_on_this_interpreter() -> None:
    # CPython 3.11 on 64-bit: C may read lists and compact ASCII strings in place.
    import ctypes

    layout = native_simhash._object_layout(ctypes, ctypes.pythonapi)
    assert layout is not None
    assert layout[3] == id(str)


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.lists(st.text(max_size=24), max_size=40), max_size=6))
def test_reading_in_place_equals_the_api_calls(docs: list[list[str]]) -> None:
    # The same kernel with the layout and without it (every token through the C API calls);
    # str subclasses are not read in place (their type differs) and must hash the same.
    import os

    os.environ["CHENG_SIMHASH_CALLS_ONLY"] = "1"
    try:
        calls_only = native_simhash._make_pylists()
    finally:
        del os.environ["CHENG_SIMHASH_CALLS_ONLY"]
    in_place = native_simhash._make_pylists()
    assert calls_only is not None and in_place is not None
    assert calls_only.api.list_items_off == 0 and in_place.api.list_items_off != 0  # type: ignore[attr-defined]

    class Sub(str):
        pass

    mixed = [[Sub(t) if i % 3 == 0 else t for i, t in enumerate(d)] for d in docs]
    want = [ref_simhash64(d) for d in docs]
    assert in_place([list(d) for d in docs]) == want
    assert calls_only([list(d) for d in docs]) == want
    assert in_place(mixed) == want


def test_in_place_short_tokens_of_every_length() -> None:
    # Batches of eight ASCII tokens of 0-16 bytes (the branch-free staging reads the 16 bytes
    # that end at each token's NUL), in every rotation, against the reference.
    words = ["abcdefghijklmnop"[:n] for n in range(17)]
    docs = [[words[(r + i) % 17] for i in range(16)] for r in range(17)]
    docs += [[w] * 8 for w in words]
    assert native_simhash._pylists(docs) == [ref_simhash64(d) for d in docs]


def test_in_place_path_leaves_other_batches_to_the_packed_path() -> None:
    assert native_simhash._pylists([["a", b"b"]]) is None  # a bytes token: not for this path
    assert native_simhash._pylists([[b"a"]]) is None
    with pytest.raises(UnicodeEncodeError):
        native_simhash._pylists([["ok", "\ud800"]])
    # Tuples and generators are made lists first; the result is the same.
    assert simhash64_batch([("p", "q"), iter(["r"])]) == [ref_simhash64(["p", "q"]), ref_simhash64(["r"])]


def test_separator_edge_cases_take_the_exact_path() -> None:
    # NUL inside tokens, empty tokens, mixed str/bytes, memoryview tokens, generators.
    docs = [["a\x00b", "c"], ["", ""], [""], ["x", b"x"], [memoryview(b"ab"), b"\x00"], []]
    assert simhash64_batch(docs) == [ref_simhash64([bytes(t) if isinstance(t, memoryview) else t for t in d])
                                     for d in docs]
    assert simhash64(t for t in ["p", "q"]) == ref_simhash64(["p", "q"])
    assert simhash64([]) == 0


def test_bad_documents() -> None:
    with pytest.raises(TypeError, match="sequence of tokens"):
        simhash64("a whole string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        simhash64([1, 2])  # type: ignore[list-item]
    with pytest.raises(UnicodeEncodeError):
        simhash64(["\ud800"])


def test_similar_documents_are_close() -> None:
    words = [f"w{i % 97}_{i}" for i in range(1000)]
    edited = list(words)
    edited[500:510] = ["changed"] * 10
    other = [f"z{i}" for i in range(1000)]
    a, b, c = simhash64_batch([words, edited, other])
    assert hamming(a, b) < hamming(a, c)


@settings(max_examples=200, deadline=None)
@given(a=fp_st, b=fp_st)
def test_hamming(a: int, b: int) -> None:
    assert hamming(a, b) == bin(a ^ b).count("1") == lib.cb_hamming64(a, b)


@settings(max_examples=60, deadline=None)
@given(fps=st.lists(st.one_of(fp_st, st.sampled_from([0, 1, 3, 2**64 - 1])), max_size=60),
       d=st.integers(0, 64))
def test_pairs_within_matches_brute_force(fps: list[int], d: int) -> None:
    want = [(i, j, hamming(fps[i], fps[j])) for i, j in itertools.combinations(range(len(fps)), 2)
            if hamming(fps[i], fps[j]) <= d]
    assert pairs_within(fps, d) == want


def test_pairs_within_grows_its_output() -> None:
    fps = [0] * 100  # 4,950 pairs: more than the first guess of room
    got = pairs_within(fps, 0)
    assert len(got) == 4950 and got[0] == (0, 1, 0) and got[-1] == (98, 99, 0)


def test_pairs_within_bad_arguments() -> None:
    for bad_d in (-1, 65, 1.5, True):
        with pytest.raises(ValueError, match="d must be"):
            pairs_within([1, 2], bad_d)  # type: ignore[arg-type]
    for bad in ([-1], [2**64], ["x"]):
        with pytest.raises(ValueError, match="fingerprints"):
            pairs_within(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        hamming(-1, 0)


def test_from_hashes_kernel() -> None:
    hashes = [xxh64(t.encode()) for t in ("a", "b", "c", "a")]
    arr = ffi.new("uint64_t[]", hashes)
    assert lib.cb_simhash64_from_hashes(arr, 4) == ref_simhash64(["a", "b", "c", "a"])


def _pairs_with(fn: object, fps: list[int], d: int) -> list[tuple[int, int, int]]:
    arr = ffi.new("uint64_t[]", fps)
    cap = fn(arr, len(fps), d, ffi.NULL, 0)  # type: ignore[operator]  # count only
    out = ffi.new("uint64_t[]", 3 * cap + 3)
    total = fn(arr, len(fps), d, out, cap)  # type: ignore[operator]
    assert total == cap
    flat = list(ffi.unpack(out, 3 * total))
    return list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), d=st.integers(0, 12),
       planted=st.integers(0, 200))
def test_indexed_pairs_equal_brute_force(seed: int, n: int, d: int, planted: int) -> None:
    import random

    rng = random.Random(seed)
    fps = [rng.getrandbits(64) for _ in range(n)]
    for _ in range(planted if n else 0):  # near-duplicates at every distance up to d + 2
        base = rng.choice(fps)
        flip = rng.sample(range(64), rng.randint(0, d + 2))
        fps.append(base ^ sum(1 << b for b in flip))
    fps += [fps[0]] * 3 if fps else []
    want = _pairs_with(lib.cb_pairs_within_brute, fps, d)
    assert _pairs_with(lib.cb_pairs_within_indexed, fps, d) == want
    assert pairs_within(fps, d) == want
