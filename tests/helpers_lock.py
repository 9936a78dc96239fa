"""Fixtures for the lock tests and benchmark: signed registries and package snapshots.

``World`` builds a real, hash-chained, Ed25519-signed ``registry.jsonl`` (the format of
:mod:`cheng_build.trust.registry_log`, checked by its own ``verify`` in the tests) and real
UnixFS dag-pb snapshots (a directory node linking ``cheng-package.toml`` as a raw leaf, the
blocks ``ipfs add --raw-leaves`` writes for such a tree) in a small in-memory block map. Lines are
written in one pass instead of through ``RegistryLog.append`` (which re-reads the whole log per
line) so the benchmark can make 1,000-package registries quickly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheng_build.cas import dagpb, unixfs
from cheng_build.cas.cid import CID, cid_str, make_cid
from cheng_build.core.errors import NotFoundError
from cheng_build.trust import canonical
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_log import GENESIS_PREV


class MemBlocks:
    """A block map with the blockstore's read/write calls (``put``, ``get``, ``has``)."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}

    def put(self, cid: CID, data: bytes) -> None:
        self.blocks[cid_str(cid)] = bytes(data)

    def get(self, cid: CID | str) -> bytes:
        key = cid if isinstance(cid, str) else cid_str(cid)
        try:
            return self.blocks[key]
        except KeyError:
            raise NotFoundError(f"block {key} not found") from None

    def has(self, cid: CID | str) -> bool:
        return (cid if isinstance(cid, str) else cid_str(cid)) in self.blocks


def add_tree(store: MemBlocks, files: Mapping[str, bytes]) -> str:
    """Store a directory tree (path -> bytes, small files) as UnixFS dag-pb; returns its CID."""
    tree: dict[str, Any] = {}
    for path, data in files.items():
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = data

    def build(node: Mapping[str, Any]) -> tuple[CID, int]:
        links = []
        for name in sorted(node, key=lambda n: n.encode()):
            child = node[name]
            if isinstance(child, dict):
                cid, size = build(child)
            else:
                cid = make_cid(child, "raw")
                store.put(cid, child)
                size = len(child)
            links.append(dagpb.PBLink(cid, name, size))
        data = dagpb.encode(dagpb.PBNode(tuple(links),
                                         unixfs.encode(unixfs.Data(unixfs.NodeType.DIRECTORY))))
        cid = make_cid(data, "dag-pb")
        store.put(cid, data)
        return cid, len(data) + sum(link.tsize or 0 for link in links)

    return cid_str(build(tree)[0])


def read_manifest_from(store: MemBlocks) -> Any:
    """A resolve ``read_manifest`` over dag snapshots in ``store``."""
    def read(package_id: str, cid: str, fmt: str) -> tuple[bytes, str] | None:
        node = dagpb.decode(store.get(cid))
        for link in node.links:
            if link.name in ("cheng-package.toml", "cheng-package.yaml", "cheng-package.json"):
                return store.get(link.hash), link.name
        return None

    return read


def manifest_toml(package_id: str, deps: Iterable[tuple[str, str]], version: str = "1.0.0") -> bytes:
    lines = [f'package_id = "{package_id}"', f'version = "{version}"', ""]
    for pid, ch in deps:
        lines += ["[[dependencies]]", f'package_id = "{pid}"', f'channel = "{ch}"', ""]
    return "\n".join(lines).encode()


@dataclass
class World:
    """A registry being written plus the snapshots it names."""

    path: Path
    store: MemBlocks = field(default_factory=MemBlocks)
    keys: dict[str, KeyPair] = field(default_factory=dict)
    lines: list[bytes] = field(default_factory=list)
    epochs: dict[tuple[str, str], int] = field(default_factory=dict)

    def key(self, author: str) -> KeyPair:
        if author not in self.keys:
            seed = hashlib.sha256(author.encode()).digest()  # deterministic test keys
            self.keys[author] = KeyPair.from_seed(author, seed)
        return self.keys[author]

    def publish(self, package_id: str, channel: str = "stable",
                deps: Sequence[tuple[str, str]] = (), *, author: str | None = None,
                files: Mapping[str, bytes] | None = None, fmt: str = "dag",
                signature: str | None = None, **extra: Any) -> dict[str, Any]:
        """Snapshot a package (its manifest + ``files``) and append a signed publish line."""
        author = author or "node:" + package_id.rsplit("/", 1)[-1]
        tree = {"cheng-package.toml": manifest_toml(package_id, deps)}
        tree.update(files or {})
        cid = add_tree(self.store, tree)
        epoch = self.epochs.get((package_id, channel), 0) + 1
        self.epochs[(package_id, channel)] = epoch
        key = self.key(author)
        rec: dict[str, Any] = {"type": "publish", "seq": len(self.lines) + 1,
                               "prev": ("sha256:" + hashlib.sha256(self.lines[-1]).hexdigest()
                                        if self.lines else GENESIS_PREV),
                               "package_id": package_id, "author_id": author,
                               "channel": channel, "epoch": epoch, "cid": cid, "format": fmt,
                               "ast_simhash64": f"{int.from_bytes(cid.encode()[-8:], 'big'):016x}",
                               "originality_score": 0.9, "pub_key": key.pub_key,
                               "created_ts": str(1730000000 + len(self.lines))}
        rec.update(extra)
        rec["signature"] = signature or key.sign(canonical.publish_payload(rec))
        self.lines.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode())
        return rec

    def save(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"".join(line + b"\n" for line in self.lines))
        return self.path

    def registry(self) -> Any:
        from cheng_build.trust.registry_log import RegistryLog

        return RegistryLog.load(self.save())

    @property
    def reader(self) -> Any:
        return read_manifest_from(self.store)


def graph_world(path: Path, n: int, fanout: int = 3, store: Any = None) -> tuple[World, list[str]]:
    """A registry of ``n`` packages where package i depends on up to ``fanout`` later ones.

    Every package is reachable from package 0, so resolving a manifest that depends on package
    0 closes over all ``n``. ``store`` (anything with ``put``, e.g. a blockstore batch) receives
    the snapshot blocks instead of the in-memory map. Returns the world and the package ids.
    """
    world = World(path) if store is None else World(path, store=store)
    ids = [f"pkg://cheng/p{i:05d}" for i in range(n)]
    for i in reversed(range(n)):
        kids = [ids[j] for j in range(fanout * i + 1, min(n, fanout * i + 1 + fanout))]
        world.publish(ids[i], "stable", [(k, "stable") for k in kids],
                      author=f"node:a{i % 7}")
    return world, ids
