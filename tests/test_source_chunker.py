"""The source-package chunker profile: which chunker a snapshot gets, that the recorded spec
recomputes the CID, and that a new version of edited sources stores a fraction of their bytes."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_registry import World

from cheng_build.cas import importer
from cheng_build.cas.blockstore import Blockstore
from cheng_build.core.errors import UsageError
from cheng_build.pkg import snapshot
from cheng_build.pkg.snapshot import SnapshotFormat, make_snapshot


def module(seed: int, n: int = 1500) -> str:
    """A plausible ~60 KB Cheng module: many small functions."""
    rng = random.Random(seed)
    out = []
    for i in range(n // 3):
        out.append(f"fn F{i}v{rng.randrange(10**6)}(a: int32, b: str): int32 =\n"
                   f"    let x = a * {rng.randrange(1000)} + len(b)\n    return x\n")
    return "".join(out)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body, encoding="utf-8")
    return root


def store_bytes(store: Blockstore) -> dict[str, int]:
    return {str(c): len(store.get(c)) for c in store.iter_cids()}


def test_source_package_gets_the_source_profile_and_its_cid_recomputes(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", {"src/a.cheng": module(1), "src/b.cheng": module(2)})
    store = Blockstore(tmp_path / "store")
    snap = make_snapshot(store, src, SnapshotFormat.DAG)
    assert snap.chunker == snapshot.SOURCE_CHUNKER
    # Anyone holding the tree and the recorded spec gets the same CID, without a store.
    again = importer.import_path(None, src, chunker=snap.chunker, snapshot=True)
    assert str(again.root) == snap.cid
    # ... and the old default gives another one: the record is what makes it recomputable.
    other = importer.import_path(None, src, chunker=snapshot.SNAPSHOT_CHUNKER, snapshot=True)
    assert str(other.root) != snap.cid


def test_large_file_keeps_the_big_chunk_profile(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "p", {"src/a.cheng": module(1)})
    with (src / "data.bin").open("wb") as fh:
        fh.truncate(snapshot.SOURCE_PROFILE_MAX_FILE + 1)
    assert snapshot.dag_chunker(src) == snapshot.SNAPSHOT_CHUNKER


def test_override_and_bad_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_tree(tmp_path / "p", {"src/a.cheng": module(1)})
    monkeypatch.setenv("CHENG_SNAPSHOT_CHUNKER", "fastcdc-1024-4096-65536")
    assert make_snapshot(None, src, SnapshotFormat.DAG).chunker == "fastcdc-1024-4096-65536"
    monkeypatch.setenv("CHENG_SNAPSHOT_CHUNKER", "fastcdc-1-2-3")
    with pytest.raises(UsageError, match="chunker"):
        make_snapshot(None, src, SnapshotFormat.DAG)


def test_bad_override_through_the_cli(tmp_path: Path) -> None:
    w = World(tmp_path)
    manifest = 'package_id = "pkg://cheng/p"\nversion = "1.0.0"\n'
    src = write_tree(tmp_path / "p", {"cheng-package.toml": manifest, "src/a.cheng": module(1)})
    key = tmp_path / "k.key"
    env = {"PATH": "/usr/bin:/bin", "PKG_TRUST_DIR": str(tmp_path / "t"),
           "PKG_AUDIT_LOG": str(tmp_path / "audit"), "CHENG_SNAPSHOT_CHUNKER": "sizes-9"}
    cli = [sys.executable, "-m", "cheng_build.cli.registry"]
    subprocess.run([*cli, "keygen", f"--out:{key}", "--author:a"], env=env, check=True,
                   capture_output=True)
    proc = subprocess.run([*cli, "publish", "--package:pkg://cheng/p", "--channel:edge", "--epoch:1",
                           f"--src:{src}", f"--priv:{key}", f"--store:{w.store.root}",
                           f"--registry:{w.registry}"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("publish: unknown chunker 'sizes-9'")
    assert "Traceback" not in proc.stderr
    assert not w.registry.exists()


def test_new_version_stores_a_fraction_of_the_changed_files(tmp_path: Path) -> None:
    """The goal of the profile, as a property of the bytes: editing a function in every file
    stores well under half of those files' bytes (256 KiB chunks stored all of them again)."""
    files = {f"src/m{i}.cheng": module(i) for i in range(4)}
    v1 = write_tree(tmp_path / "v1", files)
    edited = {}
    for rel, body in files.items():
        lines = body.splitlines(keepends=True)
        fns = len(lines) // 3  # each function is 3 lines: fn, let, return
        for m in (fns // 2,):  # one function edited per file, as a release does
            assert lines[3 * m + 2] == "    return x\n"
            lines[3 * m + 2] = "    return x + 1\n"
        edited[rel] = "".join(lines)
        assert edited[rel] != body
    v2 = write_tree(tmp_path / "v2", edited)
    for profile, limit in ((None, 0.5), (snapshot.SNAPSHOT_CHUNKER, None)):
        store = Blockstore(tmp_path / f"store-{profile}")
        if profile:
            chunker = profile
            importer.import_path(store, v1, chunker=chunker, snapshot=True)
            before = store_bytes(store)
            importer.import_path(store, v2, chunker=chunker, snapshot=True)
        else:
            make_snapshot(store, v1, SnapshotFormat.DAG)
            before = store_bytes(store)
            make_snapshot(store, v2, SnapshotFormat.DAG)
        new = sum(n for cid, n in store_bytes(store).items() if cid not in before)
        changed = sum(len(b.encode()) for b in edited.values())
        assert new > 0  # something did change
        if limit is not None:
            assert new < limit * changed, (new, changed)
        else:
            assert new > changed  # the big-chunk profile rewrites every edited file whole
