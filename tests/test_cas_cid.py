"""CID helpers: known vectors, parse errors naming the string, round trips, verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

from cheng_build.cas.cid import (
    CidError,
    cid_from_bytes,
    cid_from_digest,
    cid_str,
    make_cid,
    parse_cid,
    verify_block,
)
from cheng_build.core.errors import DigestMismatchError

HELLO = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def test_hello_vector() -> None:
    assert str(make_cid(b"hello")) == HELLO
    assert cid_str(make_cid(b"hello")) == HELLO


def test_fast_constructor_equals_public_one() -> None:
    digest = hashlib.sha256(b"x").digest()
    ours = cid_from_digest(digest, "dag-pb")
    public = CID("base32", 1, "dag-pb", ("sha2-256", digest))
    assert ours == public and str(ours) == str(public)


def test_blake3_cid_matches_blake3_package() -> None:
    import blake3

    c = make_cid(b"abc", "raw", "blake3")
    assert c.raw_digest == blake3.blake3(b"abc").digest()
    assert c.hashfun.name == "blake3" and str(c).startswith("bafkr4i")


def test_cidv0_parses_to_v1() -> None:
    v0 = "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"
    c = parse_cid(v0)
    assert c.version == 1 and str(c).startswith("bafybei")
    assert c.raw_digest == CID.decode(v0).raw_digest


@pytest.mark.parametrize("bad", ["", "hello", "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye",
                                 "zzzz", "b" + "a" * 10, "Qm123"])
def test_bad_strings_name_the_string(bad: str) -> None:
    with pytest.raises(CidError) as info:
        parse_cid(bad)
    if bad:
        assert bad in info.value.what


def test_unsupported_codec_is_refused() -> None:
    dagcbor = CID("base32", 1, "dag-cbor", ("sha2-256", hashlib.sha256(b"").digest()))
    with pytest.raises(CidError, match="codec"):
        parse_cid(str(dagcbor))


@settings(deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["raw", "dag-pb"]), st.sampled_from(["sha2-256", "blake3"]))
def test_round_trips(data: bytes, codec: str, hash: str) -> None:
    c = make_cid(data, codec, hash)
    assert parse_cid(str(c)) == c
    assert parse_cid(c.encode("base58btc")) == c
    assert cid_from_bytes(bytes(c)) == c
    assert cid_str(c) == str(c)
    verify_block(c, data)


@settings(deadline=None)
@given(st.text(max_size=80))
def test_parse_never_crashes(s: str) -> None:
    try:
        c = parse_cid(s)
    except CidError:
        return
    assert c.version == 1


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0))
def test_verify_detects_any_flip(data: bytes, where: int) -> None:
    c = make_cid(data)
    bad = bytearray(data)
    bad[where % len(data)] ^= 0x01
    with pytest.raises(DigestMismatchError) as info:
        verify_block(c, bytes(bad))
    assert str(c) in info.value.what
