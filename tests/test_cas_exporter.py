"""Exporter and materialize: round trips, listings, HAMT reads, hostile DAGs, no half checkouts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from helpers_cas import MemoryStore
from helpers_packstore import drop_block

from cheng_build.cas import dagpb, unixfs
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import CID, make_cid
from cheng_build.cas.exporter import (
    EntryKind,
    UnixFSStructureError,
    export_to,
    iter_dag,
    ls,
    read_file,
    read_path,
)
from cheng_build.cas.importer import add_bytes, add_path, import_path
from cheng_build.cas.materialize import materialize, package_dir
from cheng_build.core.errors import InputError, NotFoundError, PolicyError


def make_tree(root: Path) -> None:
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "main.cheng").write_text("fn main() {}\n")
    (root / "src" / "deep" / "big.bin").write_bytes(os.urandom(700_000))
    (root / "empty").mkdir()
    (root / "zero").write_bytes(b"")
    (root / "ünï").write_text("unicode name")
    os.symlink("src/main.cheng", root / "link")


def snapshot_of(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


def test_tree_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    store = Blockstore(tmp_path / "store")
    res = import_path(store, src)
    out = export_to(store, res.root, tmp_path / "out")
    assert snapshot_of(out) == snapshot_of(src)
    assert add_path(None, out) == res.root
    assert len(list(iter_dag(store, res.root))) == len(list(store.iter_cids()))
    assert read_path(store, res.root, "src/main.cheng") == b"fn main() {}\n"
    assert read_path(store, res.root, "src/deep/big.bin") == (src / "src/deep/big.bin").read_bytes()
    with pytest.raises(NotFoundError, match="src/nope"):
        read_path(store, res.root, "src/nope")


def test_iter_dag_visits_every_block_once(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    root = add_bytes(store, os.urandom(64 * 400), chunker="size-64")  # one batch: 404 blocks
    cids = list(iter_dag(store, root))
    assert cids[0] == root and len(cids) == len(set(map(bytes, cids))) == 400 + 3 + 1
    assert set(map(bytes, cids)) == set(map(bytes, store.iter_cids()))


def test_ls(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    store = Blockstore(tmp_path / "s")
    root = add_path(store, src)
    entries = {e.name: e for e in ls(store, root)}
    assert [e.name for e in ls(store, root)] == sorted(entries, key=str.encode)
    assert entries["src"].kind is EntryKind.DIRECTORY
    assert entries["link"].kind is EntryKind.SYMLINK
    assert entries["zero"].kind is EntryKind.FILE and entries["zero"].size == 0
    with pytest.raises(InputError, match="not a directory"):
        ls(store, entries["zero"].cid)


def test_multilevel_file_streams_back() -> None:
    store = MemoryStore()
    data = os.urandom(16 * 30_500)  # > 174 * 174 leaves: three levels
    root = add_bytes(store, data, chunker="size-16")  # type: ignore[arg-type]
    top = dagpb.decode(store.get(root))
    assert len(top.links) == 2 and len(dagpb.decode(store.get(top.links[0].hash)).links) == 174
    assert read_file(store, root) == data  # type: ignore[arg-type]


def _put_node(store: Blockstore, node: dagpb.PBNode) -> CID:
    block = dagpb.encode(node)
    cid = make_cid(block, "dag-pb")
    store.put(cid, block)
    return cid


def test_reads_hamt_sharded_directories(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    a, b = add_bytes(store, b"alpha"), add_bytes(store, b"beta")
    shard = unixfs.encode(unixfs.Data(unixfs.NodeType.HAMT_SHARD, data=b"\x01", hash_type=0x22, fanout=256))
    sub = _put_node(store, dagpb.PBNode((dagpb.PBLink(b, "7Fbeta.txt", 4),), shard))
    root = _put_node(store, dagpb.PBNode(
        (dagpb.PBLink(a, "0Calpha.txt", 5), dagpb.PBLink(sub, "7F", 60)), shard))
    assert [(e.name, e.kind) for e in ls(store, root)] == [("alpha.txt", EntryKind.FILE),
                                                           ("beta.txt", EntryKind.FILE)]
    out = export_to(store, root, tmp_path / "o")
    assert (out / "beta.txt").read_bytes() == b"beta"


@pytest.mark.parametrize("name", ["..", ".", "a/b", ""])
def test_hostile_names_are_refused(tmp_path: Path, name: str) -> None:
    store = Blockstore(tmp_path / "s")
    f = add_bytes(store, b"pwned")
    d = unixfs.encode(unixfs.Data(unixfs.NodeType.DIRECTORY))
    root = _put_node(store, dagpb.PBNode((dagpb.PBLink(f, name, 5),), d))
    with pytest.raises(UnixFSStructureError, match="unsafe entry name"):
        export_to(store, root, tmp_path / "out")
    assert not (tmp_path / "pwned").exists()


def test_lying_filesize_is_caught(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    leaf = add_bytes(store, b"1234")
    meta = unixfs.encode(unixfs.Data(unixfs.NodeType.FILE, filesize=10, blocksizes=(4,)))
    root = _put_node(store, dagpb.PBNode((dagpb.PBLink(leaf, "", 4),), meta))
    with pytest.raises(UnixFSStructureError, match="declares 10"):
        read_file(store, root)


def test_export_refuses_existing_target(tmp_path: Path) -> None:
    store = Blockstore(tmp_path / "s")
    cid = add_bytes(store, b"x")
    (tmp_path / "there").write_text("keep me")
    with pytest.raises(InputError, match="already exists"):
        export_to(store, cid, tmp_path / "there")
    assert (tmp_path / "there").read_text() == "keep me"


def test_materialize_is_all_or_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    store = Blockstore(tmp_path / "cache")
    root = add_path(store, src)
    # Remove one leaf: the checkout must fail and leave neither the final dir nor a temp dir.
    victim = next(c for c in iter_dag(store, root) if c.codec.name == "raw")
    blob = store.get(victim)
    drop_block(store, victim)
    with pytest.raises(NotFoundError, match=str(victim)):
        materialize(store, root, tmp_path / "cache")
    packages = tmp_path / "cache" / "packages"
    assert list(packages.iterdir()) == []
    store.put(victim, blob)
    out = materialize(store, root, tmp_path / "cache")
    assert out == package_dir(tmp_path / "cache", root) and snapshot_of(out) == snapshot_of(src)
    assert (out / "zero").stat().st_mode & 0o777 == 0o444
    assert materialize(store, root, tmp_path / "cache") == out


def test_concurrent_materialize(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    store = Blockstore(tmp_path / "cache")
    root = add_path(store, src)
    results: list[Path] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            results.append(materialize(store, root, tmp_path / "cache"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(set(results)) == 1
    assert [p.name for p in (tmp_path / "cache" / "packages").iterdir()] == [str(root)]


def test_materialize_refuses_a_file(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        materialize(store, add_bytes(store, b"file"), tmp_path)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../.."])
def test_escaping_symlinks(tmp_path: Path, target: str) -> None:
    src = tmp_path / "pkg"
    (src / "src").mkdir(parents=True)
    (src / "src" / "ok.cheng").write_text("x")
    os.symlink("ok.cheng", src / "src" / "inside")  # stays inside: always fine
    os.symlink(target, src / "src" / "evil")
    store = Blockstore(tmp_path / "cache")
    with pytest.raises(PolicyError, match="symlink points outside the package"):
        add_path(store, src, snapshot=True)
    root = add_path(store, src)  # a plain add keeps it (it is what is on disk) ...
    out = export_to(store, root, tmp_path / "plain")  # ... and a plain get writes it back
    assert os.readlink(out / "src" / "evil") == target
    with pytest.raises(UnixFSStructureError, match="points outside the snapshot"):
        materialize(store, root, tmp_path / "cache")  # but never into the package cache
    assert list((tmp_path / "cache" / "packages").iterdir()) == []


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    store = Blockstore(tmp_path / "s")
    root = add_path(store, src)
    victim = [c for c in iter_dag(store, root) if c.codec.name == "raw"][-1]
    drop_block(store, victim)
    with pytest.raises(NotFoundError):
        export_to(store, root, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "src"]  # no out, no temp


def test_expansion_bomb_is_capped(tmp_path: Path) -> None:
    from cheng_build.cas.exporter import ExportLimits

    store = Blockstore(tmp_path / "s")
    leaf = add_bytes(store, b"x" * 1000)
    d = unixfs.encode(unixfs.Data(unixfs.NodeType.DIRECTORY))
    level = _put_node(store, dagpb.PBNode(tuple(dagpb.PBLink(leaf, f"f{i:03}", 1000) for i in range(100)), d))
    for _ in range(3):  # 100 * 100 * 100 * 100 files from a handful of blocks
        links = tuple(dagpb.PBLink(level, f"d{i:03}", 1) for i in range(100))
        level = _put_node(store, dagpb.PBNode(links, d))
    with pytest.raises(UnixFSStructureError, match="export limits"):
        export_to(store, level, tmp_path / "bomb", limits=ExportLimits(max_bytes=200_000))
    with pytest.raises(UnixFSStructureError, match="export limits"):
        export_to(store, level, tmp_path / "bomb", limits=ExportLimits(max_entries=300))
    assert not (tmp_path / "bomb").exists()
