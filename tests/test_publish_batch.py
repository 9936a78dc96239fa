"""Publish writes its blocks in one store batch (one fsync), committed before the registry line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers_registry import World

from cheng_build.cas import importer
from cheng_build.cas.blockstore import Batch, Blockstore
from cheng_build.cas.cid import parse_cid
from cheng_build.pkg import api
from cheng_build.pkg.snapshot import read_snapshot_file
from cheng_build.trust.registry_log import RegistryLog


def package(root: Path) -> Path:
    (root / "src" / "net").mkdir(parents=True)
    (root / "src" / "net" / "tcp.cheng").write_text("fn Dial(a: str): int =\n    return 1\n")
    (root / "src" / "main.cheng").write_text("fn Main(): int =\n    return 0\n")
    (root / "README.md").write_text("hello\n")
    (root / "cheng-package.toml").write_text('package_id = "pkg://cheng/net"\nversion = "1.0.0"\n')
    return root


def count_commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each committed batch's staged block count, in order."""
    seen: list[int] = []
    real: Callable[[Batch], None] = Batch.commit

    def commit(self: Batch) -> None:
        seen.append(self.staged)
        real(self)

    monkeypatch.setattr(Batch, "commit", commit)
    return seen


@pytest.mark.parametrize("fmt", ["dag", "tar", "source"])
def test_publish_commits_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    w = World(tmp_path)
    src = package(tmp_path / "pkg")
    commits = count_commits(monkeypatch)
    e = w.publish("pkg://cheng/net", "node:alice", 1, src=src, fmt=fmt)
    # Before: the snapshot and the API table each committed a batch (the source format one per file).
    assert len(commits) == 1 and commits[0] >= 2
    fresh = Blockstore(w.store.root)  # what another process sees: committed, indexed, readable
    assert read_snapshot_file(fresh, e.cid, fmt, "src/net/tcp.cheng") == \
        (src / "src" / "net" / "tcp.cheng").read_bytes()
    assert fresh.get(parse_cid(e.data["api_cid"]))  # the API table is in the same batch
    if fmt == "dag":
        assert [str(c) for c in fresh.pins()] == [e.cid]


def test_registry_line_comes_after_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = World(tmp_path)
    src = package(tmp_path / "pkg")
    checked: list[str] = []
    real = RegistryLog.append

    def append(registry: Any, build: Any) -> Any:
        # When the line is about to be written, every block it names is committed and pinned.
        fresh = Blockstore(w.store.root)
        assert [str(c) for c in fresh.pins()] != []
        root = fresh.pins()[0]
        assert fresh.get(root)
        checked.append(str(root))
        return real(registry, build)

    monkeypatch.setattr(RegistryLog, "append", staticmethod(append))
    e = w.publish("pkg://cheng/net", "node:alice", 1, src=src)
    assert checked == [e.cid]
    assert Blockstore(w.store.root).get(parse_cid(e.data["api_cid"]))


def test_failure_after_the_snapshot_leaves_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    w = World(tmp_path)
    src = package(tmp_path / "pkg")

    def broken(*_: Any, **__: Any) -> Any:
        raise OSError(5, "the API pass failed")

    monkeypatch.setattr(api, "module_sources", broken)  # the API pass publish runs (on its scan thread)
    with pytest.raises(OSError, match="API pass failed"):
        w.publish("pkg://cheng/net", "node:alice", 1, src=src)
    # The staged snapshot blocks were discarded with the batch: no blocks, no pin, no line.
    fresh = Blockstore(w.store.root)
    assert list(fresh.iter_cids()) == [] and fresh.pins() == []
    assert not os.path.exists(w.registry)
    monkeypatch.undo()
    e = w.publish("pkg://cheng/net", "node:alice", 1, src=src)  # and the store still works
    assert Blockstore(w.store.root).get(parse_cid(e.cid))


def test_into_must_be_a_batch_of_the_store(tmp_path: Path) -> None:
    a, b = Blockstore(tmp_path / "a"), Blockstore(tmp_path / "b")
    with a.batch() as batch:
        with pytest.raises(ValueError, match="batch of the store"):
            importer.add_bytes(b, b"hello", into=batch)
        cid = importer.add_bytes(a, b"hello", into=batch)
        assert not Blockstore(a.root).has(cid)  # staged, not yet committed
    assert Blockstore(a.root).get(cid) == b"hello" and list(b.iter_cids()) == []


def test_dag_publish_does_not_import_tarfile(tmp_path: Path) -> None:
    # tarfile (~4 ms) is for the tar format only; a dag publish through the CLI never needs it.
    import subprocess
    import sys

    src = package(tmp_path / "pkg")
    key = tmp_path / "k.key"
    env = {**os.environ, "PKG_TRUST_DIR": str(tmp_path / "trust"),
           "PKG_AUDIT_LOG": str(tmp_path / "audit.log")}
    run = [sys.executable, "-c",
           "import sys\nfrom cheng_build.cli.registry import main\nrc = main(sys.argv[1:])\n"
           "print('tarfile' in sys.modules)\nsys.exit(rc)"]
    subprocess.run([*run, "keygen", f"--out:{key}", "--author:alice"], env=env, check=True,
                   capture_output=True)
    out = subprocess.run([*run, "publish", "--package:pkg://cheng/net", "--channel:edge",
                          "--epoch:1", f"--src:{src}", f"--priv:{key}",
                          f"--store:{tmp_path / 'store'}", f"--registry:{tmp_path / 'reg.jsonl'}"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
