"""Bitswap 1.2.0 wire format: the protobuf ``Message`` and its length-prefixed framing.

Spec: https://specs.ipfs.tech/bitswap-protocol/ . One message on the wire is
``uvarint(len) || protobuf(Message)``; a peer sends its messages on a stream it opened itself and
only reads the streams the other side opened (go-bitswap and js-ipfs-bitswap both behave so).

Schema (field numbers are the wire contract)::

    message Message {
      message Wantlist {
        enum WantType { Block = 0; Have = 1; }
        message Entry { bytes block = 1; int32 priority = 2; bool cancel = 3;
                        WantType wantType = 4; bool sendDontHave = 5; }
        repeated Entry entries = 1; bool full = 2;
      }
      message Block { bytes prefix = 1; bytes data = 2; }
      enum BlockPresenceType { Have = 0; DontHave = 1; }
      message BlockPresence { bytes cid = 1; BlockPresenceType type = 2; }
      Wantlist wantlist = 1;
      repeated bytes blocks = 2;            // bitswap 1.0.0: data only, CIDv0 implied
      repeated Block payload = 3;           // 1.1.0+: CID prefix + data
      repeated BlockPresence blockPresences = 4;
      int32 pendingBytes = 5;
    }

Why hand-written rather than generated protobuf code: the schema is five small messages, decoding
must hand out block payloads as zero-copy slices (a message carries up to a few MiB), and it keeps
the wire format independent of py-libp2p's internal module layout. ``tests/test_net_bitswap.py``
checks it both ways against the generated ``bitswap_pb2`` that ships with py-libp2p.

Nothing here imports libp2p: the codec is pure and cheap.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cheng_build.cas import varint

PROTOCOL_V120 = "/ipfs/bitswap/1.2.0"
PROTOCOL_V110 = "/ipfs/bitswap/1.1.0"
PROTOCOL_V100 = "/ipfs/bitswap/1.0.0"
PROTOCOLS = (PROTOCOL_V120, PROTOCOL_V110, PROTOCOL_V100)

# go-bitswap and js bitswap refuse messages over 4 MiB; we never send more than this either.
MAX_MESSAGE_SIZE = 4 * 1024 * 1024
# What we pack into one outgoing message before starting the next (a single larger block still
# goes out alone; blocks are at most 1 MiB with our chunker, 2 MiB by IPFS convention).
TARGET_MESSAGE_SIZE = 1024 * 1024


class WireError(ValueError):
    """A message is not valid bitswap protobuf (truncated, bad wire type, too large)."""


class WantType(enum.IntEnum):
    BLOCK = 0
    HAVE = 1


class PresenceType(enum.IntEnum):
    HAVE = 0
    DONT_HAVE = 1


@dataclass(frozen=True, slots=True)
class WantEntry:
    """One wantlist line: the binary CID wanted and how."""

    cid: bytes
    priority: int = 1
    cancel: bool = False
    want_type: WantType = WantType.BLOCK
    send_dont_have: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """A block as carried by bitswap 1.1+: the CID prefix (version, codec, hash, length) + data."""

    prefix: bytes
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class Presence:
    cid: bytes
    type: PresenceType


@dataclass(frozen=True, slots=True)
class Message:
    """One bitswap message. ``blocks_v100`` holds 1.0.0-style bare blocks (CIDv0, sha2-256)."""

    wants: tuple[WantEntry, ...] = ()
    full: bool = False
    blocks: tuple[Block, ...] = ()
    presences: tuple[Presence, ...] = ()
    blocks_v100: tuple[bytes | memoryview, ...] = field(default=())
    pending_bytes: int = 0


# --- protobuf primitives ----------------------------------------------------------------------


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` (:mod:`cheng_build.cas.varint`: minimal, at most 64 bits) and the
    position after it; a bad one is this module's :class:`WireError`."""
    try:
        return varint.decode(buf, pos)
    except varint.VarintError as exc:
        raise WireError(str(exc)) from None


def _key(fieldno: int, wire: int) -> bytes:
    return varint.encode((fieldno << 3) | wire)


def _ld(fieldno: int, payload: bytes | memoryview) -> list[bytes | memoryview]:
    return [_key(fieldno, 2), varint.encode(len(payload)), payload]


def _vi(fieldno: int, value: int) -> bytes:
    # int32 fields: negative numbers are sign-extended to 64 bits, as protobuf does.
    return _key(fieldno, 0) + varint.encode(value & 0xFFFFFFFFFFFFFFFF)


def _fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field; length-delimited values as views."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    while pos < end:
        key, pos = read_uvarint(view, pos)
        fieldno, wire = key >> 3, key & 7
        if fieldno == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = read_uvarint(view, pos)
            yield fieldno, wire, value
        elif wire == 2:
            length, pos = read_uvarint(view, pos)
            if pos + length > end:
                raise WireError("truncated length-delimited field")
            yield fieldno, wire, view[pos:pos + length]
            pos += length
        elif wire == 1:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            pos += 8
        elif wire == 5:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# --- Message ----------------------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    """Serialise ``msg`` as protobuf bytes (no length prefix)."""
    return b"".join(_encode_parts(msg))


