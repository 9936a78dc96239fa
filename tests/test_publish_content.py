"""What publish computes from a package's files (pkg/publish_content.py, chengscan.c): the same
fingerprint, API table and snapshot as the separate passes it replaced.

Oracles: ``originality.fingerprint`` and ``api.extract_api_from_dir`` (each file in its own C
call; they are themselves tested against the pure-Python references in test_cheng_scan.py),
``originality.reference_fingerprint``, and a snapshot that reads every file itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_trust import Cli, write_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build._native import chengtok
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import parse_cid
from cheng_build.pkg import api, originality, publish_content
from cheng_build.pkg.snapshot import SnapshotFormat, make_snapshot, read_whole

LINES = [
    "fn Add(a: int32, b: int32): int32 = a + b", "fn add(x: int): int =", "    return x",
    "type", "    Point = object", "        x, y: float", "const Max = 3", "import std/os",
    "template `$`(x: T): str = x", "let s = \"é中\"  # ü", "x = \"\"\"doc", "more\"\"\"",
    "@inline fn Fast() = nil", "=========", "\tfn Tab()=1", "", "# only a comment",
    "fn Grüße(x: 中文): str = x",  # a non-ASCII record: decoded one by one
]
sources_text = st.lists(st.sampled_from(LINES), max_size=20).map("\n".join)
PATHS = ["src/a.cheng", "src/net/b.cheng", "src/c.cheng", "tests/t.cheng", "lib/d.cheng",
         "README.md", "build/x.cheng", ".hidden/y.cheng"]


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def _separately(src: Path) -> tuple[originality.Fingerprint | None, dict[str, api.Symbol]]:
    sources = originality.source_files(src)
    return originality.fingerprint(sources), api.extract_api_from_dir(src, sources)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(PATHS), sources_text, min_size=1, max_size=6))
def test_scan_equals_the_separate_passes(tmp_path_factory: pytest.TempPathFactory,
                                         files: dict[str, str]) -> None:
    src = _tree(tmp_path_factory.mktemp("pkg"), {k: v.encode() for k, v in files.items()})
    sources = originality.source_files(src)
    fp, table = publish_content.scan_sources(src, sources)
    want_fp, want_table = _separately(src)
    assert fp == want_fp == originality.reference_fingerprint(sources)
    assert table is not None and table[0] == want_table
    assert table[1] == api.api_to_json(want_table).encode()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(sources_text, st.sampled_from([0, 1, 2, 3])), max_size=8))
def test_scan_package_equals_one_call_per_file(files: list[tuple[str, int]]) -> None:
    items = [(t.encode(), w) for t, w in files]
    (fp, n), decls = chengtok.scan_package(items)
    stream = chengtok.FingerprintStream()
    want_decls = []
    for data, what in items:
        if what & chengtok.SCAN_FINGERPRINT:
            stream.feed(data)
        if what & chengtok.SCAN_API:
            want_decls.append(chengtok.api_decls(data))
    assert (fp, n) == stream.result()
    assert decls == want_decls


def test_scan_package_grows_its_record_room() -> None:
    """A declaration every 12 bytes: more than the first guess of room (one per 64 bytes), so
    C refuses, grows and scans that file again; the files before keep their records."""
    dense = "".join(f"const C{i} = {i}\n" for i in range(3000)).encode()
    small = b"fn A() = 1\n"
    (_, _), decls = chengtok.scan_package([(small, 2), (dense, 3), (small, 2)])
    assert decls == [chengtok.api_decls(small), chengtok.api_decls(dense), chengtok.api_decls(small)]
    assert len(decls[1]) == 3000


def test_single_file_package(tmp_path: Path) -> None:
    one = tmp_path / "m.cheng"
    one.write_text("fn Add(a: int): int = a\n")
    sources = originality.source_files(one)
    fp, table = publish_content.scan_sources(one, sources)
    assert fp == originality.fingerprint(sources)
    assert table is not None and table[0] == api.extract_api({"m.cheng": one.read_bytes()})
    other = tmp_path / "notes.txt"
    other.write_text("fn Add() = 1\n")
    fp2, table2 = publish_content.scan_sources(other, originality.source_files(other))
    assert fp2 is not None and table2 is None  # fingerprinted, but not Cheng source


def test_snapshot_from_bytes_already_read_is_the_same(tmp_path: Path) -> None:
    src = _tree(tmp_path / "pkg", {"src/a.cheng": b"fn A() = 1\n" * 5000, "src/b.cheng": b"x\n",
                                   "README.md": b"hi\n", "cheng-package.toml": b"x = 1\n"})
    sources = originality.source_files(src)
    plain = make_snapshot(None, src, SnapshotFormat.DAG).cid
    assert make_snapshot(None, src, SnapshotFormat.DAG, known=sources).cid == plain
    # Bytes whose size no longer matches the file are not used: the file is read again.
    stale = {**sources, "src/b.cheng": b"something else entirely\n"}
    assert make_snapshot(None, src, SnapshotFormat.DAG, known=stale).cid == plain
    store = Blockstore(tmp_path / "store")
    with store.batch() as batch:
        got = publish_content.publish_content(store, src, SnapshotFormat.DAG, into=batch)
    assert got.snapshot.cid == plain
    assert got.api is not None and got.api.cid is not None
    want = api.api_to_json(api.extract_api_from_dir(src)).encode()
    assert read_whole(Blockstore(tmp_path / "store"), parse_cid(got.api.cid)) == want


def test_an_error_in_the_scan_is_raised_by_the_publish(tmp_path: Path) -> None:
    src = _tree(tmp_path / "pkg", {"src/a.cheng": b"fn A() = 1\n", "src/bad.cheng": b"fn \xff\n"})
    with pytest.raises(api.ApiError, match=r"source file is not valid UTF-8: src/bad\.cheng"):
        publish_content.publish_content(None, src, SnapshotFormat.DAG)


def test_an_error_in_the_snapshot_wins_over_the_scan(tmp_path: Path) -> None:
    from cheng_build.core.errors import InputError

    with pytest.raises(InputError, match="no such file or directory"):
        publish_content.publish_content(None, tmp_path / "missing", SnapshotFormat.DAG)


def test_cli_publish_of_a_non_utf8_module_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    cli = Cli(tmp_path, monkeypatch, capfd)
    assert cli.registry("keygen", "--out:alice.json", "--author:node:alice")[0] == 0
    src = cli.tmp / "pkg"
    write_tree(src, {"cheng-package.toml": 'package_id = "pkg://cheng/x"\nversion = "1.0.0"\n',
                     "src/ok.cheng": "fn A() = 1\n"})
    (src / "src" / "bad.cheng").write_bytes(b"fn B() = \xff\n")
    rc, _, err = cli.registry("publish", "--package:pkg://cheng/x", "--channel:stable", "--epoch:1",
                              f"--src:{src}", "--priv:alice.json", "--registry:registry.jsonl",
                              "--store:chengcache")
    assert rc != 0
    assert err.splitlines()[0] == "publish: source file is not valid UTF-8: src/bad.cheng"
    assert "Traceback" not in err
    assert not (cli.tmp / "registry.jsonl").exists()


def test_source_files_reads_regular_files_only(tmp_path: Path) -> None:
    src = _tree(tmp_path / "pkg", {"src/a.cheng": b"a", "src/deep/er/b.cheng": b"b",
                                   ".git/c.cheng": b"c", "build/d.cheng": b"d",
                                   "chengcache/e.cheng": b"e", "notes.txt": b"n"})
    (src / "src" / "link.cheng").symlink_to(src / "src" / "a.cheng")
    (src / "src" / "dirlink").symlink_to(src / "src" / "deep")
    assert originality.source_files(src) == {"src/a.cheng": b"a", "src/deep/er/b.cheng": b"b"}
    (src / "src" / "a.cheng").unlink()
    (src / "src" / "deep" / "er" / "b.cheng").unlink()
    assert originality.source_files(src) == {"notes.txt": b"n"}  # no .cheng: every file


_any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_any_text, st.tuples(st.sampled_from(api.KINDS), _any_text), max_size=12))
def test_api_json_is_the_json_dumps_it_replaced(entries: dict[str, tuple[str, str]]) -> None:
    """``api_to_json`` writes entries itself; the canonical form is json.dumps of nested dicts."""
    import json

    table = {k: api.Symbol(kind, k.rpartition(".")[2], sig, "m") for k, (kind, sig) in entries.items()}
    doc = {k: {"kind": s.kind, "signature": s.signature} for k, s in table.items()}
    want = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert api.api_to_json(table) == want
    if not any("\ud800" <= c <= "\udfff" for c in want):
        assert api.api_from_json(want.encode()) == api.api_from_json(api.api_to_json(table).encode())


def test_the_snapshots_error_comes_before_the_scans(tmp_path: Path) -> None:
    """Both fail: a file name that is not UTF-8 (the snapshot refuses it) and a module that is
    not UTF-8 (the API table refuses it). The snapshot's error is the one raised, as when the
    snapshot ran before the scan; with the bad name gone, the scan's error."""
    import os

    from cheng_build.core.errors import InputError

    src = _tree(tmp_path / "pkg", {"src/bad.cheng": b"fn \xff\n"})
    bad_name = os.path.join(os.fsencode(src), b"\xff.txt")
    with open(bad_name, "wb") as fh:
        fh.write(b"x")
    with pytest.raises(InputError, match="file name is not UTF-8"):
        publish_content.publish_content(None, src, SnapshotFormat.DAG)
    os.unlink(bad_name)
    with pytest.raises(api.ApiError, match="not valid UTF-8: src/bad"):
        publish_content.publish_content(None, src, SnapshotFormat.DAG)


