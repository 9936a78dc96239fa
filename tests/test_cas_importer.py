"""UnixFS import: the published vectors, layout invariants, chunker specs, snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers_parts import require_part
from hypothesis import given, settings
from hypothesis import strategies as st

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
    (["[!]x]"], "y", False, True),
    (["[!]x]"], "x", False, False),
    (["[z-a]"], "[z-a]", False, True),  # an invalid class is literal text, not a crash
    (["a[!b]c"], "a/c", False, False),  # a class never matches /
])
def test_ignore_rules(lines: list[str], path: str, is_dir: bool, expected: bool) -> None:
    assert IgnoreRules.from_lines(lines).excluded(path, is_dir) is expected


def test_import_result_counts(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 600_000)
    res = import_path(None, tmp_path / "d")
    assert res.files == 1 and res.bytes == 600_000 and res.blocks == 3 + 1 + 1


def _leaf_sizes(store: object, root: object) -> list[int]:
    from cheng_build.cas.exporter import iter_dag

    return [len(store.get(c)) for c in iter_dag(store, root) if c.codec.name == "raw"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("big", [False, True])
def test_fastcdc_is_valid_unixfs_and_dedups(tmp_path: Path, big: bool) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.chunker import native
    from cheng_build.cas.exporter import iter_dag, read_file

    if native() is None:
        require_part("the native library", "bash scripts/dev-build.sh (scripts/test.sh runs it)")
    import random

    rng = random.Random(7)
    v1 = rng.randbytes(3 << 20 if big else 600_000)
    v2 = v1[:500] + b"!" + v1[500:]
    store = Blockstore(tmp_path / "s")
    spec = "fastcdc-4096-16384-65536"
    f1, f2 = tmp_path / "v1", tmp_path / "v2"
    f1.write_bytes(v1)
    f2.write_bytes(v2)
    r1 = add_path(store, f1, chunker=spec)  # > 1 MiB: the file path (mmap / native) is taken
    r2 = add_path(store, f2, chunker=spec)
    assert r1 == add_bytes(None, v1, chunker=spec)  # in-memory and on-disk chunking agree
    assert read_file(store, r1) == v1 and read_file(store, r2) == v2
    sizes = _leaf_sizes(store, r1)
    assert len(set(sizes)) > 3 and max(sizes) <= 65536  # content-defined: varying leaf sizes
    leaves1 = {bytes(c) for c in iter_dag(store, r1) if c.codec.name == "raw"}
    shared = sum(len(store.get(c)) for c in iter_dag(store, r2)
                 if c.codec.name == "raw" and bytes(c) in leaves1)
    assert shared / len(v2) > 0.9
    fixed1, fixed2 = add_bytes(None, v1, chunker="size-16384"), add_bytes(None, v2, chunker="size-16384")
    assert fixed1 != fixed2


def test_blake3_dag_round_trips(tmp_path: Path) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.exporter import read_file

    store = Blockstore(tmp_path)
    data = os.urandom(700_000)
    root = add_bytes(store, data, hash="blake3")
    assert root.hashfun.name == "blake3" and root.codec.name == "dag-pb"
    assert read_file(store, root) == data
    f = tmp_path / "f"
    f.write_bytes(data * 2)
    assert add_path(None, f, hash="blake3") == add_bytes(None, data * 2, hash="blake3")


@settings(deadline=None)
@given(st.text(max_size=40))
def test_ignore_lines_never_crash(line: str) -> None:
    rules = IgnoreRules.from_lines([line])
    for path in ("a", "a/b", line.strip("/") or "x"):
        assert rules.excluded(path, True) in (True, False)


@settings(deadline=None)
@given(st.text(max_size=40))
def test_chunker_spec_parser(spec: str) -> None:
    try:
        ch = parse_chunker(spec)
    except UsageError as exc:
        assert spec in exc.what
        return
    assert str(ch) == spec.strip()  # canonical: e.g. non-ASCII digits are refused, not converted


@pytest.mark.parametrize("spec", ["size-262144", "size-1000", "fastcdc-4096-16384-65536"])
@pytest.mark.parametrize("hash", ["sha2-256", "blake3"])
def test_every_leaf_path_agrees(tmp_path: Path, spec: str, hash: str) -> None:
    """In-memory, hashlib-on-threads and native chunk_and_hash give identical leaves."""
    from cheng_build.cas import chunker

    ch = parse_chunker(spec)
    if ch.kind is chunker.ChunkerKind.FASTCDC and chunker.native() is None:
        require_part("the native library", "bash scripts/dev-build.sh (scripts/test.sh runs it)")
    data = os.urandom(3 * 1024 * 1024 + 17)
    f = tmp_path / "f"
    f.write_bytes(data)
    expected = chunker.bytes_leaves(data, ch, hash)
    seen: list[int] = []
    assert chunker._threaded(f, len(data), ch, hash, 3, seen.append) == expected
    assert sum(seen) == len(data)
    assert chunker.file_leaves(f, ch, hash, threads=2) == expected  # native when accelerated


def test_file_changing_mid_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FastCDC hashes first and stores in a second read: a rewrite in between is caught."""
    from cheng_build.cas import chunker, importer
    from cheng_build.cas.blockstore import Blockstore

    if chunker.native() is None:
        require_part("the native library", "bash scripts/dev-build.sh (scripts/test.sh runs it)")

    f = tmp_path / "grows.bin"
    f.write_bytes(os.urandom(2 << 20))
    real = importer.file_leaves

    def hash_then_someone_writes(*args: object, **kwargs: object) -> object:
        leaves = real(*args, **kwargs)  # type: ignore[arg-type]
        with open(f, "r+b") as fh:  # another process rewrites the file after we hashed it
            fh.write(b"\xff" * 100)
        return leaves

    monkeypatch.setattr(importer, "file_leaves", hash_then_someone_writes)
    store = Blockstore(tmp_path / "s")
    with pytest.raises(InputError, match="changed while it was being imported"):
        add_path(store, f, chunker="fastcdc-65536-262144-1048576")
    assert list(store.iter_cids()) == []


