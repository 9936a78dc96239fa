"""Walking a DAG: the links inside a block and every block reachable from a root."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cheng_build.cas import dagpb
from cheng_build.cas.cid import CID, DAG_PB, RAW

__all__ = ["block_links", "walk_dag"]


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


def walk_dag(get: Callable[[CID], bytes], root: CID) -> Iterator[CID]:
    """Yield every distinct CID of the DAG under ``root``, parents before children (pre-order).

    ``get`` fetches and verifies a block; whatever it raises (not found, digest mismatch)
    propagates, so a walk that completes has seen every block intact.
    """
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        key = bytes(cid)
        if key in seen:
            continue
        seen.add(key)
        yield cid
        children = block_links(cid, get(cid))
        stack.extend(reversed(children))
