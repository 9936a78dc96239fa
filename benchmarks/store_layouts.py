"""Which on-disk layout for the blockstore: the measurement behind the packed store's design.

    python benchmarks/store_layouts.py [--mib 64] [--small-mib 8] [--json]

Puts N blocks in one durable batch (one fsync/commit at the end, as a ``put_many`` does) and
reads them all back, for each candidate layout, on the same disk:

- ``flat``: one file per block (the store before the packed layout; temp file + rename, syncfs);
- ``pack+sqlite``: blocks appended to one pack file, their (offset, length) in a SQLite index
  (WAL) committed after the pack's fsync;
- ``lmdb``: every block a value in one LMDB environment (``lmdb`` package), one write txn;
- ``sqlite``: every block a BLOB row in SQLite (WAL).

Two block sizes: 256 KiB (file chunks) and 8 KiB (small source files, directory nodes). Figures
are CPU seconds of this process (user + system, steadier on a shared machine) and wall seconds;
the anchor of each row is ``flat``. Nothing here is verified (hashing costs every layout the same).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cheng_build.cas.durable import flush_filesystem


def _blocks(total: int, size: int) -> list[tuple[bytes, bytes]]:
    import hashlib

    out = []
    seed = os.urandom(size)
    for i in range(total // size):
        data = i.to_bytes(8, "little") + seed[8:]
        out.append((b"\x01\x55\x12\x20" + hashlib.sha256(data).digest(), data))
    return out


def _flat(root: Path, blocks: list[tuple[bytes, bytes]]) -> Callable[[], int]:
    import base64

    def name(k: bytes) -> str:
        return "b" + base64.b32encode(k).decode().lower().rstrip("=")

    staged = []
    for k, v in blocks:
        s = name(k)
        d = root / s[-3:-1]
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / (".tmp-" + s)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.write(fd, v)
        os.close(fd)
        staged.append((tmp, d / s))
    flush_filesystem(root)
    for tmp, final in staged:
        os.replace(tmp, final)
    flush_filesystem(root)

    def read() -> int:
        return sum(len((root / name(k)[-3:-1] / name(k)).read_bytes()) for k, _ in blocks)
    return read


def _pack_sqlite(root: Path, blocks: list[tuple[bytes, bytes]]) -> Callable[[], int]:
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE blocks (cid BLOB PRIMARY KEY, pack INTEGER, off INTEGER, len INTEGER)"
               " WITHOUT ROWID")
    fd = os.open(root / "1.pack", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    rows = []
    off = 0
    for k, v in blocks:
        hdr = len(k).to_bytes(1, "little") + len(v).to_bytes(4, "little") + k
        os.writev(fd, [hdr, v])
        rows.append((k, 1, off + len(hdr), len(v)))
        off += len(hdr) + len(v)
    os.fsync(fd)
    os.close(fd)
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?)", rows)
    db.execute("COMMIT")

    def read() -> int:
        rfd = os.open(root / "1.pack", os.O_RDONLY)
        n = 0
        for k, _ in blocks:
            _, o, ln = db.execute("SELECT pack, off, len FROM blocks WHERE cid=?", (k,)).fetchone()
            n += len(os.pread(rfd, ln, o))
        os.close(rfd)
        return n
    return read


def _lmdb(root: Path, blocks: list[tuple[bytes, bytes]]) -> Callable[[], int]:
    import lmdb

    env = lmdb.open(str(root), map_size=1 << 36, max_dbs=2)
    with env.begin(write=True) as txn:
        for k, v in blocks:
            txn.put(k, v)

    def read() -> int:
        with env.begin(buffers=True) as txn:
            return sum(len(bytes(txn.get(k))) for k, _ in blocks)
    return read


def _sqlite(root: Path, blocks: list[tuple[bytes, bytes]]) -> Callable[[], int]:
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "blocks.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE blocks (cid BLOB PRIMARY KEY, data BLOB) WITHOUT ROWID")
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR REPLACE INTO blocks VALUES (?,?)", blocks)
    db.execute("COMMIT")

    def read() -> int:
        return sum(len(db.execute("SELECT data FROM blocks WHERE cid=?", (k,)).fetchone()[0])
                   for k, _ in blocks)
    return read


LAYOUTS: dict[str, Callable[[Path, list[tuple[bytes, bytes]]], Callable[[], int]]] = {
    "flat": _flat, "pack+sqlite": _pack_sqlite, "lmdb": _lmdb, "sqlite": _sqlite}


def _times(fn: Callable[[], object]) -> tuple[float, float, object]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=64, help="MiB of 256 KiB blocks")
    ap.add_argument("--small-mib", type=int, default=8, help="MiB of 8 KiB blocks")
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, dict[str, float]] = {}
    layouts = args.layouts.split(",")
    try:
        import lmdb  # noqa: F401 - only to see whether the candidate can run here
    except ImportError:
        if "lmdb" in layouts:
            print("lmdb: the 'lmdb' package is not installed (pip install lmdb); row skipped",
                  file=sys.stderr)
            layouts.remove("lmdb")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size, mib in ((262144, args.mib), (8192, args.small_mib)):
            blocks = _blocks(mib << 20, size)
            for name in layouts:
                root = Path(tmp) / f"{name}-{size}"
                put_cpu, put_wall, read = _times(lambda n=name, r=root, b=blocks: LAYOUTS[n](r, b))
                get_cpu, get_wall, n = _times(read)  # type: ignore[arg-type]
                assert n == sum(len(v) for _, v in blocks)
                key = f"{name}/{size // 1024}KiB"
                result[key] = {"put_cpu": put_cpu, "put_wall": put_wall, "get_cpu": get_cpu,
                               "get_wall": get_wall, "blocks": len(blocks)}
                print(f"{key:22} {len(blocks):6} blocks  put cpu {put_cpu:6.3f} s wall {put_wall:6.3f} s"
                      f"   get cpu {get_cpu:6.3f} s wall {get_wall:6.3f} s", flush=True)
                shutil.rmtree(root)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
