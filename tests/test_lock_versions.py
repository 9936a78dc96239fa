"""cheng-pkg log (version graph) and diff (walks only subtrees whose CIDs differ)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_lock import MemBlocks, World, add_tree

from cheng_build.cas import dagpb
from cheng_build.cas.cid import CID, cid_str
from cheng_build.core.errors import NotFoundError
from cheng_build.pkg.versions import DiffError, snapshot_diff, version_log


def test_log_follows_parent_links(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    a = world.publish("pkg://cheng/net", "edge", author="node:alice")
    b = world.publish("pkg://cheng/net", "edge", author="node:alice", files={"v": b"2"},
                      parent=a["cid"])
    c = world.publish("pkg://cheng/net", "edge", author="node:alice", files={"v": b"3"},
                      parent=b["cid"])
    s = world.publish("pkg://cheng/net", "stable", author="node:alice", files={"v": b"s"})
    lines = [ln.render() for ln in version_log(world.registry(), "pkg://cheng/net")]
    assert lines == [
        f"* head  {c['cid']}  edge  epoch=3  author=node:alice",
        f"  prev  {b['cid']}",
        f"  prev  {a['cid']}",
        f"* head  {s['cid']}  stable  epoch=1  author=node:alice",
    ]


def test_log_without_parents_lists_earlier_epochs(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    a = world.publish("pkg://cheng/fs", "stable")
    b = world.publish("pkg://cheng/fs", "stable", files={"x": b"x"})
    lines = [ln.render() for ln in version_log(world.registry(), "pkg://cheng/fs")]
    assert lines == [f"* head  {b['cid']}  stable  epoch=2  author=node:fs", f"  prev  {a['cid']}"]
    with pytest.raises(NotFoundError):
        version_log(world.registry(), "pkg://cheng/none")


class CountingStore(MemBlocks):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, cid: CID | str) -> bytes:
        self.reads.append(cid if isinstance(cid, str) else cid_str(cid))
        return super().get(cid)


def test_diff_walks_only_differing_subtrees() -> None:
    store = CountingStore()
    vendor = {f"vendor/lib{i}/mod.cheng": f"fn F{i}(): int32 = {i}\n".encode() for i in range(50)}
    old = add_tree(store, {**vendor, "src/main.cheng": b"fn main(): int32 = 0\n",
                           "src/old.cheng": b"old", "README": b"r"})
    new = add_tree(store, {**vendor, "src/main.cheng": b"fn main(): int32 = 1\n",
                           "src/utils/net.cheng": b"net", "README": b"r"})
    store.reads.clear()
    changes = [c.render() for c in snapshot_diff(store, old, new)]
    assert changes == ["changed: src/main.cheng", "added:   src/utils/net.cheng",
                       "removed: src/old.cheng"]
    vendor_cid = {cid_str(link.hash) for link in dagpb.decode(store.blocks[old]).links
                  if link.name == "vendor"}
    assert vendor_cid and not vendor_cid & set(store.reads)
    assert len(store.reads) <= 10  # two roots, two src dirs, the new utils dir: never vendor/
    assert snapshot_diff(store, old, old) == []


def test_diff_needs_directories() -> None:
    store = MemBlocks()
    d = add_tree(store, {"a": b"a"})
    leaf = next(k for k in store.blocks if k != d)
    with pytest.raises(DiffError):
        snapshot_diff(store, leaf, d)
