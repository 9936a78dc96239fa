"""UnixFS import: the published vectors, layout invariants, chunker specs, snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cheng_build.cas import dagpb, unixfs
from cheng_build.cas.chunker import parse_chunker
from cheng_build.cas.ignore import IgnoreRules
from cheng_build.cas.importer import add_bytes, add_path, import_path
from cheng_build.core.errors import InputError, UsageError

VECTOR = "bafybeibx62obrkybp46hx3ivh53q4rnptgkunpgtwiib5lfelfgt2ekihm"


def vector_bytes() -> bytes:
    return bytes(i % 251 for i in range(1_000_000))


def test_million_byte_vector_in_memory_and_from_disk(tmp_path: Path) -> None:
    data = vector_bytes()
    assert str(add_bytes(None, data)) == VECTOR
    f = tmp_path / "v.bin"
    f.write_bytes(data)
    assert str(add_path(None, f)) == VECTOR
    assert str(add_path(None, f, threads=1)) == VECTOR


def test_one_chunk_file_is_its_raw_leaf() -> None:
    assert str(add_bytes(None, b"hello")) == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert str(add_bytes(None, b"")).startswith("bafkrei")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    empty = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    assert str(add_path(None, tmp_path / "e")) == empty


def test_deep_file_uses_two_levels(tmp_path: Path) -> None:
    # 175 chunks of 64 bytes -> root with two children (174 + 1): the balanced layout.
    from cheng_build.cas.blockstore import Blockstore

    store = Blockstore(tmp_path / "s")
    root = add_bytes(store, os.urandom(64 * 175), chunker="size-64")
    node = dagpb.decode(store.get(root))
    assert [unixfs.decode(dagpb.decode(store.get(link.hash)).data).blocksizes.__len__()
            for link in node.links] == [174, 1]
    meta = unixfs.decode(node.data)
    assert meta.filesize == 64 * 175 and meta.blocksizes == (64 * 174, 64)


@pytest.mark.parametrize("spec", ["size-0", "size-1048577", "rabin", "fastcdc-1-2", "fastcdc-100-50-200",
                                  "fastcdc-64-100-200"])
def test_bad_chunker_specs(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_chunker(spec)
    assert spec in info.value.what


def test_chunker_spec_round_trips() -> None:
    for spec in ["size-262144", "size-1", "fastcdc-65536-262144-1048576"]:
        assert str(parse_chunker(spec)) == spec


def test_missing_path() -> None:
    with pytest.raises(InputError, match="no such file: /nonexistent/x"):
        add_path(None, "/nonexistent/x")


def test_order_and_symlinks_change_the_root(tmp_path: Path) -> None:
    d = tmp_path / "t"
    (d / "sub").mkdir(parents=True)
    (d / "B").write_bytes(b"1")
    (d / "a").write_bytes(b"2")
    (d / "sub" / "x").write_bytes(b"3")
    first = add_path(None, d)
    os.symlink("a", d / "link")
    second = add_path(None, d)
    assert first != second
    os.chmod(d / "a", 0o600)  # modes are not recorded
    assert add_path(None, d) == second


def test_snapshot_exclusions(tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    for rel in ["src/main.cheng", "build/out", ".git/HEAD", "src/__pycache__/x.pyc", "dist/a",
                "notes.tmp", "keep/build/x", "chengcache/blocks/x"]:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(rel)
    (d / ".chengignore").write_text("# comment\n*.tmp\n!keep/build/\n")
    clean = tmp_path / "clean"
    for rel in ["src/main.cheng", "keep/build/x"]:
        (clean / rel).parent.mkdir(parents=True, exist_ok=True)
        (clean / rel).write_text(rel)
    (clean / ".chengignore").write_text("# comment\n*.tmp\n!keep/build/\n")
    assert add_path(None, d, snapshot=True) == add_path(None, clean)
    assert add_path(None, d) != add_path(None, clean)


@pytest.mark.parametrize("lines,path,is_dir,expected", [
    (["*.o"], "a/b/c.o", False, True),
    (["/top"], "a/top", False, False),
    (["/top"], "top", False, True),
    (["doc/"], "doc", False, False),
    (["doc/"], "x/doc", True, True),
    (["a/**/z"], "a/b/c/z", False, True),
    (["a/**/z"], "a/z", False, True),
    (["**/m"], "x/y/m", True, True),
    (["*.log", "!keep.log"], "keep.log", False, False),
    (["f?o"], "fxo", False, True),
    (["f[ab]o"], "fco", False, False),
    (["\\#x"], "#x", False, True),
])
def test_ignore_rules(lines: list[str], path: str, is_dir: bool, expected: bool) -> None:
    assert IgnoreRules.from_lines(lines).excluded(path, is_dir) is expected


def test_import_result_counts(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 600_000)
    res = import_path(None, tmp_path / "d")
    assert res.files == 1 and res.bytes == 600_000 and res.blocks == 3 + 1 + 1
