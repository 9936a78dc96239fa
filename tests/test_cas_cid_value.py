"""Our CID value (``cas.cid_value.CID``) against multiformats as the oracle.

Binary and text CIDs built by multiformats decode to the same version, codec, multihash, bytes and
text; bytes and text that multiformats refuses as malformed we refuse too (it also refuses codes
missing from its table, which we decode: a dag-pb link may name any codec); parse_cid narrows to
raw/dag-pb and sha2-256/blake3 with a clear CidError.
"""

from __future__ import annotations

import hashlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID as MfCID
from multiformats import multibase, multicodec, multihash

from cheng_build.cas import varint
from cheng_build.cas.cid import CidError, cid_from_bytes, decode_cid_bytes, parse_cid
from cheng_build.cas.cid_value import CID, b58_decode, b58_encode

# (code, digest size) of multihashes multiformats knows, ours among them.
_HASHES = [(0x12, 32), (0x1E, 32), (0x13, 64), (0x00, 5), (0x11, 20), (0xB220, 32), (0x16, 32)]
_CODECS = [0x55, 0x70, 0x71, 0x0129, 0x72, 0x51, 0x0200]
_OURS = {0x55, 0x70}


def _mh(code: int, digest: bytes) -> bytes:
    return varint.encode(code) + varint.encode(len(digest)) + digest


@st.composite
def mf_cids(draw: st.DrawFn) -> MfCID:
    """A CID multiformats builds: CIDv0, or CIDv1 of a known codec and multihash."""
    code, size = draw(st.sampled_from(_HASHES))
    digest = draw(st.binary(min_size=size, max_size=size))
    if draw(st.booleans()) and code == 0x12:
        return MfCID("base58btc", 0, "dag-pb", _mh(code, digest))
    return MfCID("base32", 1, multicodec.get(code=draw(st.sampled_from(_CODECS))), _mh(code, digest))


def _same(ours: CID, mf: MfCID) -> None:
    # multiformats' ``hashfun``/``raw_digest`` also check its hash implementations (keccak needs
    # pycryptodome) and their digest sizes: the multihash itself is read with ``unwrap_raw``.
    code, raw_digest = multihash.unwrap_raw(mf.digest)
    assert bytes(ours) == bytes(mf)
    assert (ours.version, ours.codec.code, ours.hashfun.code) == (mf.version, mf.codec.code, code)
    assert ours.digest == bytes(mf.digest) and ours.raw_digest == bytes(raw_digest)
    for mine, theirs in ((ours.codec, mf.codec), (ours.hashfun, multicodec.get(code=code))):
        assert mine.name == theirs.name or mine.name == f"0x{theirs.code:x}"  # names we list agree
    if mf.version == 0:
        assert str(ours) == str(mf) == ours.encode("base58btc")
    else:
        assert str(ours) == mf.encode("base32") == ours.encode("base32")
        assert ours.encode("base58btc") == mf.encode("base58btc")


@settings(max_examples=300, deadline=None)
@given(mf_cids())
def test_decodes_what_multiformats_builds(mf: MfCID) -> None:
    _same(CID.decode(bytes(mf)), mf)
    _same(CID.decode(memoryview(bytes(mf))), mf)
    _same(CID.decode(str(mf)), mf)
    if mf.version == 1:
        for base in ("base32", "base58btc", "base36", "base16", "base32upper", "base64url"):
            _same(CID.decode(mf.encode(base)), mf)


@settings(max_examples=200, deadline=None)
@given(mf_cids())
def test_equality_hash_and_pickle(mf: MfCID) -> None:
    a, b = CID.decode(bytes(mf)), CID.decode(str(mf))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert a != bytes(mf) and a != str(mf) and a != mf  # one type: never equal to other objects
    if mf.version == 0:
        v1 = CID.v1(0x70, a.digest)
        assert v1 != a and v1.digest == a.digest


@st.composite
def cid_like_bytes(draw: st.DrawFn) -> bytes:
    """Bytes near a binary CID: odd versions, codes, sizes, non-minimal varints, truncation."""
    def v(n: int) -> bytes:
        enc = varint.encode(n)
        if draw(st.integers(0, 9)) == 0:  # a redundant continuation group: non-minimal
            enc = bytes([enc[0] | 0x80]) + enc[1:] + b"\x00" if len(enc) == 1 else enc + b"\x00"
        return enc

    version = draw(st.sampled_from([1, 1, 1, 0, 2, 3, 18]))
    codec = draw(st.sampled_from([*_CODECS, 0x7777, 0x12]))
    code, size = draw(st.sampled_from([*_HASHES, (0x12, 31), (0x9999, 8)]))
    digest = draw(st.binary(min_size=0, max_size=70))
    if draw(st.booleans()):
        digest = (digest * 70)[:size] if digest else bytes(size)
    raw = v(version) + v(codec) + v(code) + v(size) + digest
    if draw(st.integers(0, 5)) == 0:
        raw = raw[:draw(st.integers(0, len(raw)))]
    if draw(st.integers(0, 5)) == 0:
        raw = b"\x12\x20" + digest[:32].ljust(32, b"\0")[: draw(st.sampled_from([32, 32, 31, 33]))]
    return raw


