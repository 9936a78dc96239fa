"""The links of a dag-pb block as binary CIDs and Tsizes, without building CID objects.

gc's mark and the proof verifier follow hundreds of thousands of links; building a
``multiformats.CID`` (and its base32 text) for each costs several microseconds, while the binary
CID is all a set membership test or a path step needs. This scanner reads the dag-pb wire format
(``PBNode { repeated PBLink Links = 2; optional bytes Data = 1 }``, ``PBLink { bytes Hash = 1;
string Name = 2; uint64 Tsize = 3 }``) and checks its structure: lengths stay inside the block,
every link starts with its hash, only known fields appear. It does not re-validate each CID's
inner format: a bad CID in a hashed node was put there by the DAG's author and simply names a
block nobody has.
"""

from __future__ import annotations

import re

from cheng_build.cas.dagpb import DagPbError

RAW_CODEC = 0x55
DAG_PB_CODEC = 0x70


def _uv(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= end:
            raise DagPbError("malformed dag-pb: truncated varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise DagPbError("malformed dag-pb: varint too long")


# The link every UnixFS file node we (and go-ipfs / the JS importer) write is made of: a 36-byte
# CIDv1, an empty name, a Tsize. Matched in C by one regex over the node; the matches must tile
# the links exactly (checked below), otherwise the general scanner decides.
_LINK = (rb"\x12([\x00-\x7f]|[\x80-\xff][\x00-\x7f])\x0a\x24(.{36})\x12\x00\x18"
         rb"([\x80-\xff]{0,9}[\x00-\x7f])")
_FILE_LINK = re.compile(_LINK, re.DOTALL)
_FILE_LINKS = re.compile(rb"(?:" + _LINK.replace(b"(", b"(?:").replace(b"(?:?:", b"(?:") + rb")+",
                         re.DOTALL)


_VARINTS: dict[bytes, int] = {}  # varint bytes -> value: Tsizes repeat (every full leaf alike)


def _varint_bytes(b: bytes) -> int:
    n = _VARINTS.get(b)
    if n is None:
        n = shift = 0
        for byte in b:
            n |= (byte & 0x7F) << shift
            shift += 7
        if len(_VARINTS) < 4096:
            _VARINTS[b] = n
    return n


def _fast(data: bytes | memoryview) -> list[tuple[bytes, int]] | None:
    """The common case in C: the links region must be a contiguous run of file links from byte 0
    (``_FILE_LINKS.match``), then ``findall`` inside exactly that region; None otherwise."""
    region = _FILE_LINKS.match(data)
    if region is None:
        return None
    found = _FILE_LINK.findall(data, 0, region.end())
    out: list[tuple[bytes, int]] = []
    append = out.append
    vb = _varint_bytes
    pos = 0
    for ln, cid, ts in found:
        body = 41 + len(ts)  # Hash (2 + 36) + Name (2) + Tsize (1 + len)
        if vb(ln) != body:
            return None
        pos += 1 + len(ln) + body
        append((cid, vb(ts)))
    if pos != region.end():  # a declared link length disagrees with the shape
        return None
    end = len(data)
    if pos < end:
        if data[pos] != 0x0A:
            return None
        n, p = _uv(data, pos + 1, end)
        if p + n != end:
            return None
    return out


def links(data: bytes | memoryview) -> list[tuple[bytes, int]]:
    """``(binary CID, Tsize or 0)`` of each link of a dag-pb block, in order.

    Raises:
        DagPbError: the block is not structurally dag-pb.
    """
    fast = _fast(data)
    if fast is not None:
        return fast
    out: list[tuple[bytes, int]] = []
    pos, end = 0, len(data)
    while pos < end:
        key = data[pos]
        pos += 1
        n, pos = _uv(data, pos, end)
        stop = pos + n
        if stop > end:
            raise DagPbError("malformed dag-pb: a field runs past the end")
        if key == 0x12:  # Links (field 2, length-delimited)
            if pos >= stop or data[pos] != 0x0A:
                raise DagPbError("malformed dag-pb link: no Hash first")
            hn, hp = _uv(data, pos + 1, stop)
            if hp + hn > stop:
                raise DagPbError("malformed dag-pb link: Hash runs past the link")
            cid = data[hp:hp + hn]
            p = hp + hn
            tsize = 0
            while p < stop:
                k = data[p]
                p += 1
                if k == 0x12:  # Name
                    ln, p = _uv(data, p, stop)
                    p += ln
                elif k == 0x18:  # Tsize
                    tsize, p = _uv(data, p, stop)
                else:
                    raise DagPbError(f"malformed dag-pb link: unexpected key {k:#x}")
            if p != stop:
                raise DagPbError("malformed dag-pb link: a field runs past the link")
            out.append((bytes(cid), tsize))
        elif key != 0x0A:  # Data (field 1) is the only other field
            raise DagPbError(f"malformed dag-pb node: unexpected key {key:#x}")
        pos = stop
    return out


def codec(cid: bytes) -> int:
    """The codec of a binary CID (v0 ``Qm`` is dag-pb); -1 when it is not recognisable."""
    if len(cid) > 2 and cid[0] == 0x12 and cid[1] == 0x20:
        return DAG_PB_CODEC
    if len(cid) > 2 and cid[0] == 0x01 and cid[1] < 0x80:
        return cid[1]
    return -1
