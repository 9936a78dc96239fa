"""CIDs: make, parse and verify (the CID value itself is :class:`cas.cid_value.CID`).

What we write is always CIDv1, multibase base32 lowercase (the ``b`` prefix), codec raw (0x55) or
dag-pb (0x70), multihash sha2-256 (0x12) or blake3 (0x1e, 32 bytes). CIDv0 (``Qm...``) is accepted
when parsing, because other IPFS tools still hand them out, and is normalised to CIDv1 base32 so
two spellings of the same block compare equal and name the same file in the blockstore.

Hashing goes through :mod:`cheng_build._native` when the C library is built (it releases the GIL,
so callers can hash leaves on several threads) and falls back to :mod:`hashlib` / the ``blake3``
package otherwise; both produce the same digests (the native tests check that). SHA-256 goes to
the C library only when it has a hardware backend (SHA-NI): then it is as fast as OpenSSL and a
publish, which loads the library anyway, does not pay ~3 ms to import hashlib.

Nothing here imports ``multiformats`` (~30 ms): only a CID text in a rare multibase (base36,
base16, ...) loads it, in :mod:`cas.cid_value`. The tests hold this module to multiformats.
"""

from __future__ import annotations

from collections.abc import Callable

from cheng_build.cas.cid_value import CID, b32_decode, b32_encode
from cheng_build.core.errors import DigestMismatchError, InputError

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual

if TYPE_CHECKING:
    from typing import Literal

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
    codecs, bad text), which :func:`parse_cid` decodes the general way."""
    if len(text) != 59 or text[0] != "b":
        return None
    raw = b32_decode(text[1:])
    return raw if raw is not None and _ours(raw) else None


def _new_cid(codec: int, hcode: int, digest: bytes) -> CID:
    return CID.v1(codec, _MH_PREFIX[hcode] + digest)


def cid_bytes(cid: CID) -> bytes:
    """The binary form of ``cid`` (``bytes(cid)``)."""
    return bytes(cid)


def cid_str(cid: CID) -> str:
    """The CIDv1 base32 string of ``cid``, also for a CIDv0 (one block, one name in the store)."""
    return cid_text(bytes((1, DAG_PB)) + cid.digest if cid.version == 0 else bytes(cid))


class CidError(InputError):
    """A CID string or binary CID is malformed or uses a codec/hash we do not handle."""


def _hashlib_sha256(data: bytes | memoryview) -> bytes:
    import hashlib  # here: OpenSSL's binding costs start-up time, and chengc needs only CID encoding

    return hashlib.sha256(data).digest()


def _pick_sha256() -> Callable[[bytes | memoryview], bytes]:
    try:
        from cheng_build import _native

        # A portable (non-SIMD) C SHA-256 is slower than OpenSSL's: only a hardware backend.
        if _native.backends().get("sha256", "unavailable") not in ("unavailable", "portable"):
            return _native.sha256
    except (ImportError, OSError, AttributeError):
        pass
    return _hashlib_sha256


_sha256_impl: Callable[[bytes | memoryview], bytes] | None = None


def _sha256(data: bytes | memoryview) -> bytes:
    global _sha256_impl
    if _sha256_impl is None:
        _sha256_impl = _pick_sha256()
    return _sha256_impl(data)


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
    return cid if cid.version == 1 else CID.v1(DAG_PB, cid.digest)


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
        cid = CID.decode(text)
    except ValueError as exc:
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
        cid = CID.decode(b)
    except ValueError as exc:
        raise CidError(f"not a valid binary CID: {bytes(raw)[:40].hex()}", why=str(exc)) from None
    return _normalise(cid, str(cid))


def decode_cid_bytes(raw: bytes) -> CID:
    """Decode any binary CID as written (CIDv0 stays v0; any codec), fast for our own.

    Raises:
        ValueError: the bytes are not a CID.
    """
    if _ours(raw):
        return _new_cid(raw[1], raw[2], raw[4:])
    return CID.decode(raw)


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