@settings(max_examples=600, deadline=None)
@given(cid_like_bytes())
def test_binary_decoding_agrees_with_multiformats(raw: bytes) -> None:
    try:
        mf: MfCID | None = MfCID.decode(raw)
        unknown = False
    except KeyError:  # a code missing from multiformats' table: malformedness is ours to judge
        mf, unknown = None, True
    except (ValueError, IndexError):
        mf, unknown = None, False
    try:
        ours: CID | None = CID.decode(raw)
    except ValueError:
        ours = None
    if mf is not None:
        assert ours is not None
        _same(ours, mf)
    elif not unknown:
        assert ours is None, f"we accept {raw.hex()}, which multiformats refuses"
    if ours is not None:
        assert bytes(ours) == raw and CID.decode(bytes(ours)) == ours  # one binary form


_TEXT_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ0189Qm=_-"


@settings(max_examples=400, deadline=None)
@given(mf_cids(), st.sampled_from(["base32", "base58btc", "base36", "base16"]), st.integers(0, 80),
       st.sampled_from(_TEXT_ALPHABET), st.booleans())
def test_text_decoding_agrees_with_multiformats(mf: MfCID, base: str, where: int, ch: str,
                                                cut: bool) -> None:
    text = str(mf) if mf.version == 0 else mf.encode(base)
    where %= len(text) + 1
    text = text[:where] if cut else text[:where] + ch + text[where + 1:]
    try:
        want: MfCID | None = MfCID.decode(text)
        unknown = False
    except KeyError:
        want, unknown = None, True
    except Exception:  # multiformats raises several unrelated types for bad text
        want, unknown = None, False
    try:
        got: CID | None = CID.decode(text)
    except ValueError:
        got = None
    if want is not None:
        assert got is not None
        _same(got, want)
    elif not unknown:
        assert got is None, f"we accept {text!r}, which multiformats refuses"


@settings(max_examples=300, deadline=None)
@given(mf_cids())
def test_parse_cid_normalises_ours_and_refuses_the_rest(mf: MfCID) -> None:
    ours = mf.codec.code in _OURS and mf.hashfun.code in (0x12, 0x1E) and len(mf.raw_digest) == 32
    texts = [str(mf)] if mf.version == 0 else [mf.encode("base32"), mf.encode("base58btc"),
                                                 mf.encode("base36")]
    for text in texts:
        if ours:
            c = parse_cid(text)
            assert c.version == 1 and c.codec.code == mf.codec.code and c.digest == bytes(mf.digest)
            assert str(c) == mf.set(version=1, base="base32").encode()
            assert cid_from_bytes(bytes(mf)) == c
        else:
            with pytest.raises(CidError) as info:
                parse_cid(text)
            assert text[:97] in info.value.what  # named (cut to 100 characters)
            with pytest.raises(CidError):
                cid_from_bytes(bytes(mf))
    assert bytes(decode_cid_bytes(bytes(mf))) == bytes(mf)  # as written: any codec, v0 stays v0


@pytest.mark.parametrize("text", [
    "", "b", "z", "Qm", "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMn0",  # '0' is not base58
    "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yer",  # non-zero spare bits
    "bciqk4p6fydlzyhcxvmjmbozrvhyxwp4oi3clzvx5tnnmgvllcjkfjti",  # a multibase CIDv0
    "x1234", "\u00e9abc",
])
def test_bad_text_is_a_value_error_and_a_cid_error(text: str) -> None:
    with pytest.raises(ValueError):
        CID.decode(text)
    with pytest.raises(CidError):
        parse_cid(text)


def test_unknown_codec_is_a_clear_cid_error() -> None:
    digest = hashlib.sha256(b"x").digest()
    odd = CID.v1(0x7777, b"\x12\x20" + digest)  # a codec no table names
    assert CID.decode(bytes(odd)).codec.name == "0x7777"
    with pytest.raises(CidError, match="codec 0x7777"):
        parse_cid(str(odd))
    with pytest.raises(CidError, match="hash function sha2-512"):
        parse_cid(str(CID.v1(0x55, b"\x13\x40" + bytes(64))))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_base58_equals_multiformats(raw: bytes) -> None:
    base58 = multibase.get("base58btc")
    text = b58_encode(raw)
    assert "z" + text == base58.encode(raw)
    assert b58_decode(text) == raw == bytes(base58.decode("z" + text))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl", max_size=50))
def test_base58_decode_agrees_on_any_text(text: str) -> None:
    try:
        want: bytes | None = bytes(multibase.get("base58btc").decode("z" + text)) if text else b""
    except Exception:
        want = None
    assert b58_decode(text) == want


def test_decode_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        CID.decode(42)  # type: ignore[arg-type]
    assert multihash.get(code=0x1E).name == "blake3"  # the table our names follow
