"""Blocks as they travel: recompute a block's CID from its bytes, list a block's links.

Kept free of libp2p so the HTTP paths and the gateway use it without paying for that import.
Binary CIDs (``bytes``) are used throughout the transfer code: they are what the wire carries and
cheap to hash and compare; ``cas.cid.CID`` objects are made only at the store boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Protocol

from cheng_build.cas.cid import CID
from cheng_build.cas.cid import cid_text as b32_cid_text
from cheng_build.core.errors import DigestMismatchError
from cheng_build.pkg.fetch.bitswap import parse_prefix, read_uvarint

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
HASH_SHA2_256 = 0x12
HASH_BLAKE3 = 0x1E


class BlockStore(Protocol):
    """What the transfer code needs of a store (``cas.blockstore.Blockstore`` has it)."""

    def has(self, cid: CID) -> bool: ...
    def get(self, cid: CID) -> bytes: ...
    def put(self, cid: CID, data: bytes) -> Any: ...


def digest(code: int, data: bytes | memoryview) -> bytes:
    """The multihash digest of ``data`` for hash function ``code``.

    Raises:
        DigestMismatchError: a hash function we do not verify (so we cannot accept the block).
    """
    if code == HASH_SHA2_256:
        return hashlib.sha256(data).digest()
    if code == HASH_BLAKE3:
        from cheng_build.cas.cid import digest_of

        return digest_of(data, "blake3")
    raise DigestMismatchError(f"unsupported multihash code 0x{code:x}",
                              why="we verify sha2-256 and blake3 blocks only")


def block_cid(prefix: bytes, data: bytes | memoryview) -> bytes:
    """The binary CID ``data`` really has under a bitswap ``prefix``: prefix + its digest.

    A binary CIDv1 is ``version, codec, multihash code, digest length, digest``; bitswap's prefix
    is all of it but the digest, so recomputing the digest is the verification.
    """
    version, _codec, code, length = parse_prefix(prefix)
    if version != 1:
        return b"\x12\x20" + hashlib.sha256(data).digest()  # CIDv0: bare sha2-256 multihash
    return prefix + digest(code, data)[:length]


def prefix_of(cid_bytes: bytes) -> bytes:
    """Everything of a binary CID but its digest (the inverse of ``block_cid``)."""
    if cid_bytes[:2] == b"\x12\x20":
        return b"\x00\x70\x12\x20"
    pos = 0
    for _ in range(3):
        _, pos = read_uvarint(cid_bytes, pos)
    _, pos = read_uvarint(cid_bytes, pos)
    return cid_bytes[:pos]


def matches(cid_bytes: bytes, data: bytes | memoryview) -> bool:
    """Whether ``data`` hashes to ``cid_bytes``."""
    try:
        return block_cid(prefix_of(cid_bytes), data) == cid_bytes
    except (ValueError, DigestMismatchError):
        return False


def to_cid(cid_bytes: bytes) -> CID:
    """A binary CID as a ``cas.cid.CID`` (fast for our own CIDs: thousands of blocks a second)."""
    from cheng_build.cas.cid import decode_cid_bytes

    return decode_cid_bytes(cid_bytes)


def cid_text(cid_bytes: bytes) -> str:
    """A binary CID as text: base32 ``bafy...``/``bafk...`` for v1 (cas's one encoder), base58
    ``Qm...`` for v0, hex for bytes that are no CID."""
    try:
        cid = CID.decode(cid_bytes)
        return cid.encode("base58btc") if cid.version == 0 else b32_cid_text(cid_bytes)
    except Exception:
        return cid_bytes.hex() or "(no CID)"


def codec_of(cid_bytes: bytes) -> int:
    if cid_bytes[:2] == b"\x12\x20":
        return CODEC_DAG_PB
    _, pos = read_uvarint(cid_bytes, 0)
    return read_uvarint(cid_bytes, pos)[0]


def child_cids(cid_bytes: bytes, data: bytes | memoryview) -> list[bytes]:
    """Binary CIDs linked from a block (dag-pb links; raw blocks have none)."""
    if codec_of(cid_bytes) != CODEC_DAG_PB:
        return []
    from cheng_build.cas import dagpb

    return [bytes(link.hash) for link in dagpb.decode(bytes(data)).links]


def dag_size(cid_bytes: bytes, data: bytes | memoryview) -> int | None:
    """The DAG's total size in bytes as a root block announces it (its size + its links'
    cumulative sizes), or ``None`` when the links do not say (a progress estimate, not a check)."""
    if codec_of(cid_bytes) != CODEC_DAG_PB:
        return len(data)
    from cheng_build.cas import dagpb

    links = dagpb.decode(bytes(data)).links
    if any(link.tsize is None for link in links):
        return None
    return len(data) + sum(link.tsize or 0 for link in links)


def walk(store: BlockStore, root: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(binary CID, data) of every block under ``root``, depth-first, each once.

    Raises:
        NotFoundError: a block is missing from ``store`` (from ``store.get``).
    """
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        data = store.get(to_cid(c))
        yield c, data
        stack.extend(reversed(child_cids(c, data)))
