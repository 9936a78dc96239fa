"""The version graph of a package (``log``) and what changed between two snapshots (``diff``).

``log`` (the seed's A1.2/A1.5): per channel (edge, stable, lts), the head line
``* head  <cid>  <channel>  epoch=<n>  author=<id>``, then one ``  prev  <cid>`` line per earlier
snapshot — following the ``parent`` links the registry records (a DAG: merges and tags are
possible), or, for lines of the existing tooling that have no ``parent``, the channel's earlier
epochs newest first.

``diff`` compares two snapshot DAGs (UnixFS directories) and walks only the subtrees whose
CIDs differ: identical subtrees are one dictionary comparison, however big they are. Output is
``changed:``/``added:``/``removed:`` lines with paths relative to the package root, sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cheng_build.core.errors import InputError, NotFoundError
from cheng_build.pkg.manifest import CHANNELS

if TYPE_CHECKING:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import CID
    from cheng_build.cas.dagpb import PBNode
    from cheng_build.trust.registry_log import RegistryLog


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of ``log``: a channel head or an earlier snapshot on its history."""

    is_head: bool
    cid: str
    channel: str
    epoch: int | None = None
    author_id: str | None = None

    def render(self) -> str:
        """The seed's A1.5 text form."""
        if self.is_head:
            return (f"* head  {self.cid}  {self.channel}  epoch={self.epoch}  "
                    f"author={self.author_id}")
        return f"  prev  {self.cid}"


def version_log(registry: RegistryLog, package_id: str) -> list[LogLine]:
    """The version graph of ``package_id``: each channel's head, then its history.

    Raises:
        NotFoundError: ``package not found`` — the registry has no publish of it.
    """
    entries = [e for e in registry.publishes(package_id)] if hasattr(registry, "publishes") \
        else [e for e in registry.entries if e.package_id == package_id]
    if not entries:
        raise NotFoundError("package not found",
                            why=f"the registry has no publish of {package_id}")
    by_cid: dict[str, Any] = {}
    for e in entries:
        by_cid[e.cid] = e  # the latest line naming a CID describes it
    promoted = _promoted_heads(registry, package_id)
    channels = [c for c in CHANNELS if any(e.channel == c for e in entries) or c in promoted]
    channels += sorted({e.channel for e in entries if e.channel not in CHANNELS})
    out: list[LogLine] = []
    for ch in channels:
        mine = [e for e in entries if e.channel == ch]
        head = mine[0] if mine else promoted[ch]
        for e in mine:
            if (e.epoch or 0) >= (head.epoch or 0):
                head = e
        head = promoted.get(ch, head)  # a signed promotion moved the channel since
        if not mine:
            mine = [head]
        out.append(LogLine(True, head.cid, ch, head.epoch, head.author_id))
        seen = {head.cid}
        if any(getattr(e, "parent", None) for e in mine):
            cur = head
            while getattr(cur, "parent", None) and cur.parent not in seen:
                seen.add(cur.parent)
                out.append(LogLine(False, cur.parent, ch))
                nxt = by_cid.get(cur.parent)
                if nxt is None:
                    break
                cur = nxt
        else:
            for e in sorted(mine, key=lambda e: (e.epoch or 0, e.line), reverse=True):
                if e.cid not in seen:
                    seen.add(e.cid)
                    out.append(LogLine(False, e.cid, ch, e.epoch, e.author_id))
    return out


def _promoted_heads(registry: Any, package_id: str) -> dict[str, Any]:
    """channel -> the publish a promotion made its head (only channels a promotion moved last)."""
    from cheng_build.trust.registry_log import RegistryLog

    if not isinstance(registry, RegistryLog):
        return {}
    from cheng_build.trust.gov_view import Via, governance_of

    view = governance_of(registry)
    out = {}
    for ch in CHANNELS:
        h = view.head(package_id, ch)
        if h is not None and h.via is Via.PROMOTE:
            out[ch] = h.entry
    return out


