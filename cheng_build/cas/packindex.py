"""The packed blockstore's index: which pack holds a block, at which offset, how long (SQLite).

One SQLite database, ``<root>/index.sqlite``, in WAL mode with ``synchronous=FULL`` (a commit is
durable when it returns). Its schema (format version 2 of the blockstore)::

    meta(key TEXT PRIMARY KEY, value TEXT)            "format" = "2"
    packs(id INTEGER PRIMARY KEY AUTOINCREMENT,       pack <id> is packs/<id>.pack; its first
          committed INTEGER)                          <committed> bytes are durable and every
                                                      indexed block lies inside them; ids are
                                                      never reused (a reader may still hold a
                                                      compacted pack open)
    blocks(cid BLOB PRIMARY KEY, pack, off, len)      binary CID -> the block's bytes:
                                                      packs/<pack>.pack[off : off + len]

A pack's row exists before its file (:meth:`PackIndex.new_pack`), so a pack file without a row is
always the leftover of a compaction that was killed after its commit; gc removes it. Readers never
block writers (WAL); writers serialise only on the short commit at the end of a batch.

``sqlite3`` is imported here only, and this module only when a store is opened, so commands that
never touch the store (chengc's no-op path) do not pay for it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from cheng_build.core.atomic import fsync_dir
from cheng_build.core.errors import StoreError
from cheng_build.core.record import dataclass

__all__ = ["FORMAT", "Location", "PackIndex", "create_index_file"]

FORMAT = "2"
_BUSY_MS = 120_000  # a writer waits this long for another's commit (commits are short)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS packs (id INTEGER PRIMARY KEY AUTOINCREMENT, committed INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS blocks (cid BLOB PRIMARY KEY, pack INTEGER NOT NULL, "
    "off INTEGER NOT NULL, len INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS blocks_by_pack ON blocks (pack)",
)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a block's bytes are: ``packs/<pack>.pack[offset : offset + length]``."""

    pack: int
    offset: int
    length: int