@pytest.mark.parametrize("spec", ["size-262144", "size-1000"])
@pytest.mark.parametrize("hash", ["sha2-256", "blake3"])
@pytest.mark.parametrize("window", [1 << 20, 4000, 16 << 20])
def test_one_pass_store_equals_hash_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str,
                                         hash: str, window: int) -> None:
    """Storing a fixed-chunk file reads it once (windows): same root as hashing it alone, every
    block stored and verifying on read, whatever the window."""
    from cheng_build.cas import chunker, importer
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.exporter import read_file

    real = chunker.fixed_windows
    monkeypatch.setattr(importer, "fixed_windows",
                        lambda *a, **k: real(*a, **{**k, "window": window}))  # type: ignore[arg-type]
    data = os.urandom(3 * 1024 * 1024 + 17)
    f = tmp_path / "f"
    f.write_bytes(data)
    store = Blockstore(tmp_path / "s")
    res = import_path(store, f, chunker=spec, hash=hash)
    assert res.root == add_path(None, f, chunker=spec, hash=hash)
    assert res.root == add_bytes(None, data, chunker=spec, hash=hash)
    assert read_file(store, res.root) == data
    for cid in store.iter_cids():
        store.get(cid)  # verifies the block against its CID


def test_one_pass_store_into_a_plain_sink(tmp_path: Path) -> None:
    """A sink without put_verified gets bytes it may keep (never a view of a reused buffer)."""
    from cheng_build.cas.cid import make_cid
    from cheng_build.cas.importer import _Builder
    from cheng_build.cas.progress import ImportProgress

    class Keep:
        def __init__(self) -> None:
            self.blocks: dict[object, bytes] = {}

        def put(self, cid: object, data: bytes) -> None:
            assert isinstance(data, bytes)
            self.blocks[cid] = data

    data = os.urandom((5 << 20) + 3)
    f = tmp_path / "f"
    f.write_bytes(data)
    sink = Keep()
    b = _Builder(sink, parse_chunker("size-262144"), "sha2-256", 2, None, ImportProgress())
    root = b.add_file(f).cid
    assert root == add_bytes(None, data)
    assert all(make_cid(v, cid.codec.name) == cid for cid, v in sink.blocks.items())  # type: ignore[attr-defined]


@pytest.mark.parametrize("change", ["shrink", "grow"])
def test_one_pass_store_refuses_a_file_changing_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     change: str) -> None:
    from cheng_build.cas import chunker, importer
    from cheng_build.cas.blockstore import Blockstore

    f = tmp_path / "f"
    f.write_bytes(os.urandom(3 << 20))
    real = chunker.fixed_windows

    def windows_while_someone_writes(*a: object, **k: object) -> object:
        for i, item in enumerate(real(*a, **{**k, "window": 1 << 20})):  # type: ignore[arg-type]
            if i == 0:
                if change == "shrink":
                    os.truncate(f, (1 << 20) + 5)
                else:
                    with open(f, "ab") as fh:
                        fh.write(b"more")
            yield item

    monkeypatch.setattr(importer, "fixed_windows", windows_while_someone_writes)
    store = Blockstore(tmp_path / "s")
    with pytest.raises(InputError, match="changed while it was being read"):
        add_path(store, f)
    assert list(store.iter_cids()) == []
