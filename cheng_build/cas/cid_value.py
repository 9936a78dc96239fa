"""The CID value of cheng_build: version, codec, multihash; its binary and text forms.

One small class instead of ``multiformats.CID``: importing multiformats costs ~30 ms (its
multicodec table alone ~17 ms) and type-checks every constructor argument at run time, which
every publish, chengc run and block transfer paid. The class keeps the attribute names the code
(and multiformats) use — ``version``, ``codec.code``/``codec.name``, ``hashfun``, ``digest`` (the
multihash), ``raw_digest``, ``bytes(cid)``, ``str(cid)``, ``encode(base)``, :meth:`CID.decode` — and
equality and hashing on the binary form.

Binary form: CIDv1 is ``varint(1) varint(codec) multihash``; CIDv0 is a bare sha2-256 multihash
(34 bytes, ``12 20 ...``), codec dag-pb. A multihash is ``varint(code) varint(size) digest``
whose digest is exactly ``size`` bytes. Varints are the strict ones of :mod:`cas.varint`.
Any codec and hash code decodes (a dag-pb link may name dag-cbor or identity blocks of other
tools); :mod:`cas.cid`'s ``parse_cid`` narrows to what the store holds.

Text: CIDv1 prints as multibase base32 (``b...``), CIDv0 as base58btc (``Qm...``). Decoding
reads ``b`` (base32) and ``z`` (base58btc) and ``Qm...`` here; a CID in another multibase (base36
``k...``, base16 ``f...``, ...) has its multibase decoded by multiformats, imported only then.
The tests hold everything to multiformats as the oracle.
"""

from __future__ import annotations

from cheng_build.cas import varint

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual

if TYPE_CHECKING:
    from typing import Any

__all__ = ["CID", "Code", "b32_decode", "b32_encode", "b58_decode", "b58_encode"]


class Code:
    """A multicodec entry: its code and name (``cid.codec.code``, ``cid.hashfun.name``)."""

    __slots__ = ("code", "name")

    def __init__(self, code: int, name: str) -> None:
        self.code = code
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Code) and other.code == self.code

    def __hash__(self) -> int:
        return hash(self.code)

    def __repr__(self) -> str:
        return f"Code(0x{self.code:x}, {self.name!r})"


# Names for messages (``uses codec dag-cbor``); a code not listed is named by its hex value.
_CODEC_NAMES = {0x55: "raw", 0x70: "dag-pb", 0x71: "dag-cbor", 0x0129: "dag-json", 0x72: "libp2p-key",
                0x51: "cbor", 0x0200: "json", 0x00: "identity", 0x78: "git-raw", 0xE3: "ipfs-ns"}
_HASH_NAMES = {0x12: "sha2-256", 0x1E: "blake3", 0x13: "sha2-512", 0x00: "identity", 0x11: "sha1",
               0x16: "sha3-256", 0x14: "sha3-512", 0xB220: "blake2b-256", 0xB260: "blake2s-256"}
_CODECS: dict[int, Code] = {}
_HASHES: dict[int, Code] = {}


def _code(table: dict[int, Code], names: dict[int, str], code: int) -> Code:
    c = table.get(code)
    if c is None:
        c = Code(code, names.get(code, f"0x{code:x}"))
        if len(table) < 256:  # keep the shared objects few; a hostile stream cannot grow it
            table[code] = c
    return c


for _c in _CODEC_NAMES:
    _code(_CODECS, _CODEC_NAMES, _c)
for _c in _HASH_NAMES:
    _code(_HASHES, _HASH_NAMES, _c)


# --- multibase base32 (``b``) ---------------------------------------------------------------
# The standard library's base32 is a Python loop (~50 us a CID); encoding here indexes a
# 1,024-entry table of character pairs (29 look-ups for a CID) and decoding is one
# ``int(..., 32)`` in C. The tests hold both to multiformats and to ``base64.b32encode``.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_TO_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")  # what int(x, 32) reads
_B32_CHARS = frozenset(_ALPHABET)


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
    if not body or not _B32_CHARS.issuperset(body):
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


# --- base58btc (``z``, and CIDv0 without a prefix) ------------------------------------------
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {ch: i for i, ch in enumerate(_B58)}