def test_symbols_made_by_the_table_are_records_like_any_other() -> None:
    got = api.table_of([("src/m.cheng", [("fn", "Add", "(a: int): int")])])
    s = got["m.Add"]
    want = api.Symbol("fn", "Add", "(a: int): int", "m")
    assert s == want and hash(s) == hash(want) and repr(s) == repr(want)
    with pytest.raises(AttributeError):
        s.name = "Other"  # type: ignore[misc]  # frozen, as the record is


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 4079, 4080, 4081, 8161, 70000])
def test_scan_package_counts_lines_right_at_every_length(n: int) -> None:
    """C sizes its line arrays by counting newlines 16 bytes a step, summed every 4,080 bytes;
    a miscount makes the scan fail (MemoryError), so lengths around those steps are tried."""
    for text in ("\n" * n, ("fn A() = 1\n" * n)[:n], ("const B = 2\n\n" * n)[:n]):
        (_, _), decls = chengtok.scan_package([(text.encode(), chengtok.SCAN_API)])
        assert decls == [[(s.kind, s.name, s.signature)
                          for s in api.python_extract_module(text, "m")]]


def test_one_cpu_scans_after_the_snapshot_with_the_same_result(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "pkg", {"src/a.cheng": b"fn A(x: int): int = x\n", "src/b.cheng": b"x\n"})
    threaded = publish_content.publish_content(None, src, SnapshotFormat.DAG)
    started: list[object] = []
    monkeypatch.setattr(publish_content._Scan, "start", lambda self: started.append(self))
    monkeypatch.setattr(publish_content, "_cpus", lambda: 1)
    alone = publish_content.publish_content(None, src, SnapshotFormat.DAG)
    assert started == []  # no thread
    assert alone.snapshot.cid == threaded.snapshot.cid and alone.fingerprint == threaded.fingerprint
    assert alone.api is not None and threaded.api is not None
    assert alone.api.digest == threaded.api.digest
