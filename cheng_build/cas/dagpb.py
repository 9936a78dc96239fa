"""The dag-pb codec (0x70): ``PBNode`` / ``PBLink`` values and their strict protobuf form.

Wire format (IPLD dag-pb spec)::

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }

Encoding is canonical: every link's fields in the order Hash, Name, Tsize; all Links before Data
(the order go-ipfs has always written and the spec fixed); links sorted by the bytes of their
names (stable, so the unnamed links of a UnixFS file keep their order).

We write this codec by hand rather than through a protobuf library: it is five fields, the
canonical form (Links before Data, i.e. *not* field-number order) is something generic protobuf
encoders do not produce, and strict decoding (refuse unknown fields, duplicates, wrong wire
types, non-minimal varints, interleaved sections) is the part that matters for content
addressing — a lenient decoder would accept many byte strings for one logical node. Decoding
errors are :class:`DagPbError` with the byte offset.
"""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cas import varint
from cheng_build.cas.cid import cid_bytes, decode_cid_bytes
from cheng_build.cas.cid_value import CID
from cheng_build.core.errors import IntegrityError
from cheng_build.core.record import dataclass

__all__ = ["DagPbError", "PBLink", "PBNode", "decode", "encode"]

_WT_VARINT = 0
_WT_LEN = 2


class DagPbError(IntegrityError):
    """Bytes that claim to be a dag-pb block are not valid canonical dag-pb."""


@dataclass(frozen=True, slots=True)
class PBLink:
    """One link: the child's CID, an optional name and the optional cumulative size (Tsize)."""

    hash: CID
    name: str | None = None
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    """A dag-pb node: links (sorted by name when encoded) and optional opaque data."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


def _name_key(link: PBLink) -> bytes:
    return (link.name or "").encode("utf-8")


def _encode_link(link: PBLink) -> bytes:
    out = bytearray()
    h = cid_bytes(link.hash)
    out += b"\x0a" + varint.encode(len(h)) + h
    if link.name is not None:
        n = link.name.encode("utf-8")
        out += b"\x12" + varint.encode(len(n)) + n
    if link.tsize is not None:
        out += b"\x18" + varint.encode(link.tsize)
    return bytes(out)


def encode(node: PBNode) -> bytes:
    """Encode ``node`` canonically.

    Raises:
        ValueError: links are not sorted by name (the caller must sort; we never reorder
            silently, because the order of a file's links is its byte order).
    """
    links: Sequence[PBLink] = node.links
    for i in range(1, len(links)):
        if _name_key(links[i]) < _name_key(links[i - 1]):
            raise ValueError(f"dag-pb links must be sorted by name bytes (link {i}: {links[i].name!r})")
    out = bytearray()
    for link in links:
        body = _encode_link(link)
        out += b"\x12" + varint.encode(len(body)) + body
    if node.data is not None:
        out += b"\x0a" + varint.encode(len(node.data)) + node.data
    return bytes(out)


def _key(buf: bytes, pos: int, end: int, where: str) -> tuple[int, int, int]:
    try:
        key, nxt = varint.decode(buf, pos, end)
    except varint.VarintError as exc:
        raise DagPbError(f"malformed dag-pb {where}: {exc}") from None
    return key >> 3, key & 7, nxt


def _length_delimited(buf: bytes, pos: int, end: int, where: str) -> tuple[int, int]:
    try:
        n, start = varint.decode(buf, pos, end)
    except varint.VarintError as exc:
        raise DagPbError(f"malformed dag-pb {where}: {exc}") from None
    if start + n > end:
        raise DagPbError(f"malformed dag-pb {where}: length {n} at offset {pos} runs past the end")
    return start, start + n


def _decode_link(buf: bytes, pos: int, end: int) -> PBLink:
    h: CID | None = None
    name: str | None = None
    tsize: int | None = None
    last = 0
    while pos < end:
        field, wt, pos = _key(buf, pos, end, "link")
        if field <= last:
            raise DagPbError(f"malformed dag-pb link: field {field} out of order or repeated at offset {pos}")
        last = field
        if field == 1 and wt == _WT_LEN:
            s, e = _length_delimited(buf, pos, end, "link hash")
            try:
                h = decode_cid_bytes(buf[s:e])
            except Exception as exc:
                raise DagPbError(f"malformed dag-pb link: bad CID at offset {s}", why=str(exc)) from None
            pos = e
        elif field == 2 and wt == _WT_LEN:
            s, e = _length_delimited(buf, pos, end, "link name")
            try:
                name = buf[s:e].decode("utf-8")
            except UnicodeDecodeError:
                raise DagPbError(f"malformed dag-pb link: name at offset {s} is not UTF-8") from None
            pos = e
        elif field == 3 and wt == _WT_VARINT:
            try:
                tsize, pos = varint.decode(buf, pos, end)
            except varint.VarintError as exc:
                raise DagPbError(f"malformed dag-pb link Tsize: {exc}") from None
        else:
            raise DagPbError(f"malformed dag-pb link: unexpected field {field} (wire type {wt})"
                             f" at offset {pos}")
    if h is None:
        raise DagPbError("malformed dag-pb link: no Hash")
    return PBLink(h, name, tsize)


def decode(data: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block strictly.

    Raises:
        DagPbError: unknown or repeated fields, wrong wire types, Data before or between Links,
            truncated or non-minimal varints, a link without a hash or with a bad CID.
    """
    buf = bytes(data)
    end = len(buf)
    pos = 0
    links: list[PBLink] = []
    payload: bytes | None = None
    while pos < end:
        at = pos
        field, wt, pos = _key(buf, pos, end, "node")
        if wt != _WT_LEN or field not in (1, 2):
            raise DagPbError(f"malformed dag-pb node: unexpected field {field} (wire type {wt})"
                             f" at offset {at}")
        s, e = _length_delimited(buf, pos, end, "node")
        if field == 2:
            if payload is not None:
                raise DagPbError(f"malformed dag-pb node: a link follows Data at offset {at} (not canonical)")
            links.append(_decode_link(buf, s, e))
        else:
            if payload is not None:
                raise DagPbError(f"malformed dag-pb node: Data repeated at offset {at}")
            payload = buf[s:e]
        pos = e
    return PBNode(tuple(links), payload)