def create_index_file(path: Path, fill: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Create an index at ``path`` atomically: built under a temporary name, then renamed,
    so another process never opens a database without its tables. ``fill`` adds rows in the
    same transaction (a rebuild from the packs); without it the index is empty.

    Raises:
        OSError / sqlite3.Error: it cannot be written.
    """
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # recorded in the file: every opener uses it
            db.execute("BEGIN")
            for stmt in _SCHEMA:
                db.execute(stmt)
            db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
            if fill is not None:
                fill(db)
            db.execute("COMMIT")
        finally:
            db.close()  # checkpoints the WAL into the file and removes it
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    fsync_dir(path.parent)


class PackIndex:
    """A connection to ``index.sqlite`` (thread-safe; reopened after a fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mu = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file connected to

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite's failures as the store's: a message naming the index, never a traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the store index {self.path}", why=str(exc),
                             how="check free space and permissions; if the file is damaged, move "
                                 "it away and restore the store from a CAR or a peer") from None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            try:
                st = os.stat(self.path)  # never connect to a missing index: SQLite would make
            except FileNotFoundError:  # an empty one, and pack ids would start over at 1
                raise StoreError(f"the store index {self.path} is missing",
                                 how="run cheng-pkg store reindex to rebuild it from the packs") from None
            self._file = (st.st_dev, st.st_ino)
            db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # persistent: set once per database
            db.execute("PRAGMA synchronous=FULL")
            self._db, self._pid = db, os.getpid()
        return self._db

    def reopen_if_replaced(self) -> bool:
        """Drop the connection if ``index.sqlite`` is no longer the file it was made to (another
        process ran ``store reindex``, which renames the old one away): the next use connects to
        the current file. Called under the store lock, which a reindex holds exclusively: a
        long-lived writer's batches would otherwise go on committing into the renamed old index
        and pick pack ids and committed lengths from it, so the next writer would cut packs.
        True when it was dropped (a look-up made before may be stale)."""
        with self._mu:
            if self._db is None or self._pid != os.getpid():
                return False
            try:
                st = os.stat(self.path)
                same = self._file == (st.st_dev, st.st_ino)
            except FileNotFoundError:
                same = False
            if not same:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
            return not same

    def close(self) -> None:
        with self._mu, self._guard():
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None

    # -- reads ----------------------------------------------------------------------------------

    def format(self) -> str | None:
        with self._mu, self._guard():
            row = self._conn().execute("SELECT value FROM meta WHERE key='format'").fetchone()
        return None if row is None else str(row[0])

    def locate(self, key: bytes) -> Location | None:
        with self._mu, self._guard():
            row = self._conn().execute("SELECT pack, off, len FROM blocks WHERE cid=?", (key,)).fetchone()
        return None if row is None else Location(row[0], row[1], row[2])

    def all_keys(self) -> list[bytes]:
        with self._mu, self._guard():
            return [r[0] for r in self._conn().execute("SELECT cid FROM blocks ORDER BY cid")]

    def rows(self) -> Iterator[tuple[bytes, Location]]:
        """Every block (read in one go: the caller may write to the index while it iterates)."""
        with self._mu, self._guard():
            rows = self._conn().execute("SELECT cid, pack, off, len FROM blocks").fetchall()
        for cid, pack, off, ln in rows:
            yield cid, Location(pack, off, ln)

    def packs(self) -> dict[int, int]:
        """Every pack's id -> committed length."""
        with self._mu, self._guard():
            return dict(self._conn().execute("SELECT id, committed FROM packs").fetchall())

    def open_packs(self, limit: int, below: int) -> list[int]:
        """Up to ``limit`` packs with fewer than ``below`` committed bytes, newest first."""
        with self._mu, self._guard():
            rows = self._conn().execute("SELECT id FROM packs WHERE committed < ? ORDER BY id DESC LIMIT ?",
                                        (below, limit)).fetchall()
        return [r[0] for r in rows]

    def pack_rows(self, pack: int) -> list[tuple[bytes, int, int]]:
        """The blocks the index points into ``pack``: (binary CID, offset, length), by offset."""
        with self._mu, self._guard():
            return self._conn().execute("SELECT cid, off, len FROM blocks WHERE pack=? ORDER BY off",
                                        (pack,)).fetchall()

    def committed(self, pack: int) -> int | None:
        with self._mu, self._guard():
            row = self._conn().execute("SELECT committed FROM packs WHERE id=?", (pack,)).fetchone()
        return None if row is None else int(row[0])

    def stats(self) -> tuple[int, int]:
        """(blocks, bytes of their data)."""
        with self._mu, self._guard():
            n, total = self._conn().execute("SELECT count(*), coalesce(sum(len), 0) FROM blocks").fetchone()
        return int(n), int(total)

    def live_bytes(self) -> dict[int, int]:
        """Every pack's id -> bytes of the blocks the index still points into it."""
        with self._mu, self._guard():
            return dict(self._conn().execute("SELECT pack, sum(len + 6 + length(cid)) FROM blocks "
                                             "GROUP BY pack").fetchall())

    # -- writes (each one durable transaction) --------------------------------------------------

    def new_pack(self) -> int:
        """Allocate a pack id (its row, committed 0) before its file is created."""
        with self._mu, self._guard():
            db = self._conn()
            cur = db.execute("INSERT INTO packs (committed) VALUES (0)")
            assert cur.lastrowid is not None
            return cur.lastrowid

    def commit(self, rows: Sequence[tuple[bytes, int, int, int]], committed: dict[int, int],
               drop_packs: Iterable[int] = ()) -> None:
        """Add (or repoint) blocks and move packs' committed marks, atomically and durably.

        The packs' bytes must already be durable (fsynced): once this returns, readers find them.
        """
        with self._mu, self._guard():
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)", rows)
                db.executemany("UPDATE packs SET committed=? WHERE id=?",
                               [(size, pid) for pid, size in committed.items()])
                db.executemany("DELETE FROM packs WHERE id=?", [(p,) for p in drop_packs])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def delete(self, keys: Iterable[bytes], drop_packs: Iterable[int] = ()) -> None:
        """Forget blocks (gc) and packs that hold nothing any more, in one transaction."""
        with self._mu, self._guard():
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM blocks WHERE cid=?", [(k,) for k in keys])
                db.executemany("DELETE FROM packs WHERE id=?", [(p,) for p in drop_packs])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