def b58_encode(raw: bytes) -> str:
    """Bitcoin base58 of ``raw``: one ``1`` per leading zero byte, then the number in base 58."""
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    n = int.from_bytes(raw, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "1" * zeros + "".join(reversed(out))


def b58_decode(text: str) -> bytes | None:
    """The bytes of base58btc ``text``; None when a character is outside the alphabet."""
    n = 0
    for ch in text:
        d = _B58_INDEX.get(ch)
        if d is None:
            return None
        n = n * 58 + d
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")


class CID:
    """A content identifier: ``version`` (0 or 1), ``codec``, and the multihash ``digest``.

    Make one with :meth:`decode` (text or binary) or :meth:`v1`; :mod:`cas.cid` has the
    constructors most code wants (``make_cid``, ``parse_cid``, ``cid_from_bytes``).
    """

    __slots__ = ("_bin", "codec", "digest", "version")

    _bin: bytes  # the binary CID: what hashing and equality use, and ``bytes(cid)``
    codec: Code
    digest: bytes  # the multihash: code, size, raw digest (as multiformats names it)
    version: int

    @classmethod
    def v1(cls, codec: int, multihash: bytes) -> CID:
        """The CIDv1 of ``codec`` and ``multihash`` (both trusted: no checks; see :meth:`decode`)."""
        self = object.__new__(cls)
        self.version = 1
        self.codec = _CODECS.get(codec) or _code(_CODECS, _CODEC_NAMES, codec)
        self.digest = multihash
        self._bin = (b"\x01" + bytes((codec,)) if codec < 0x80 else b"\x01" + varint.encode(codec)) \
            + multihash
        return self

    @classmethod
    def _v0(cls, multihash: bytes) -> CID:
        self = object.__new__(cls)
        self.version = 0
        self.codec = _CODECS[0x70]
        self.digest = multihash
        self._bin = multihash
        return self

    @property
    def hashfun(self) -> Code:
        """The multihash function (``.code``, ``.name``)."""
        d = self.digest
        code = d[0] if d[0] < 0x80 else varint.decode(d)[0]
        return _HASHES.get(code) or _code(_HASHES, _HASH_NAMES, code)

    @property
    def raw_digest(self) -> bytes:
        """The hash itself, without the multihash code and size."""
        d = self.digest
        if d[0] < 0x80 and d[1] < 0x80:
            return d[2:]
        _, pos = varint.decode(d)
        _, pos = varint.decode(d, pos)
        return d[pos:]

    def __bytes__(self) -> bytes:
        return self._bin

    def __str__(self) -> str:
        return b58_encode(self._bin) if self.version == 0 else "b" + b32_encode(self._bin)

    def encode(self, base: str | None = None) -> str:
        """The text form: ``base32`` (default for v1) or ``base58btc`` (v0's only form).

        Raises:
            ValueError: a base other than these, or a multibase for a CIDv0.
        """
        if self.version == 0:
            if base not in (None, "base58btc"):
                raise ValueError("CIDv0 cannot be multibase-encoded")
            return b58_encode(self._bin)
        if base in (None, "base32"):
            return "b" + b32_encode(self._bin)
        if base == "base58btc":
            return "z" + b58_encode(self._bin)
        raise ValueError(f"unsupported multibase {base!r}: use base32 or base58btc")

    def __repr__(self) -> str:
        return f"CID({self.version}, {self.codec.name!r}, {self.digest.hex()!r})"

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, CID):
            return NotImplemented
        return self._bin == other._bin

    def __hash__(self) -> int:
        return hash(self._bin)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (CID.decode, (self._bin,))

    @staticmethod
    def decode(cid: str | bytes | bytearray | memoryview) -> CID:
        """Parse a CID: binary, or text (``Qm...`` CIDv0, or a multibase CIDv1).

        Raises:
            ValueError: not a CID (bad multibase text, version, varints, or a multihash whose
                size disagrees with its digest).
        """
        if isinstance(cid, str):
            return CID._decode_bytes(_text_to_bytes(cid))
        if not isinstance(cid, (bytes, bytearray, memoryview)):
            raise TypeError(f"a CID is text or bytes, not {type(cid).__name__}")
        return CID._decode_bytes(bytes(cid))

    @staticmethod
    def _decode_bytes(b: bytes) -> CID:
        if len(b) == 34 and b[0] == 0x12 and b[1] == 0x20:
            return CID._v0(b)
        try:
            version, pos = varint.decode(b)
            if version == 0:
                raise ValueError("CIDv0 is malformed")
            if version != 1:
                raise ValueError(f"CIDv{version} is not supported")
            codec, pos = varint.decode(b, pos)
            mh = b[pos:]
            _, p = varint.decode(mh)
            size, p = varint.decode(mh, p)
        except varint.VarintError as exc:
            raise ValueError(f"malformed CID: {exc}") from None
        if size != len(mh) - p:
            raise ValueError(f"the multihash lists size {size}, but its digest has {len(mh) - p} bytes")
        return CID.v1(codec, mh)


def _text_to_bytes(text: str) -> bytes:
    """The binary CID a text CID spells (CIDv0 ``Qm...`` or multibase)."""
    if len(text) == 46 and text.startswith("Qm"):
        raw = b58_decode(text)
        if raw is None:
            raise ValueError("CIDv0 is not valid base58btc")
        return raw
    if not text:
        raise ValueError("empty CID")
    prefix, body = text[0], text[1:]
    if prefix in "bB":
        # Canonical base32 is lower case; multibase decoders take either case (and ``B`` is
        # the upper-case base), so a second look at the lower-cased text.
        raw = b32_decode(body) if prefix == "b" else None
        if raw is None:
            raw = b32_decode(body.lower())
        if raw is None:
            raise ValueError("not base32 (or non-zero spare bits)")
    elif prefix == "z":
        raw = b58_decode(body)
        if raw is None:
            raise ValueError("not base58btc")
    else:
        raw = _other_multibase(text)
    if raw[:1] == b"\x12":
        # A sha2-256 multihash: a CIDv0, which has no multibase prefix (and CIDv18 would be
        # ambiguous with it).
        raise ValueError("CIDv0 may not be multibase encoded")
    return raw


def _other_multibase(text: str) -> bytes:
    # Other multibases (base36, base16, base64, upper-case base32, ...) are rare in the CIDs we
    # see: multiformats decodes them, loaded only here.
    from multiformats import multibase

    try:
        return bytes(multibase.decode(text))
    except Exception as exc:  # multiformats raises several unrelated types for bad input
        raise ValueError(str(exc) or type(exc).__name__) from None
