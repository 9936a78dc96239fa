"""UnixFS: the ``Data`` message inside dag-pb nodes that makes a DAG a file system.

Wire format (UnixFS spec, protobuf ``Data``)::

    enum DataType { Raw = 0; Directory = 1; File = 2; Metadata = 3; Symlink = 4; HAMTShard = 5; }
    required DataType Type = 1; optional bytes Data = 2; optional uint64 filesize = 3;
    repeated uint64 blocksizes = 4; optional uint64 hashType = 5; optional uint64 fanout = 6;
    optional uint32 mode = 7; optional UnixTime mtime = 8;

We write only Type, Data, filesize and blocksizes, in field order, exactly as go-ipfs and the JS
importer do for CIDv1 + raw leaves, so our CIDs equal theirs. ``mode`` and ``mtime`` are never
written (a package snapshot must not depend on who checked it out, or when); when a foreign DAG
carries them we decode and ignore them. Decoding is strict about wire types and field order and
accepts ``blocksizes`` both unpacked (what everyone writes) and packed.
"""

from __future__ import annotations

import enum

from cheng_build.cas import varint
from cheng_build.cas.dagpb import DagPbError
from cheng_build.core.record import dataclass

__all__ = ["Data", "NodeType", "UnixFSError", "decode", "encode"]


class UnixFSError(DagPbError):
    """A dag-pb node's Data is not a valid UnixFS message."""


class NodeType(enum.IntEnum):
    """UnixFS node types (the protobuf enum values)."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class Data:
    """A decoded UnixFS ``Data`` message (the fields we use; mode/mtime are dropped)."""

    type: NodeType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None


def encode(msg: Data) -> bytes:
    """Encode ``msg`` in field order (the form go-ipfs and js-ipfs write)."""
    out = bytearray(b"\x08" + varint.encode(int(msg.type)))
    if msg.data is not None:
        out += b"\x12" + varint.encode(len(msg.data)) + msg.data
    if msg.filesize is not None:
        out += b"\x18" + varint.encode(msg.filesize)
    for size in msg.blocksizes:
        out += b"\x20" + varint.encode(size)
    if msg.hash_type is not None:
        out += b"\x28" + varint.encode(msg.hash_type)
    if msg.fanout is not None:
        out += b"\x30" + varint.encode(msg.fanout)
    return bytes(out)


def _vint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    try:
        return varint.decode(buf, pos, end)
    except varint.VarintError as exc:
        raise UnixFSError(f"malformed UnixFS data: {exc}") from None


def decode(raw: bytes | None) -> Data:
    """Decode a UnixFS ``Data`` message.

    Raises:
        UnixFSError: missing Type, unknown type value, wrong wire types, fields out of order,
            truncated input.
    """
    if raw is None:
        raise UnixFSError("dag-pb node has no Data: not a UnixFS node")
    buf = bytes(raw)
    end = len(buf)
    pos = 0
    last = 0
    fields: dict[str, object] = {}
    sizes: list[int] = []
    node_type: int | None = None
    while pos < end:
        at = pos
        key, pos = _vint(buf, pos, end)
        field, wt = key >> 3, key & 7
        if field < last or (field == last and field != 4):
            raise UnixFSError(f"malformed UnixFS data: field {field} out of order or repeated at offset {at}")
        last = field
        if wt == 0 and field in (1, 3, 4, 5, 6, 7):
            value, pos = _vint(buf, pos, end)
            if field == 1:
                node_type = value
            elif field == 3:
                fields["filesize"] = value
            elif field == 4:
                sizes.append(value)
            elif field == 5:
                fields["hash_type"] = value
            elif field == 6:
                fields["fanout"] = value
            # field 7 (mode) is read and dropped: we never record modes
        elif wt == 2 and field in (2, 4, 8):
            n, start = _vint(buf, pos, end)
            if start + n > end:
                raise UnixFSError(f"malformed UnixFS data: field {field} at offset {at} runs past the end")
            if field == 2:
                fields["data"] = buf[start:start + n]
            elif field == 4:  # packed blocksizes
                p = start
                while p < start + n:
                    v, p = _vint(buf, p, start + n)
                    sizes.append(v)
            # field 8 (mtime) is skipped: we never record times
            pos = start + n
        else:
            raise UnixFSError(f"malformed UnixFS data: unexpected field {field} (wire type {wt})"
                              f" at offset {at}")
    if node_type is None:
        raise UnixFSError("malformed UnixFS data: no Type")
    try:
        kind = NodeType(node_type)
    except ValueError:
        raise UnixFSError(f"malformed UnixFS data: unknown node type {node_type}") from None
    return Data(
        kind,
        data=fields.get("data"),  # type: ignore[arg-type]
        filesize=fields.get("filesize"),  # type: ignore[arg-type]
        blocksizes=tuple(sizes),
        hash_type=fields.get("hash_type"),  # type: ignore[arg-type]
        fanout=fields.get("fanout"),  # type: ignore[arg-type]
    )
