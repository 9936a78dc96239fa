"""Snapshot formats (dag, tar, source), reading files back, and the SemVer gate at publish."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from helpers_packstore import tamper_block
from helpers_registry import World

from cheng_build.pkg.publish import PublishError
from cheng_build.pkg.snapshot import (
    SnapshotFormat,
    deterministic_tar,
    make_snapshot,
    read_snapshot_file,
)


def tree(root: Path) -> Path:
    (root / "src" / "net").mkdir(parents=True)
    (root / "src" / "net" / "tcp.cheng").write_text("fn Dial(a: str): int =\n    return 1\n")
    (root / "src" / "main.cheng").write_text("fn Main(): int =\n    return 0\n")
    (root / "README.md").write_text("hello\n")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_bytes(b"\0" * 10)  # excluded from snapshots
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    return root


def manifest(root: Path, package_id: str, version: str | None = None) -> Path:
    """Make ``root`` a package directory publish accepts (it refuses one without a manifest)."""
    text = f'package_id = "{package_id}"\n' + (f'version = "{version}"\n' if version else "")
    (root / "cheng-package.toml").write_text(text)
    return root


def test_tar_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tree(tmp_path / "a")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    data1, files = deterministic_tar(a)
    os.utime(a / "README.md", (1, 1))
    (a / "src" / "main.cheng").chmod(0o600)
    data2, _ = deterministic_tar(a)
    assert data1 == data2 and files == 4
    with tarfile.open(fileobj=io.BytesIO(data1)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode()) and "build" not in names
    assert {m.mtime for m in members} == {1700000000} and {m.uid for m in members} == {0}
    assert {m.uname for m in members} == {""}
    modes = {m.name: m.mode for m in members}
    assert modes["run.sh"] == 0o755 and modes["src/main.cheng"] == 0o644
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(Exception, match="SOURCE_DATE_EPOCH"):
        deterministic_tar(a)


@pytest.mark.parametrize("fmt", ["dag", "tar", "source"])
def test_formats_store_and_read_back(tmp_path: Path, fmt: str) -> None:
    w = World(tmp_path)
    src = tree(tmp_path / "pkg")
    addrs = ("/ip4/127.0.0.1/tcp/4005",) if fmt == "source" else ()
    snap = make_snapshot(w.store, src, SnapshotFormat(fmt), source_addrs=addrs)
    assert snap.files == 4
    assert read_snapshot_file(w.store, snap.cid, fmt, "src/net/tcp.cheng") == \
        (src / "src" / "net" / "tcp.cheng").read_bytes()
    assert read_snapshot_file(w.store, snap.cid, fmt, "missing.cheng") is None
    assert read_snapshot_file(w.store, snap.cid, fmt, "build/out.o") is None
    # Same tree, same CID (the snapshot is content-addressed and deterministic).
    assert make_snapshot(None, src, SnapshotFormat(fmt), source_addrs=addrs).cid == snap.cid


def test_file_snapshot_is_the_file(tmp_path: Path) -> None:
    w = World(tmp_path)
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello")
    snap = make_snapshot(w.store, f, SnapshotFormat.DAG)
    assert snap.cid == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert read_snapshot_file(w.store, snap.cid, "dag", "") == b"hello"


def test_publish_records_format_specifics(tmp_path: Path) -> None:
    w = World(tmp_path)
    src = manifest(tree(tmp_path / "pkg"), "pkg://cheng/net", "1.0.0")
    e = w.publish("pkg://cheng/net", "node:alice", 1, src=src)
    assert e.data["chunker"].startswith("fastcdc-") and e.format == "dag"
    assert e.api is not None and e.api.startswith("sha256:")


def test_semver_gate_refuses_breaking_minor(tmp_path: Path) -> None:
    w = World(tmp_path)
    src = manifest(tree(tmp_path / "pkg"), "pkg://cheng/net")  # each --version completes it
    w.publish("pkg://cheng/net", "node:alice", 1, src=src, version="1.0.0")
    (src / "src" / "net" / "tcp.cheng").write_text("fn Dial(a: str, port: int): int =\n    return 1\n")
    with pytest.raises(PublishError) as exc:
        w.publish("pkg://cheng/net", "node:alice", 2, src=src, version="1.1.0")
    assert exc.value.what == "version 1.1.0 breaks the API of 1.0.0"
    assert "net/tcp.Dial" in (exc.value.why or "")
    e = w.publish("pkg://cheng/net", "node:alice", 2, src=src, version="2.0.0")
    assert e.version == "2.0.0"
    (src / "src" / "extra.cheng").write_text("fn Extra(): int =\n    return 2\n")
    w.publish("pkg://cheng/net", "node:alice", 3, src=src, version="2.1.0")  # adding is minor
    with pytest.raises(PublishError, match="does not follow"):
        w.publish("pkg://cheng/net", "node:alice", 4, src=src, version="2.0.5")


@pytest.mark.parametrize("fmt", ["dag", "tar", "source"])
def test_content_check_reads_every_block(tmp_path: Path, fmt: str) -> None:
    from cheng_build.cas.cid import make_cid
    from cheng_build.core.errors import DigestMismatchError
    from cheng_build.pkg.snapshot import check_snapshot_content

    w = World(tmp_path)
    src = tree(tmp_path / "pkg")
    snap = make_snapshot(w.store, src, SnapshotFormat(fmt))
    assert check_snapshot_content(w.store, snap.cid, fmt) >= 1
    # Corrupt the block holding src/main.cheng's bytes (for tar: the archive itself).
    target = (src / "src" / "main.cheng").read_bytes()
    cids = [make_cid(target)] if fmt != "tar" else []
    tamper_block(w.store, cids[0] if cids else next(iter(w.store.iter_cids())))
    with pytest.raises(DigestMismatchError):
        check_snapshot_content(w.store, snap.cid, fmt)
