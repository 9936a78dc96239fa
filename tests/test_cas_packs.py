"""The packed blockstore: kill -9 at seeded points, batched fsyncs, parallel packs, compaction,
migration of version-1 stores (library and ``cheng-pkg store``), and the pack format's parser."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers_packstore import pack_files, tamper_block
from hypothesis import given, settings
from hypothesis import strategies as st

import cheng_build
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import make_cid, parse_cid
from cheng_build.cas.exporter import read_file
from cheng_build.cas.importer import add_bytes
from cheng_build.cas.packfile import HEADER, scan
from cheng_build.cli.pkg import main
from cheng_build.core.errors import DigestMismatchError

REPO = Path(cheng_build.__file__).resolve().parent.parent

# A writer process: adds pinned files in batches and logs each root after the call returned
# (acknowledged). It kills itself with SIGKILL at a seeded point: the n-th call of one disk
# operation of the store (a torn half-written append, an fdatasync, inside the index
# transaction before its COMMIT, right after the commit, a pin).
_WRITER = r"""
import os, random, signal, sys
from cheng_build.cas import packindex
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.importer import add_bytes

root, seed, ack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
op = rng.choice(["torn-append", "fdatasync", "in-commit", "after-commit", "pin", "none"])
kill_at = rng.randrange(1, 25)
seen = {"n": 0}

def tick(name):
    if name == op:
        seen["n"] += 1
        return seen["n"] >= kill_at
    return False

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_pwritev, real_fdatasync = os.pwritev, os.fdatasync
def pwritev(fd, bufs, off):
    if tick("torn-append"):
        data = b"".join(bytes(b) for b in bufs)
        os.pwrite(fd, data[: len(data) // 2], off)
        die()
    return real_pwritev(fd, bufs, off)
def fdatasync(fd):
    real_fdatasync(fd)
    if tick("fdatasync"):
        die()
os.pwritev, os.fdatasync = pwritev, fdatasync

real_commit = packindex.PackIndex.commit
def commit(self, rows, committed, drop_packs=()):
    if tick("in-commit"):
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)", rows)
        die()
    real_commit(self, rows, committed, drop_packs)
    if tick("after-commit"):
        die()
packindex.PackIndex.commit = commit

store = Blockstore(root)
real_pin = store._pin_locked
def pin(cid):
    if tick("pin"):
        die()
    real_pin(cid)
store._pin_locked = pin

fd = os.open(ack, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(30):
    n = rng.choice([100, 5000, 300_000, 700_000])
    data = random.Random(f"{seed}-{i}").randbytes(n)
    cid = add_bytes(store, data, chunker="size-65536", pin=True)
    os.write(fd, f"{cid} {seed} {i} {n}\n".encode())  # acknowledged: add_bytes returned
"""

_GC = r"""
import sys, time
from cheng_build.cas.blockstore import Blockstore
store = Blockstore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    store.gc()
    time.sleep(0.05)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def test_kill9_writers_at_seeded_points_lose_nothing_acknowledged(tmp_path: Path) -> None:
    root, ack = tmp_path / "store", tmp_path / "ack.log"
    rnd = random.Random(20261207)
    killed = 0
    for rnd_no in range(4):
        seeds = [rnd.randrange(1 << 30) for _ in range(3)]
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(s), str(ack)],
                                  env=_env(), stderr=subprocess.PIPE) for s in seeds]
        gc = subprocess.Popen([sys.executable, "-c", _GC, str(root), "6"], env=_env(),
                              stderr=subprocess.PIPE)
        for p in [*procs, gc]:
            _, err = p.communicate(timeout=300)
            assert p.returncode in (0, -signal.SIGKILL), err.decode()
        assert gc.returncode == 0
        killed += sum(p.returncode == -signal.SIGKILL for p in procs)
        # The store opens, every block in it verifies, every acknowledged file reads back.
        store = Blockstore(root)
        for cid in store.iter_cids():
            store.get(cid)
        lines = ack.read_text().splitlines()
        for line in lines:
            cid, seed, i, n = line.split()
            want = random.Random(f"{seed}-{i}").randbytes(int(n))
            assert read_file(store, parse_cid(cid)) == want, f"round {rnd_no}: lost {line}"
        store.close()
    assert killed >= 6, "too few writers were killed; the test proved little"
    # After the crashes: gc cuts the dead writers' tails and files, and still loses nothing.
    store = Blockstore(root)
    store.gc()
    idx = store.index()
    assert idx is not None
    committed = idx.packs()
    assert {f for f in pack_files(store)} == {f"{p}.pack" for p in committed}
    assert all(os.path.getsize(store.pack_path(p)) == c for p, c in committed.items())
    for line in ack.read_text().splitlines():
        cid, seed, i, n = line.split()
        assert read_file(store, parse_cid(cid)) == random.Random(f"{seed}-{i}").randbytes(int(n))


