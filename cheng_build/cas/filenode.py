"""A UnixFS file node's dag-pb bytes straight from its children (the balanced layout in bulk).

The importer builds one such node per 174 leaves; going through :class:`~cheng_build.cas.dagpb.PBNode`,
:class:`~cheng_build.cas.dagpb.PBLink` and CID objects costs more Python time per GiB than the
rest of the tree walk, so this writes the same bytes from plain tuples: per child a link
``{Hash, Name: "", Tsize}`` and then ``Data = {Type: File, filesize, blocksizes}``, exactly what
``dagpb.encode(PBNode(links, unixfs.encode(Data(FILE, filesize, blocksizes))))`` gives (a
property test holds the two together).
"""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cas import varint

__all__ = ["Child", "file_node"]

Child = tuple[bytes, int, int]  # the child's binary CID, its Tsize, its content bytes (filesize)

_FILE_TYPE = b"\x08\x02"  # UnixFS Data field 1 (Type) = File (2)


def file_node(children: Sequence[Child]) -> bytes:
    """The dag-pb block of a UnixFS file node over ``children`` (in order).

    Raises:
        ValueError: a size is negative or not below 2**64.
    """
    cache: dict[int, bytes] = {}  # a file's leaves mostly share one size: encode it once

    def vint(value: int) -> bytes:
        got = cache.get(value)
        if got is None:
            got = cache[value] = varint.encode(value)
        return got

    parts: list[bytes] = []
    total = 0
    for cid, tsize, filesize in children:
        # Link: Hash (field 1), Name "" (field 2, present and empty, as go/js write it), Tsize (3).
        body = b"\x0a" + vint(len(cid)) + cid + b"\x12\x00\x18" + vint(tsize)
        parts.append(b"\x12" + vint(len(body)) + body)
        total += filesize
    data = b"".join([_FILE_TYPE, b"\x18", varint.encode(total),
                     *(b"\x20" + vint(filesize) for _, _, filesize in children)])
    parts.append(b"\x0a" + varint.encode(len(data)) + data)
    return b"".join(parts)
