"""``cheng-pkg log --graph``: a package's snapshots as a DAG, drawn as ``git log --graph`` does.

Nodes are the package's snapshots (the first publish of each CID), newest first; edges are each
publish's ``parent`` (the channel's previous head) and ``parents`` (merge parents). Every parent
is an earlier line of the log, so newest-first is a topological order. One row per snapshot::

    *  bafy...merge  edge@4  1.2.0  (head: edge; tag: v1.2.0)
    |\\
    | *  bafy...side  edge@3  1.1.1
    * |  bafy...main  stable@2  1.1.0  (head: stable)
    |/
    *  bafy...root  edge@1  1.0.0  (tag: v1.0.0)

Lanes: each column waits for one snapshot (a parent of something already drawn). A node takes
the first lane waiting for it; other lanes waiting for the same node join it (``|/``); a merge
opens a lane per extra parent (``|\\``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cheng_build.core.errors import NotFoundError


@dataclass(slots=True)
class Node:
    """One snapshot of the package."""

    cid: str
    line: int
    channel: str
    epoch: int | None
    version: str | None
    parents: list[str]
    heads: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    quarantined: bool = False

    def label(self) -> str:
        """The text after the graph columns."""
        text = f"{self.cid}  {self.channel}@{self.epoch}"
        if self.version:
            text += f"  {self.version}"
        deco = []
        if self.heads:
            deco.append("head: " + ", ".join(self.heads))
        if self.tags:
            deco.append("tag: " + ", ".join(self.tags))
        if self.quarantined:
            deco.append("QUARANTINED")
        return text + (f"  ({'; '.join(deco)})" if deco else "")


def graph_nodes(registry: Any, package_id: str) -> list[Node]:
    """The package's snapshots, newest first, with parents, channel heads and tags.

    Raises:
        NotFoundError: ``package not found``.
    """
    from cheng_build.trust.gov_view import governance_of

    nodes: dict[str, Node] = {}
    for e in registry.publishes(package_id):
        if e.cid in nodes:
            continue
        ps = [p for p in [e.data.get("parent"), *(e.data.get("parents") or ())]
              if isinstance(p, str) and p != e.cid]
        nodes[e.cid] = Node(e.cid, e.line, e.channel, e.epoch, e.version, list(dict.fromkeys(ps)))
    if not nodes:
        raise NotFoundError("package not found", why=f"the registry has no publish of {package_id}")
    view = governance_of(registry)
    for ch in ("edge", "stable", "lts"):
        h = view.head(package_id, ch)
        if h is not None and h.entry.cid in nodes:
            nodes[h.entry.cid].heads.append(ch)
    for cid, names in view.tags_of(package_id).items():
        if cid in nodes:
            nodes[cid].tags.extend(sorted(names))
    for cid, n in nodes.items():
        n.quarantined = view.quarantine(package_id, cid) is not None
        n.parents = [p for p in n.parents if p in nodes]  # a dangling parent draws nothing
    return sorted(nodes.values(), key=lambda n: n.line, reverse=True)


def draw(nodes: list[Node]) -> list[str]:
    """The ``git log --graph`` style rows of ``nodes`` (newest first)."""
    lanes: list[str] = []  # lanes[i] = the CID column i waits for
    out: list[str] = []
    for n in nodes:
        if n.cid in lanes:
            col = lanes.index(n.cid)
            joined = [i for i, c in enumerate(lanes) if c == n.cid and i != col]
            if joined:  # other lanes were waiting for this node too: they merge into it here
                for i in reversed(joined):
                    del lanes[i]
                out.append(" ".join("|" for _ in lanes) + "/" * len(joined))
        else:
            lanes.append(n.cid)
            col = len(lanes) - 1
        cells = ["*" if i == col else "|" for i in range(len(lanes))]
        out.append(" ".join(cells) + "  " + n.label())
        if not n.parents:
            del lanes[col]
            continue
        lanes[col] = n.parents[0]
        extra = [p for p in n.parents[1:]]
        if extra:
            for k, p in enumerate(extra):
                lanes.insert(col + 1 + k, p)
            out.append(" ".join("|" for _ in range(col + 1)) + "\\" * len(extra))
    return out


__all__ = ["Node", "draw", "graph_nodes"]
