"""Walking a DAG: the links inside a block and every block reachable from a root."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cheng_build.cas import dagpb
from cheng_build.cas.cid import CID, DAG_PB, RAW, cid_bytes

__all__ = ["block_links", "walk_blocks", "walk_dag"]


def block_links(cid: CID, data: bytes) -> list[CID]:
    """The CIDs a block links to (none for raw blocks).

    Raises:
        DagPbError: a dag-pb block does not decode.
    """
    if cid.codec.code == RAW:
        return []
    if cid.codec.code == DAG_PB:
        return [link.hash for link in dagpb.decode(data).links]
    return []


def walk_blocks(get: Callable[[CID], bytes], root: CID) -> Iterator[tuple[CID, bytes]]:
    """Yield ``(cid, block)`` for every distinct block under ``root``, parents before children.

    ``get`` fetches and verifies a block; whatever it raises (not found, digest mismatch)
    propagates, so a walk that completes has seen every block intact.
    """
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        key = cid_bytes(cid)
        if key in seen:
            continue
        seen.add(key)
        data = get(cid)
        yield cid, data
        stack.extend(reversed(block_links(cid, data)))


def walk_dag(get: Callable[[CID], bytes], root: CID) -> Iterator[CID]:
    """Every distinct CID under ``root`` in :func:`walk_blocks` order."""
    for cid, _ in walk_blocks(get, root):
        yield cid