def _encode_parts(msg: Message) -> list[bytes | memoryview]:
    """The protobuf bytes of ``msg`` as pieces (block data as given: not copied here)."""
    parts: list[bytes | memoryview] = []
    if msg.wants or msg.full:
        wl: list[bytes | memoryview] = []
        for e in msg.wants:
            entry = [*_ld(1, e.cid)]
            if e.priority:
                entry.append(_vi(2, e.priority))
            if e.cancel:
                entry.append(_vi(3, 1))
            if e.want_type:
                entry.append(_vi(4, int(e.want_type)))
            if e.send_dont_have:
                entry.append(_vi(5, 1))
            wl.extend(_ld(1, b"".join(entry)))
        if msg.full:
            wl.append(_vi(2, 1))
        parts.extend(_ld(1, b"".join(wl)))
    for data in msg.blocks_v100:
        parts.extend(_ld(2, data))
    for blk in msg.blocks:
        inner = [*_ld(1, blk.prefix), *_ld(2, blk.data)]
        size = sum(len(p) for p in inner)
        parts.extend([_key(3, 2), varint.encode(size), *inner])
    for p in msg.presences:
        inner_p = b"".join(_ld(1, p.cid)) + (_vi(2, int(p.type)) if p.type else b"")
        parts.extend(_ld(4, inner_p))
    if msg.pending_bytes:
        parts.append(_vi(5, msg.pending_bytes))
    return parts


def frame(msg: Message) -> bytes:
    """``uvarint(len) || protobuf`` as one write on a bitswap stream (one copy of the data)."""
    parts = _encode_parts(msg)
    size = sum(len(p) for p in parts)
    if size > MAX_MESSAGE_SIZE:
        raise WireError(f"message of {size} bytes exceeds {MAX_MESSAGE_SIZE}")
    return b"".join([varint.encode(size), *parts])


def _decode_entry(buf: memoryview) -> WantEntry:
    cid = b""
    priority = 0
    cancel = False
    want_type = WantType.BLOCK
    sdh = False
    for f, w, v in _fields(buf):
        if f == 1 and w == 2:
            cid = bytes(v)
        elif f == 2 and w == 0:
            priority = _int32(v)  # type: ignore[arg-type]
        elif f == 3 and w == 0:
            cancel = bool(v)
        elif f == 4 and w == 0:
            want_type = WantType.HAVE if v == 1 else WantType.BLOCK
        elif f == 5 and w == 0:
            sdh = bool(v)
    return WantEntry(cid, priority, cancel, want_type, sdh)


def decode(buf: bytes | memoryview) -> Message:
    """Parse protobuf bytes; block data are memoryview slices of ``buf``.

    Raises:
        WireError: the bytes are not a well-formed message.
    """
    wants: list[WantEntry] = []
    full = False
    blocks: list[Block] = []
    presences: list[Presence] = []
    v100: list[memoryview] = []
    pending = 0
    for f, w, v in _fields(buf):
        if f == 1 and w == 2:
            for f2, w2, v2 in _fields(v):  # type: ignore[arg-type]
                if f2 == 1 and w2 == 2:
                    wants.append(_decode_entry(v2))  # type: ignore[arg-type]
                elif f2 == 2 and w2 == 0:
                    full = bool(v2)
        elif f == 2 and w == 2:
            v100.append(v)  # type: ignore[arg-type]
        elif f == 3 and w == 2:
            prefix = b""
            data: memoryview = memoryview(b"")
            for f2, w2, v2 in _fields(v):  # type: ignore[arg-type]
                if f2 == 1 and w2 == 2:
                    prefix = bytes(v2)
                elif f2 == 2 and w2 == 2:
                    data = v2  # type: ignore[assignment]
            blocks.append(Block(prefix, data))
        elif f == 4 and w == 2:
            cid = b""
            ptype = PresenceType.HAVE
            for f2, w2, v2 in _fields(v):  # type: ignore[arg-type]
                if f2 == 1 and w2 == 2:
                    cid = bytes(v2)
                elif f2 == 2 and w2 == 0:
                    ptype = PresenceType.DONT_HAVE if v2 == 1 else PresenceType.HAVE
            presences.append(Presence(cid, ptype))
        elif f == 5 and w == 0:
            pending = _int32(v)  # type: ignore[arg-type]
    return Message(tuple(wants), full, tuple(blocks), tuple(presences), tuple(v100), pending)


# --- CIDs as bitswap carries them -------------------------------------------------------------


def cid_prefix(cid_bytes: bytes) -> bytes:
    """The 1.1+ block prefix of a binary CIDv1: version, codec, multihash code, digest length."""
    version, pos = read_uvarint(cid_bytes, 0)
    if version != 1:
        if cid_bytes[:2] == b"\x12\x20":  # CIDv0: sha2-256 dag-pb
            return b"\x00\x70\x12\x20"
        raise WireError(f"unsupported CID version {version}")
    codec, pos = read_uvarint(cid_bytes, pos)
    code, pos = read_uvarint(cid_bytes, pos)
    length, pos = read_uvarint(cid_bytes, pos)
    return varint.encode(1) + varint.encode(codec) + varint.encode(code) + varint.encode(length)


def parse_prefix(prefix: bytes) -> tuple[int, int, int, int]:
    """(version, codec, multihash code, digest length) of a block prefix."""
    version, pos = read_uvarint(prefix, 0)
    codec, pos = read_uvarint(prefix, pos)
    code, pos = read_uvarint(prefix, pos)
    length, pos = read_uvarint(prefix, pos)
    if pos != len(prefix):
        raise WireError("trailing bytes after the block prefix")
    return version, codec, code, length


def pack_blocks(items: Sequence[tuple[bytes, bytes | memoryview]]) -> Iterator[Message]:
    """Group (binary CID, data) pairs into messages of about ``TARGET_MESSAGE_SIZE`` each."""
    batch: list[Block] = []
    size = 0
    for cid_bytes, data in items:
        if batch and size + len(data) > TARGET_MESSAGE_SIZE:
            yield Message(blocks=tuple(batch))
            batch, size = [], 0
        batch.append(Block(cid_prefix(cid_bytes), data))
        size += len(data) + 16
    if batch:
        yield Message(blocks=tuple(batch))
