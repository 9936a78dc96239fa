"""A store whose index is lost or damaged: rebuilt from the packs (every block verified), never
at the cost of the packs. Through the CLI, as a user meets it, and against the index the writes
themselves built (differential)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_packstore import index_content, tamper_block
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import make_cid, parse_cid
from cheng_build.cli.pkg import main


def _add(cache: Path, f: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> str:
    assert main(["add", str(f), f"--pkg-cache:{cache}"]) == 0
    return capsysbinary.readouterr().out.decode().split()[-1]


def _cat(cache: Path, cid: str, capsysbinary: pytest.CaptureFixture[bytes]) -> bytes:
    assert main(["cat", cid, f"--pkg-cache:{cache}"]) == 0, capsysbinary.readouterr().err
    return capsysbinary.readouterr().out


def _drop_index(cache: Path) -> None:
    for p in cache.glob("index.sqlite*"):
        p.unlink()


def test_a_lost_index_costs_no_block_when_the_store_is_written_again(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """The data-loss bug: a store that lost index.sqlite got a fresh empty one, whose first pack
    id named the existing pack, and the next add cut that pack to nothing."""
    cache = tmp_path / "c"
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(os.urandom(300_000))
    b.write_bytes(os.urandom(2_000))
    cid_a = _add(cache, a, capsysbinary)
    _drop_index(cache)
    assert _cat(cache, cid_a, capsysbinary) == a.read_bytes()  # a reader rebuilds it as well
    _drop_index(cache)
    _add(cache, b, capsysbinary)
    assert _cat(cache, cid_a, capsysbinary) == a.read_bytes()


def test_store_reindex_repairs_a_damaged_index(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    cache, f = tmp_path / "c", tmp_path / "f"
    f.write_bytes(os.urandom(700_000))
    cid = _add(cache, f, capsysbinary)
    before = index_content(cache / "index.sqlite")
    _drop_index(cache)
    (cache / "index.sqlite").write_bytes(b"not a database, " * 512)
    assert main(["cat", cid, f"--pkg-cache:{cache}"]) == 1
    assert capsysbinary.readouterr().err.startswith(b"cat: cannot use the store index")
    assert main(["store", "reindex", f"--pkg-cache:{cache}", "--format:json"]) == 0
    res = json.loads(capsysbinary.readouterr().out)
    assert res["corrupt"] == [] and res["blocks"] >= 3 and res["packs"] == 1
    assert index_content(cache / "index.sqlite") == before  # what the writes had recorded
    assert [p.name.split(".old-")[0] for p in cache.glob("index.sqlite.old-*")] == ["index.sqlite"]
    assert _cat(cache, cid, capsysbinary) == f.read_bytes()


def test_store_reindex_leaves_out_a_block_that_does_not_verify(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """A flipped bit in a pack: the rebuilt index does not point at it (exit 1, named), every
    other block stays readable, and adding the file again repairs the store."""
    cache = tmp_path / "c"
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(os.urandom(5_000))
    bad.write_bytes(os.urandom(6_000))
    cid_good, cid_bad = _add(cache, good, capsysbinary), _add(cache, bad, capsysbinary)
    tamper_block(Blockstore(cache), parse_cid(cid_bad))
    assert main(["store", "reindex", f"--pkg-cache:{cache}"]) == 1
    err = capsysbinary.readouterr().err.decode().splitlines()
    assert err[0] == "store: 1 pack records did not verify and were left out", err
    assert Blockstore(cache).locate(parse_cid(cid_bad)) is None
    assert _cat(cache, cid_good, capsysbinary) == good.read_bytes()
    assert main(["cat", cid_bad, f"--pkg-cache:{cache}"]) == 1  # not stored any more: a clear error
    assert _add(cache, bad, capsysbinary) == cid_bad
    assert _cat(cache, cid_bad, capsysbinary) == bad.read_bytes()


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=6),
                        min_size=1, max_size=5),
       tail=st.binary(max_size=40))
def test_the_rebuilt_index_equals_the_one_the_writes_built(
        tmp_path_factory: pytest.TempPathFactory, batches: list[list[bytes]], tail: bytes) -> None:
    """Any history of batches (repeats included), plus a torn tail a killed writer left: the
    packs alone give back the same index."""
    root = tmp_path_factory.mktemp("s")
    store = Blockstore(root)
    for blocks in batches:
        store.put_many([(make_cid(b), b) for b in blocks])
    store.close()
    before = index_content(root / "index.sqlite")
    pack = sorted(store.packs_dir.glob("*.pack"))[-1]
    with open(pack, "ab") as fh:
        fh.write(tail)
    _drop_index(root)
    again = Blockstore(root)
    again.index(create=True)
    again.close()
    assert index_content(root / "index.sqlite") == before


def test_a_writer_open_across_a_reindex_commits_into_the_new_index(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """A long-lived writer (a serve or fetch process) opened the index before another process
    ran ``store reindex``, which renames the old index away: its next batch must land in the new
    index (and read pack ids and committed lengths from it), not in the renamed file where no
    one looks: its blocks would be invisible and the next writer could cut their pack."""
    cache = tmp_path / "c"
    writer = Blockstore(cache)
    first = b"before the reindex" * 100
    c1 = make_cid(first)
    with writer.batch() as b:
        b.put(c1, first)
    assert main(["store", "reindex", f"--pkg-cache:{cache}"]) == 0, capsysbinary.readouterr().err
    capsysbinary.readouterr()
    second = b"after the reindex" * 100
    c2 = make_cid(second)
    with writer.batch() as b:  # the same object, its index connection opened before the reindex
        b.put(c2, second)
    fresh = Blockstore(cache)
    assert fresh.get(c1) == first
    assert fresh.get(c2) == second
    assert _cat(cache, str(c2), capsysbinary) == second
    # A reader opened before the reindex finds what was written after it (a miss looks again).
    reader = Blockstore(cache)
    assert reader.get(c1) == first
    assert main(["store", "reindex", f"--pkg-cache:{cache}"]) == 0
    third = b"written through a third store" * 50
    c3 = make_cid(third)
    with Blockstore(cache).batch() as b:
        b.put(c3, third)
    assert reader.get(c3) == third
