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
    assert bytes(ours) == bytes(public) and str(ours) == str(public) and ours.digest == public.digest


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


# --- the multiformats-free base32 codec and CID text fast path ------------------------------

_ALPHA = "abcdefghijklmnopqrstuvwxyz234567"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_b32_equals_the_standard_library(raw: bytes) -> None:
    import base64

    from cheng_build.cas.cid import b32_decode, b32_encode

    text = b32_encode(raw)
    assert text == base64.b32encode(raw).decode("ascii").lower().rstrip("=")
    assert b32_decode(text) == (raw if raw else None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHA + "A1=", min_size=1, max_size=70))
def test_b32_decode_takes_only_canonical_text(text: str) -> None:
    import base64
    import binascii

    from cheng_build.cas.cid import b32_decode, b32_encode

    try:
        want: bytes | None = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        want = None
    if want is not None and (b32_encode(want) != text or not want):
        want = None  # the standard library ignores non-zero spare bits and case; we refuse them
    assert b32_decode(text) == want


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.sampled_from(["raw", "dag-pb"]),
       st.sampled_from(["sha2-256", "blake3"]))
def test_fast_cid_text_equals_multiformats(digest: bytes, codec: str, hash: str) -> None:
    from cheng_build.cas.cid import cid_text, cid_text_bytes

    public = CID("base32", 1, codec, (hash, digest))
    text = str(public)
    assert cid_text(bytes(public)) == text
    assert cid_text_bytes(text) == bytes(public)
    ours = parse_cid(text)
    assert str(ours) == text and bytes(ours) == bytes(public) == bytes(CID.decode(text))
    assert cid_str(ours) == text


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 58), st.sampled_from(_ALPHA))
def test_altered_cid_text_parses_as_multiformats_says(digest: bytes, where: int, ch: str) -> None:
    """Any edit of a CID string either takes the fast path to the same CID multiformats decodes,
    or goes to multiformats itself: the two never disagree."""
    from cheng_build.cas.cid import cid_text_bytes

    text = str(CID("base32", 1, "raw", ("sha2-256", digest)))
    text = text[:where] + ch + text[where + 1:] if where else text
    try:
        expected = CID.decode(text)
    except Exception:
        expected = None
    try:
        got = parse_cid(text)
    except CidError:
        got = None
        assert cid_text_bytes(text) is None
    if expected is not None and got is not None:
        assert bytes(got) == bytes(expected)
    elif cid_text_bytes(text) is not None:
        raise AssertionError(f"fast path took {text} that multiformats refuses")


@pytest.mark.parametrize("text", ["bafkqaaa", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
                                  "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
                                  "BAFKREIBM6JG3UX5QUMHCN2B3FLC3TYU6DMLB4XA7U5BF44YEGNRJHC4YEQ"])
def test_other_forms_take_the_multiformats_path(text: str) -> None:
    from cheng_build.cas.cid import cid_text_bytes

    assert cid_text_bytes(text) is None
    try:
        c = parse_cid(text)
    except CidError:
        return
    public = CID.decode(text)  # a CIDv0 is normalised to CIDv1 base32
    assert (c.version, c.codec.code, c.digest) == (1, public.codec.code, public.digest)


def test_multiformats_is_loaded_only_for_rare_multibases() -> None:
    """chengc, the lock hook and publish start by importing this module; CID objects, base32 and
    base58 text, CIDv0 and hashing must not pay for multiformats (~30 ms): only a CID text in a
    multibase we do not decode ourselves (base36 here) loads it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import cheng_build.cas.cid as c\n"
        f"raw = c.cid_text_bytes({HELLO!r})\n"
        f"assert raw is not None and c.cid_text(raw) == {HELLO!r}\n"
        "c.hasher_for('sha2-256')(b'x')\n"
        f"assert str(c.parse_cid({HELLO!r})) == {HELLO!r}\n"
        f"v1 = c.parse_cid({HELLO!r})\n"
        "assert c.parse_cid(v1.encode('base58btc')) == v1\n"
        "assert str(c.parse_cid('QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR')).startswith('bafybei')\n"
        "assert c.cid_from_bytes(bytes(v1)) == v1 and c.make_cid(b'hello') == v1\n"
        "assert 'multiformats' not in sys.modules, 'loaded early'\n"
        "k = 'k2cwue9rqdypmt3thjky14z1tk9fi9f0o5w7b3ofitdewlcf87lismqs'\n"
        f"assert str(c.parse_cid(k)) == {HELLO!r}\n"
        "assert 'multiformats' in sys.modules\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       timeout=60)
    assert p.returncode == 0, p.stderr