# --- diff --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``kind`` is changed, added or removed; ``path`` is relative."""

    kind: str
    path: str

    def render(self) -> str:
        """``changed: src/a.cheng`` (labels padded so the paths line up, as in A1.5)."""
        return f"{self.kind + ':':<8} {self.path}"


class DiffError(InputError):
    """A CID given to diff is not a snapshot directory we can walk."""


def _as_cid(value: CID | str) -> CID:
    if isinstance(value, str):
        from cheng_build.cas.cid import parse_cid

        return parse_cid(value)
    return value


def _node(store: Blockstore, cid: CID) -> tuple[str, dict[str, CID]]:
    """("dir", {name: child CID}) or ("file", {}) for a block."""
    from cheng_build.cas import dagpb, unixfs
    from cheng_build.cas.cid import DAG_PB

    if cid.codec.code != DAG_PB:
        return "file", {}
    node = dagpb.decode(store.get(cid))
    kind = unixfs.decode(node.data).type
    if kind == unixfs.NodeType.DIRECTORY:
        return "dir", {link.name or "": link.hash for link in node.links}
    if kind == unixfs.NodeType.HAMT_SHARD:
        return "dir", dict(_hamt_entries(store, node))
    return "file", {}


def _hamt_entries(store: Blockstore, node: PBNode) -> Iterator[tuple[str, CID]]:
    """Entries of a HAMT-sharded directory (made by other IPFS tools): name -> CID."""
    from cheng_build.cas import dagpb

    for link in node.links:
        name = link.name or ""
        if len(name) == 2:  # a sub-shard: just the two-hex-digit bucket prefix
            yield from _hamt_entries(store, dagpb.decode(store.get(link.hash)))
        else:
            yield name[2:], link.hash


def _files(store: Blockstore, cid: CID, prefix: str) -> Iterator[str]:
    kind, links = _node(store, cid)
    if kind == "file":
        yield prefix
        return
    for name in sorted(links):
        yield from _files(store, links[name], f"{prefix}/{name}" if prefix else name)


def snapshot_diff(store: Blockstore, from_cid: CID | str, to_cid: CID | str) -> list[Change]:
    """What changed from one snapshot to another, walking only subtrees whose CIDs differ.

    Args:
        store: a blockstore (``get(cid) -> bytes``) holding both snapshots.
        from_cid: the older snapshot (CID or text).
        to_cid: the newer snapshot (CID or text).

    Raises:
        CidError: a CID string is malformed.
        NotFoundError: a block is missing from the store (names the CID).
        DiffError: a snapshot root is not a directory.
    """
    a, b = _as_cid(from_cid), _as_cid(to_cid)
    out: list[Change] = []
    if a == b:
        return out
    for cid, label in ((a, "--from"), (b, "--to")):
        if _node(store, cid)[0] != "dir":
            raise DiffError(f"{label} {cid} is not a snapshot directory",
                            how="diff compares package snapshots (format dag)")
    stack: list[tuple[str, CID, CID]] = [("", a, b)]
    while stack:
        prefix, x, y = stack.pop()
        kx, lx = _node(store, x)
        ky, ly = _node(store, y)
        if kx == "file" and ky == "file":
            out.append(Change("changed", prefix))
            continue
        if kx != ky:
            out += [Change("removed", p) for p in _files(store, x, prefix)]
            out += [Change("added", p) for p in _files(store, y, prefix)]
            continue
        for name in set(lx) | set(ly):
            cx, cy = lx.get(name), ly.get(name)
            if cx == cy:
                continue  # same CID: the whole subtree is identical, never walked
            path = f"{prefix}/{name}" if prefix else name
            if cx is None:
                assert cy is not None  # the name is in one of the two
                out += [Change("added", p) for p in _files(store, cy, path)]
            elif cy is None:
                out += [Change("removed", p) for p in _files(store, cx, path)]
            else:
                stack.append((path, cx, cy))
    order = {"changed": 0, "added": 1, "removed": 2}
    out.sort(key=lambda c: (order[c.kind], c.path))
    return out


__all__ = ["Change", "DiffError", "LogLine", "snapshot_diff", "version_log"]