def test_one_fdatasync_per_batch_and_the_index_after_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.cas import packindex

    events: list[str] = []
    real_sync, real_commit = os.fdatasync, packindex.PackIndex.commit
    monkeypatch.setattr(os, "fdatasync", lambda fd: (events.append("sync"), real_sync(fd))[1])
    monkeypatch.setattr(packindex.PackIndex, "commit",
                        lambda self, *a, **k: (events.append("index"), real_commit(self, *a, **k))[1])
    store = Blockstore(tmp_path)
    blocks = [(make_cid(d), d) for d in (os.urandom(8192) for _ in range(200))]
    assert store.put_many(blocks) == 200
    assert events == ["sync", "index"]  # one fsync for 200 blocks, and the index only after it
    events.clear()
    assert store.put_many(blocks) == 0 and events == []  # all stored: nothing written at all
    assert [store.get(c) for c, _ in blocks] == [d for _, d in blocks]


def test_parallel_batches_append_to_different_packs(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    a, b = os.urandom(1000), os.urandom(1000)
    with store.batch() as one, store.batch() as two:
        one.put(make_cid(a), a)
        two.put(make_cid(b), b)
    la, lb = store.locate(make_cid(a)), store.locate(make_cid(b))
    assert la is not None and lb is not None and la.pack != lb.pack
    # later batches reuse an open pack instead of making one more file per batch
    for _ in range(5):
        d = os.urandom(100)
        store.put(make_cid(d), d)
    assert len(pack_files(store)) == 2


def test_writers_in_threads(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    datas = [[os.urandom(3000) for _ in range(30)] for _ in range(4)]

    def work(ds: list[bytes]) -> None:
        for d in ds:
            store.put(make_cid(d), d)

    ts = [threading.Thread(target=work, args=(ds,)) for ds in datas]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for ds in datas:
        for d in ds:
            assert store.get(make_cid(d)) == d


def test_gc_compacts_and_an_open_reader_keeps_reading(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    keep = add_bytes(store, os.urandom(600_000), chunker="size-65536", pin=True)
    drop = [add_bytes(store, os.urandom(600_000), chunker="size-65536") for _ in range(4)]
    reader = Blockstore(tmp_path)  # another process's view, with its pack files open
    assert len(read_file(reader, keep)) == 600_000
    packs_before = pack_files(store)
    size_before = sum(os.path.getsize(store.packs_dir / f) for f in packs_before)
    res = store.gc()
    assert res.removed == sum(1 + 10 for _ in drop) and res.kept == 11
    size_after = sum(os.path.getsize(store.packs_dir / f) for f in pack_files(store))
    assert size_after < size_before / 3  # the dead blocks' bytes are gone from the disk
    assert pack_files(store) != packs_before  # rewritten into a fresh pack
    assert len(read_file(reader, keep)) == 600_000  # the old view finds the new place
    assert all(not store.has(d) for d in drop)


def test_a_corrupt_block_is_repaired_by_a_new_copy(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)
    d = os.urandom(4000)
    cid = make_cid(d)
    store.put(cid, d)
    tamper_block(store, cid)
    with pytest.raises(DigestMismatchError, match=str(cid)):
        store.get(cid)
    assert store.put_many([(cid, d)]) == 1
    assert store.get(cid) == d


def _flat_store(root: Path, blobs: list[bytes]) -> list:
    """A version-1 store, written the way that layout did (one file per block, sharded)."""
    cids = []
    for b in blobs:
        cid = make_cid(b)
        s = str(cid)
        p = root / "blocks" / s[-3:-1] / s
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b)
        cids.append(cid)
    (root / "pins").mkdir(parents=True, exist_ok=True)
    (root / "pins" / str(cids[0])).write_bytes(b"")
    return cids


def test_a_flat_store_is_read_then_migrated_by_its_first_write(tmp_path: Path) -> None:
    blobs = [os.urandom(n) for n in (10, 5000, 300_000)]
    cids = _flat_store(tmp_path, blobs)
    (tmp_path / "blocks" / str(make_cid(b"legacy"))).write_bytes(b"legacy")  # not a shard: kept
    bad = make_cid(b"good bytes")
    (tmp_path / "blocks" / str(bad)[-3:-1]).mkdir(exist_ok=True)
    (tmp_path / "blocks" / str(bad)[-3:-1] / str(bad)).write_bytes(b"evil bytes")
    store = Blockstore(tmp_path)
    assert [store.get(c) for c in cids] == blobs  # read as it is, before any write
    assert not store.index_path.exists()
    new = os.urandom(100)
    store.put(make_cid(new), new)  # the first write migrates
    assert [store.get(c) for c in cids] == blobs and all(store.locate(c) for c in cids)
    assert sorted(os.listdir(tmp_path / "blocks")) == [str(make_cid(b"legacy"))]
    assert os.listdir(tmp_path / "corrupt") == [str(bad)]
    assert not store.has(bad)
    assert store.pins() == [cids[0]]
    assert store.gc().kept == 1


def test_store_migrate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "c"
    cids = _flat_store(cache, [os.urandom(n) for n in (1, 2000, 70_000)])
    rc = main(["store", "info", f"--pkg-cache:{cache}", "--format:json"])
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and info["unmigrated_files"] == 3 and info["blocks"] == 0
    rc = main(["store", "migrate", f"--pkg-cache={cache}", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["moved"] == 3 and out["corrupt"] == [] and out["blocks"] == 3
    rc = main(["store", "migrate", f"--pkg-cache:{cache}"])
    assert rc == 0 and capsys.readouterr().out.startswith("nothing to migrate:")
    assert all(Blockstore(cache).has(c) for c in cids)
    # a corrupt file: named, quarantined, exit 1
    bad = make_cid(b"x")
    p = cache / "blocks" / str(bad)[-3:-1] / str(bad)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"y")
    rc = main(["store", "migrate", f"--pkg-cache:{cache}"])
    err = capsys.readouterr().err
    assert rc == 1 and err.splitlines()[0] == "store: 1 block files did not verify and were not moved"
    assert str(bad) in err and "Traceback" not in err
    rc = main(["store", "migrate", f"--pkg-cache:{tmp_path / 'none'}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.splitlines()[0] == f"store: no package cache at {tmp_path / 'none'}"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=12, unique=True),
       st.integers(min_value=0, max_value=40_000))
def test_pack_scan_reads_records_and_stops_at_a_torn_tail(blobs: list[bytes], cut: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = Blockstore(tmp)
        store.put_many([(make_cid(b), b) for b in blobs])
        [name] = pack_files(store)
        path = store.packs_dir / name
        recs = list(scan(path))
        raw = path.read_bytes()
        assert raw.startswith(HEADER)
        assert [raw[o:o + n] for _, o, n in recs] == blobs
        assert all(store.locate(make_cid(b)).offset == o for b, (_, o, _) in zip(blobs, recs, strict=True))
        # torn at any byte: scan yields a prefix of the records and never reads past the end
        with open(path, "r+b") as fh:
            fh.truncate(min(cut, len(raw)))
        torn = list(scan(path))
        assert torn == recs[:len(torn)]
        assert all(o + n <= min(cut, len(raw)) for _, o, n in torn)
        store.close()


def test_a_damaged_index_is_a_clear_error_and_never_costs_the_packs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache, f = tmp_path / "c", tmp_path / "f"
    f.write_bytes(os.urandom(5000))
    assert main(["add", str(f), f"--pkg-cache:{cache}"]) == 0
    cid = capsys.readouterr().out.split()[-1]
    for p in cache.glob("index.sqlite*"):
        p.unlink()
    (cache / "index.sqlite").write_bytes(b"not a database, " * 512)
    rc = main(["cat", cid, f"--pkg-cache:{cache}"])
    err = capsys.readouterr().err
    assert rc == 1 and err.splitlines()[0] == f"cat: cannot use the store index {cache / 'index.sqlite'}"
    assert "Traceback" not in err
    # with the index gone, cleaning orphans must not take the packs for orphans
    packs = sorted(os.listdir(cache / "packs"))
    (cache / "index.sqlite").unlink()
    assert Blockstore(cache).clean_orphans() == (0, 0)
    assert sorted(os.listdir(cache / "packs")) == packs


def test_first_use_while_another_thread_reads(tmp_path: Path) -> None:
    """The HTTP fetcher asks has() on one thread while its writer thread opens a new store: the
    index must never be seen half-made (it is created under another name and renamed)."""
    for trial in range(15):
        store = Blockstore(tmp_path / str(trial))
        d = os.urandom(100)
        errors: list[BaseException] = []
        stop = threading.Event()

        def reader(s: Blockstore = store, c: object = make_cid(d), stop: threading.Event = stop,
                   errors: list[BaseException] = errors) -> None:
            try:
                while not stop.is_set():
                    s.has(c)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        store.put(make_cid(d), d)
        stop.set()
        t.join(10)
        assert errors == [] and store.get(make_cid(d)) == d


def test_a_batch_that_fills_packs_never_retries_its_own(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch past the pack size moves to another pack: it must not try to lock the packs it
    already filled (uncommitted, they look open). Each such try failed its flock and closed a
    freshly truncated file, and ext4 flushes that file on close: ~0.4 s per GiB added."""
    from cheng_build.cas import packfile

    monkeypatch.setattr(packfile, "PACK_LIMIT", 4096)
    tried: list[int] = []
    real_take = packfile._take

    def spy(packs_dir: Path, pack: int, index: object) -> object:
        tried.append(pack)
        return real_take(packs_dir, pack, index)  # type: ignore[arg-type]

    monkeypatch.setattr(packfile, "_take", spy)
    store = Blockstore(tmp_path / "s")
    blocks = [os.urandom(1000) for _ in range(40)]
    assert store.put_many([(make_cid(b), b) for b in blocks]) == 40
    assert len(tried) == len(set(tried)) > 5, tried
    for b in blocks:
        assert store.get(make_cid(b)) == b
