"""CIDs through the ``multiformats`` package: make, parse and verify.

What we write is always CIDv1, multibase base32 lowercase (the ``b`` prefix), codec raw (0x55) or
dag-pb (0x70), multihash sha2-256 (0x12) or blake3 (0x1e, 32 bytes). CIDv0 (``Qm...``) is accepted
when parsing, because other IPFS tools still hand them out, and is normalised to CIDv1 base32 so
two spellings of the same block compare equal and name the same file in the blockstore.

Hashing goes through :mod:`cheng_build._native` when the C library is built (it releases the GIL,
so callers can hash leaves on several threads) and falls back to :mod:`hashlib` / the ``blake3``
package otherwise; both produce the same digests (the native tests check that).

``multiformats`` is imported on first need of a ``CID`` object or of a form we do not decode
ourselves: hashing (:func:`hasher_for`), base32 text (:func:`cid_text`, :func:`cid_text_bytes`,
:func:`cid_str` of an existing CID) and importing this module do not load it, so start-up
paths that only handle CID strings do not pay its ~40 ms.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cheng_build.core.errors import DigestMismatchError, InputError

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual

if TYPE_CHECKING:
    from typing import Any, Literal

    from multiformats import CID

    CodecName = Literal["raw", "dag-pb"]
    HashName = Literal["sha2-256", "blake3"]

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
BLAKE3 = 0x1E

_CODECS: dict[str, int] = {"raw": RAW, "dag-pb": DAG_PB}
_HASHES: dict[str, int] = {"sha2-256": SHA2_256, "blake3": BLAKE3}
_HASH_BY_CODE: dict[int, str] = {v: k for k, v in _HASHES.items()}
_MH_PREFIX = {SHA2_256: b"\x12\x20", BLAKE3: b"\x1e\x20"}

__all__ = [
    "BLAKE3",
    "CID",
    "DAG_PB",
    "RAW",
    "SHA2_256",
    "CidError",
    "b32_decode",
    "b32_encode",
    "cid_bytes",
    "cid_from_bytes",
    "cid_from_digest",
    "cid_str",
    "cid_text",
    "cid_text_bytes",
    "decode_cid_bytes",
    "digest_of",
    "hash_code",
    "hasher_for",
    "make_cid",
    "parse_cid",
    "verify_block",
]


# --- multibase base32 without multiformats ------------------------------------------------
# Every CID we write or read from a registry line is ``b`` + RFC 4648 base32 (lower case, no
# padding) of 36 bytes. The standard library's base32 is a Python loop (~50 us a CID); here
# encoding indexes a 1,024-entry table of character pairs (29 look-ups for a CID) and decoding
# is one ``int(..., 32)`` in C, so neither needs multiformats (which costs ~40 ms to import).
# The tests hold both to multiformats and to ``base64.b32encode``.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_TO_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")  # what int(x, 32) reads
_B32_BODY = re.compile(r"[a-z2-7]+")


def b32_encode(raw: bytes) -> str:
    """RFC 4648 base32 of ``raw``, lower case, unpadded (multibase ``b`` without the prefix)."""
    nbits = len(raw) * 8
    nchars = -(-nbits // 5)
    odd = nchars & 1
    # Left-align the bits to whole characters (plus one spare character when the count is odd,
    # so the text is whole pairs), then read 10 bits at a time from the top.
    value = int.from_bytes(raw, "big") << (nchars * 5 - nbits + 5 * odd)
    pairs = (nchars + odd) >> 1
    text = "".join([_PAIRS[(value >> shift) & 1023] for shift in range(10 * pairs - 10, -1, -10)])
    return text[:-1] if odd else text


def b32_decode(body: str) -> bytes | None:
    """The bytes of unpadded lower-case base32 ``body``; None unless it is the one canonical
    spelling of some bytes (alphabet, length, and the spare low bits all zero)."""
    if not body or not _B32_BODY.fullmatch(body):
        return None
    nbits = len(body) * 5
    nbytes = nbits >> 3
    spare = nbits - nbytes * 8
    if spare >= 5:  # a whole character of padding bits: no encoder writes this length
        return None
    value = int(body.translate(_TO_DIGITS), 32)
    if value & ((1 << spare) - 1):
        return None
    return (value >> spare).to_bytes(nbytes, "big")


def cid_text(raw: bytes) -> str:
    """A binary CID as its multibase base32 string (``b...``)."""
    return "b" + b32_encode(raw)


def _ours(raw: bytes) -> bool:
    """CIDv1, raw or dag-pb, sha2-256 or blake3, 32-byte digest: every CID we write."""
    return len(raw) == 36 and raw[0] == 1 and raw[1] in (RAW, DAG_PB) and \
        raw[2] in _HASH_BY_CODE and raw[3] == 32


def cid_text_bytes(text: str) -> bytes | None:
    """The binary CID of ``text`` when it is the canonical base32 string of one of our CIDs
    (CIDv1, raw/dag-pb, sha2-256/blake3); None for anything else (other bases, CIDv0, other
    codecs, bad text), which :func:`parse_cid` hands to multiformats. Needs no multiformats."""
    if len(text) != 59 or text[0] != "b":
        return None
    raw = b32_decode(text[1:])
    return raw if raw is not None and _ours(raw) else None


# --- multiformats, loaded on first use ------------------------------------------------------
# multiformats type-checks every constructor argument at run time (~0.2 ms per CID here), which
# would dominate importing a GiB (4,000 leaves) or a tree of small files. For the handful of
# (codec, hash) pairs we write we pre-resolve the multiformats objects once and build instances
# directly (the slots ``CID._new_instance`` fills). That relies on private attributes, so on
# first use we check the result equals the public constructor's and prints the same; if not (a
# different multiformats release), we quietly use the public, slower path.


class _Multiformats:
    """The multiformats objects we use, resolved once."""

    def __init__(self) -> None:
        from multiformats import CID, multibase, multicodec, multihash

        self.CID = CID
        self.b32 = multibase.get("base32")
        self.codecs = {RAW: multicodec.get("raw"), DAG_PB: multicodec.get("dag-pb")}
        self.hashes = {SHA2_256: multihash.get("sha2-256"), BLAKE3: multihash.get("blake3")}
        self.new: Callable[[int, int, bytes], CID] = self._slow
        probe = _sha256(b"probe")
        try:
            fast, slow = self._fast(DAG_PB, SHA2_256, probe), self._slow(DAG_PB, SHA2_256, probe)
            ok = fast == slow and str(fast) == str(slow) and hash(fast) == hash(slow) \
                and bytes(fast) == bytes(slow) and fast.raw_digest == probe
        except Exception:
            ok = False
        if ok:
            self.new = self._fast

    def _slow(self, codec: int, hcode: int, digest: bytes) -> CID:
        return self.CID("base32", 1, self.codecs[codec], _MH_PREFIX[hcode] + digest)

    def _fast(self, codec: int, hcode: int, digest: bytes) -> CID:
        # What CID._new_instance does, minus its intern table (whose key hashing costs more than
        # the object): equality and hashing of CIDs are on content, so interning is not needed.
        cid = object.__new__(self.CID)
        cid._base = self.b32
        cid._version = 1
        cid._codec = self.codecs[codec]
        cid._hashfun = self.hashes[hcode]
        cid._digest = _MH_PREFIX[hcode] + digest
        return cid


_mf: _Multiformats | None = None


def _multiformats() -> _Multiformats:
    global _mf
    if _mf is None:
        _mf = _Multiformats()
    return _mf


def __getattr__(name: str) -> Any:
    # ``from cheng_build.cas.cid import CID`` keeps working; only it loads multiformats.
    if name == "CID":
        return _multiformats().CID
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _new_cid(codec: int, hcode: int, digest: bytes) -> CID:
    return (_mf or _multiformats()).new(codec, hcode, digest)


def cid_bytes(cid: CID) -> bytes:
    """The binary form of ``cid`` (fast for CIDv1 with a one-byte codec; ``bytes(cid)`` re-validates)."""
    code = cid.codec.code
    if cid.version == 1 and code < 0x80:
        return bytes((1, code)) + cid.digest
    return bytes(cid)


def cid_str(cid: CID) -> str:
    """The CIDv1 base32 string of ``cid``, also for a CIDv0 (one block, one name in the store).

    Fast: multiformats' ``str`` costs ~0.2 ms.
    """
    return cid_text(bytes((1, DAG_PB)) + cid.digest if cid.version == 0 else cid_bytes(cid))


class CidError(InputError):
    """A CID string or binary CID is malformed or uses a codec/hash we do not handle."""


def _sha256(data: bytes | memoryview) -> bytes:
    import hashlib  # here: OpenSSL's binding costs start-up time, and chengc needs only CID encoding

    return hashlib.sha256(data).digest()


def _pick_blake3() -> Callable[[bytes | memoryview], bytes]:
    try:
        from cheng_build import _native

        if _native.backends().get("blake3", "unavailable") != "unavailable":
            return lambda data: bytes(_native.blake3(data))
    except (ImportError, OSError, AttributeError):
        pass

    def package(data: bytes | memoryview) -> bytes:
        try:
            import blake3  # the PyPI package: only when the C library has no BLAKE3
        except ImportError:
            raise CidError("blake3 hashing is not available",
                           why="neither the native library nor the 'blake3' package is installed",
                           how="build the native library (bash scripts/dev-build.sh) or "
                               "pip install blake3; or use sha2-256") from None
        return bytes(blake3.blake3(data).digest())

    return package


_blake3_impl: Callable[[bytes | memoryview], bytes] | None = None


def _blake3(data: bytes | memoryview) -> bytes:
    global _blake3_impl
    if _blake3_impl is None:
        _blake3_impl = _pick_blake3()
    return _blake3_impl(data)


def hasher_for(hash: HashName | str) -> Callable[[bytes | memoryview], bytes]:
    """The function computing the raw digest of ``hash`` for one buffer.

    Raises:
        CidError: ``hash`` is not sha2-256 or blake3.
    """
    if hash == "sha2-256":
        return _sha256
    if hash == "blake3":
        return _blake3
    raise CidError(f"unsupported hash function '{hash}'", how="use sha2-256 or blake3")


def digest_of(data: bytes | memoryview, hash: HashName | str = "sha2-256") -> bytes:
    """The raw digest (no multihash prefix) of ``data``."""
    return hasher_for(hash)(data)


def cid_from_digest(digest: bytes, codec: CodecName | str = "raw", hash: HashName | str = "sha2-256") -> CID:
    """Build a CIDv1 (base32) from an already computed raw digest.

    Raises:
        CidError: unknown codec or hash, or a digest of the wrong length.
    """
    if codec not in _CODECS:
        raise CidError(f"unsupported codec '{codec}'", how="use raw or dag-pb")
    if hash not in _HASHES:
        raise CidError(f"unsupported hash function '{hash}'", how="use sha2-256 or blake3")
    if len(digest) != 32:
        raise CidError(f"a {hash} digest must be 32 bytes, got {len(digest)}")
    return _new_cid(_CODECS[codec], _HASHES[hash], bytes(digest))


def make_cid(data: bytes | memoryview, codec: CodecName | str = "raw",
             hash: HashName | str = "sha2-256") -> CID:
    """The CIDv1 of one block of ``data``.

    ``make_cid(b"hello")`` is ``bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq``.
    """
    return cid_from_digest(hasher_for(hash)(data), codec, hash)


def hash_code(hash: HashName | str) -> int:
    """The multihash code of ``hash`` (0x12 or 0x1e)."""
    try:
        return _HASHES[hash]
    except KeyError:
        raise CidError(f"unsupported hash function '{hash}'", how="use sha2-256 or blake3") from None


def _normalise(cid: CID, shown: str) -> CID:
    """Check codec and hash are ours and return the CIDv1 base32 form."""
    codec = cid.codec.code
    if codec not in (RAW, DAG_PB):
        raise CidError(
            f"CID '{shown}' uses codec {cid.codec.name}, which this store does not hold",
            why="only raw (0x55) and dag-pb (0x70) blocks make up UnixFS DAGs",
        )
    if cid.hashfun.code not in _HASH_BY_CODE:
        raise CidError(
            f"CID '{shown}' uses hash function {cid.hashfun.name}",
            how="use sha2-256 or blake3 CIDs",
        )
    if len(cid.raw_digest) != 32:
        raise CidError(f"CID '{shown}' has a {len(cid.raw_digest)}-byte digest; 32 expected")
    if cid.version == 1 and cid.base.name == "base32":
        return cid
    return _multiformats().CID("base32", 1, cid.codec, cid.digest)


def parse_cid(s: str) -> CID:
    """Parse a CID string (CIDv1 in any multibase, or CIDv0) into a CIDv1 base32 value.

    Raises:
        CidError: the string is not a CID, naming the string.
    """
    if not isinstance(s, str):
        raise TypeError(f"parse_cid expects a str, got {type(s).__name__}")
    text = s.strip()
    shown = s if len(s) <= 100 else s[:97] + "..."
    if not text:
        raise CidError("empty CID", how="pass a CID such as bafkrei... or bafybei...")
    raw = cid_text_bytes(text)
    if raw is not None:
        return _new_cid(raw[1], raw[2], raw[4:])
    try:
        cid = _multiformats().CID.decode(text)
    except Exception as exc:  # multiformats raises several unrelated types for bad input
        raise CidError(
            f"not a valid CID: '{shown}'",
            why=str(exc) or type(exc).__name__,
            how="CIDs look like bafkrei... (raw) or bafybei... (dag-pb); check for a typo or truncation",
        ) from None
    return _normalise(cid, shown)


def cid_from_bytes(raw: bytes) -> CID:
    """Decode a binary CID (as stored in dag-pb links and CAR sections).

    Raises:
        CidError: the bytes are not a CID we handle.
    """
    b = bytes(raw)
    # Fast path: CIDv1 with one of our codecs and hashes (one-byte varints, 32-byte digest).
    if _ours(b):
        return _new_cid(b[1], b[2], b[4:])
    try:
        cid = _multiformats().CID.decode(b)
    except Exception as exc:
        raise CidError(f"not a valid binary CID: {bytes(raw)[:40].hex()}", why=str(exc)) from None
    return _normalise(cid, str(cid))


def decode_cid_bytes(raw: bytes) -> CID:
    """Decode any binary CID as written (CIDv0 stays v0; any codec), fast for our own.

    Raises:
        ValueError: (from multiformats) the bytes are not a CID.
    """
    if _ours(raw):
        return _new_cid(raw[1], raw[2], raw[4:])
    return _multiformats().CID.decode(raw)


def verify_block(cid: CID, data: bytes | memoryview) -> None:
    """Check that ``data`` hashes to ``cid``.

    Raises:
        DigestMismatchError: the bytes do not match, naming the CID.
        CidError: the CID's hash function is not one we compute.
    """
    mh = cid.digest  # the multihash bytes, stored as is (``raw_digest`` re-parses them: slow)
    name = _HASH_BY_CODE.get(mh[0]) if len(mh) == 34 and mh[1] == 32 else None
    if name is None:
        raise CidError(f"CID '{cid}' uses hash function {cid.hashfun.name}")
    if hasher_for(name)(data) != mh[2:]:
        raise DigestMismatchError(
            f"block {cid} does not match its CID",
            why="its bytes hash to a different digest: the copy is corrupt or was tampered with",
            how="fetch the block again (from a CAR file or a peer) to repair the store",
        )
