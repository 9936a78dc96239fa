"""The packed blockstore: blocks appended to pack files, found through an index, verified on every read.

(Over 400 lines because the store and its write :class:`Batch` share one on-disk layout and one
lock protocol, documented here once.)

On-disk format (version 2; docs/cas.md has the reasons and the measurements)::

    <root>/packs/<id>.pack        blocks, appended (format: cheng_build.cas.packfile)
    <root>/index.sqlite[-wal,-shm] binary CID -> (pack, offset, length); each pack's committed
                                  length (format: cheng_build.cas.packindex)
    <root>/pins/<cid>             an empty file: the DAG under <cid> is pinned (recursively)
    <root>/store.lock             flock: writers hold it shared, gc holds it exclusive
    <root>/blocks/<xx>/<cid>      version 1 (one file per block): still read when a block is not
                                  in the index; moved into packs on the first write to a store
                                  that has no index yet, by gc, and by ``cheng-pkg store migrate``
                                  (:mod:`cheng_build.cas.migrate`)

Why packs (``benchmarks/store_layouts.py``): one file per block spent more CPU on creating,
renaming and syncing files than on hashing and copying the bytes; appending to a pack costs one
``pwritev`` per block, and a batch ends with one ``fdatasync`` per pack it touched plus one index
commit, whatever its size.

Write protocol (a :class:`Batch`; ``put`` and ``put_many`` are one batch each):

1. take the store lock shared (gc waits), then a pack nobody else writes (``flock``; several
   writers append to different packs in parallel);
2. append each new block to the pack (nothing points at it yet);
3. commit: ``fdatasync`` the pack(s), then one SQLite transaction adds the blocks to the index and
   moves the packs' committed lengths, then the pins are written. Only then does the batch
   return: nothing is acknowledged before it is durable, and a ``kill -9`` at any point leaves
   either the old index (the appended tail is cut off by the pack's next writer) or the new one.

A block that fails verification on read raises :class:`DigestMismatchError` naming its CID; putting
the block again (from a CAR file or a peer) repairs it: ``put`` compares the stored bytes with the
new ones and appends a fresh copy when they differ, and the index then points at the good copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from cheng_build.cas.cid import (
    CID,
    DAG_PB,
    RAW,
    CidError,
    cid_bytes,
    cid_str,
    decode_cid_bytes,
    parse_cid,
    verify_block,
)
from cheng_build.cas.dagpb import DagPbError
from cheng_build.cas.walk import block_links
from cheng_build.core.atomic import atomic_write_bytes, fsync_dir
from cheng_build.core.errors import DigestMismatchError, IntegrityError, NotFoundError, StoreError
from cheng_build.core.paths import cache_dir
from cheng_build.core.record import dataclass

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from cheng_build.cas.migrate import MigrateResult
    from cheng_build.cas.packfile import PackWriter
    from cheng_build.cas.packindex import Location, PackIndex
    from cheng_build.cas.reindex import ReindexResult

__all__ = ["Batch", "Blockstore", "GcResult", "StoreStats", "block_key"]

_TMP = ".tmp-"


@dataclass(frozen=True, slots=True)
class GcResult:
    """What a garbage collection did."""

    kept: int
    removed: int
    bytes_freed: int
    stale_temps: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store holds: indexed blocks and their bytes, packs and their size on disk."""

    blocks: int
    block_bytes: int
    packs: int
    pack_bytes: int
    flat_blocks: int  # version-1 files not yet moved into packs


def block_key(cid: CID) -> bytes:
    """The index key of ``cid``: its binary CIDv1 (a CIDv0 and its v1 name one block)."""
    return bytes((1, DAG_PB)) + cid.digest if cid.version == 0 else cid_bytes(cid)


class Blockstore:
    """Blocks in ``root/packs/`` found through ``root/index.sqlite``; see the module docstring.

    Args:
        root: the cache root (``chengcache`` by default, see :func:`cheng_build.core.paths.cache_dir`).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()
        self.blocks_dir = self.root / "blocks"  # version 1 (flat) blocks, read until migrated
        self.packs_dir = self.root / "packs"
        self.pins_dir = self.root / "pins"
        self.index_path = self.root / "index.sqlite"
        self._index: PackIndex | None = None
        self._fds: dict[int, int] = {}
        self._fd_mu = threading.Lock()
        self._held = threading.local()  # .mode: the store lock this thread holds (index())
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"Blockstore({os.fspath(self.root)!r})"

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Close the index and the cached pack files (reopened on the next use)."""
        with self._fd_mu:
            if self._pid == os.getpid():
                for fd in self._fds.values():
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fds.clear()
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- the index ------------------------------------------------------------------------------

    def index(self, *, create: bool = False) -> PackIndex | None:
        """The store's index; ``None`` when it does not exist and ``create`` is false.

        Creating it moves a version-1 store's blocks into packs first (under the exclusive lock),
        so a store is never half old, half new without the old half being read.

        Raises:
            StoreError: the index cannot be opened or created.
        """
        if self._index is not None:
            return self._index
        if self.index_path.exists():
            return self._open_index()
        if not create:
            from cheng_build.cas.reindex import pack_files

            if not pack_files(self.packs_dir):
                return None  # a new or version-1 store: nothing indexed yet
            # Packs but no index (it was lost): a reader rebuilds it too, or every block in the
            # packs would look missing.
        from cheng_build.cas.migrate import has_flat_blocks, migrate_flat

        held = getattr(self._held, "mode", None)
        if held is not None:
            # This thread holds the store lock already (gc, orphan cleaning): flock would wait
            # for ourselves. Exclusive: safe to build here; shared: leave it to the next opener.
            return self._ensure_index() if held == "exclusive" else None
        with self._lock(exclusive=True):
            idx = self._ensure_index()
            if has_flat_blocks(self):
                migrate_flat(self, idx)
        return idx

    def _open_index(self) -> PackIndex:
        from cheng_build.cas.packindex import PackIndex

        with self._fd_mu:  # one connection per store object, whichever thread asks first
            if self._index is None:
                self._index = PackIndex(self.index_path)
            return self._index

    def _ensure_index(self) -> PackIndex:
        """Open the index, creating it first if needed (the caller holds the exclusive lock)."""
        from cheng_build.cas.packindex import create_index_file

        if not self.index_path.exists():
            from cheng_build.cas.reindex import pack_files, rebuild_index

            try:
                self.root.mkdir(parents=True, exist_ok=True)
                if pack_files(self.packs_dir):
                    # Packs without an index (it was lost): rebuild it from them before anything
                    # is written. A fresh empty index would hand out pack ids that name existing
                    # packs, and their next writer would cut them to nothing.
                    rebuild_index(self.packs_dir, self.index_path)
                else:
                    create_index_file(self.index_path)
            except (OSError, Exception) as exc:  # sqlite3.Error is imported lazily
                raise StoreError(f"cannot create the store index {self.index_path}", why=str(exc),
                                 how="check the path, free space and permissions") from None
        return self._open_index()

    def reindex(self) -> ReindexResult:
        """Rebuild the index from the packs, every block verified (``cheng-pkg store reindex``).

        The old index files are kept beside it as ``index.sqlite.old-<time>`` (a damaged one may
        still be worth a look); pins are files and are not touched.

        Raises:
            StoreError: the store cannot be locked, a pack read or the index written.
        """
        import time

        from cheng_build.cas.reindex import rebuild_index

        with self._lock(exclusive=True):
            if self._index is not None:
                self._index.close()
                self._index = None
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                old = self.index_path.with_name(self.index_path.name + suffix)
                if old.exists():
                    old.rename(old.with_name(f"{old.name}.old-{stamp}"))
            try:
                return rebuild_index(self.packs_dir, self.index_path)
            except (OSError, Exception) as exc:  # sqlite3.Error is imported lazily
                raise StoreError(f"cannot rebuild the store index {self.index_path}", why=str(exc),
                                 how="check free space and permissions, then run it again") from None

    def migrate(self) -> MigrateResult:
        """Move version-1 block files into packs now (what the first write does by itself).

        Raises:
            StoreError: the store cannot be locked or written (nothing removed).
        """
        from cheng_build.cas.migrate import migrate_flat

        with self._lock(exclusive=True):
            return migrate_flat(self, self._ensure_index())

    def locate(self, cid: CID) -> Location | None:
        """Where the block of ``cid`` is in the packs (``None``: not in the index)."""
        idx = self.index()
        if idx is None:
            return None
        key = block_key(cid)
        loc = idx.locate(key)
        if loc is None and idx.reopen_if_replaced():
            # A stale view: another process replaced the index (store reindex) after this store
            # opened it. Look once more, in the current file.
            loc = idx.locate(key)
        return loc

    def flat_path(self, cid: CID) -> Path:
        """Where a version-1 store kept the block of ``cid`` (read until it is migrated)."""
        s = cid_str(cid)
        return self.blocks_dir / s[-3:-1] / s

    def pack_path(self, pack: int) -> Path:
        return self.packs_dir / f"{pack}.pack"

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "store.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the store at {self.root}", why=str(exc),
                             how="check the path and its permissions (--pkg-cache: / PKG_CACHE)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if self._index is not None:
                self._index.reopen_if_replaced()  # a reindex by another process since we opened it
            with self._holding("exclusive" if exclusive else "shared"):
                yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def _holding(self, mode: str) -> Iterator[None]:
        """Note that this thread holds the store lock (see :meth:`index`)."""
        before = getattr(self._held, "mode", None)
        self._held.mode = mode
        try:
            yield
        finally:
            self._held.mode = before

    def locked(self, *, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the store lock: shared keeps gc out (writers), exclusive keeps writers out (gc).

        A caller that records its own roots next to the store (the storage leases) writes them
        under the shared lock, so a gc that honours those roots never runs in between.
        """
        self.index(create=True)  # a version-1 store migrates before anyone holds the lock
        return self._lock(exclusive)

    def clean_orphans(self) -> tuple[int, int]:
        """Cut off what writers that died left (a killed fetch); returns (files, bytes).

        Only when the lock can be taken exclusively *right now* (no writer alive): then every
        pack's bytes past its committed length, every pack file the index does not know, and
        every version-1 ``.tmp-`` file is an orphan. When a writer is running nothing is
        touched: the next fetch tries again, and gc does the same.
        """
        if not self.root.is_dir():
            return 0, 0
        try:
            fd = os.open(self.root / "store.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return 0, 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0, 0
            from cheng_build.cas.packgc import drop_orphans

            with self._holding("exclusive"):
                return drop_orphans(self, flat_temps_older_than=0.0)
        finally:
            os.close(fd)  # releases the lock

    # -- reads ----------------------------------------------------------------------------------

    def has(self, cid: CID) -> bool:
        """Whether a block for ``cid`` is stored (not verified; :meth:`get` verifies)."""
        if self.locate(cid) is not None:
            return True
        return self.blocks_dir.is_dir() and self.flat_path(cid).is_file()

    def _pack_fd(self, pack: int) -> int:
        with self._fd_mu:
            if self._pid != os.getpid():  # forked: the parent's descriptors are not ours to keep
                self._fds, self._pid = {}, os.getpid()
            fd = self._fds.get(pack)
            if fd is None:
                fd = os.open(self.pack_path(pack), os.O_RDONLY | os.O_CLOEXEC)
                self._fds[pack] = fd
            return fd

    def _read(self, cid: CID) -> tuple[bytes, str]:
        """The stored bytes of ``cid`` (unverified) and where they came from."""
        for attempt in range(2):
            loc = self.locate(cid)
            if loc is None:
                break
            try:
                data = os.pread(self._pack_fd(loc.pack), loc.length, loc.offset)
            except FileNotFoundError:
                if attempt:
                    raise
                continue  # compacted away between the lookup and the open: look it up again
            if len(data) != loc.length:
                return data, f"pack {loc.pack} is shorter than its index says"
            return data, f"pack {loc.pack} at offset {loc.offset}"
        path = self.flat_path(cid)
        try:
            return path.read_bytes(), str(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"block {cid} is not in the store", why=f"looked in {self.root}",
                                how="fetch it (cheng-pkg fetch) or import a CAR that holds it") from None

    def get(self, cid: CID) -> bytes:
        """The verified bytes of ``cid``.

        Raises:
            NotFoundError: the block is not stored, naming the CID.
            DigestMismatchError: the stored bytes do not match, naming the CID and where they are.
        """
        try:
            data, where = self._read(cid)
        except NotFoundError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot read block {cid}", why=str(exc)) from None
        try:
            verify_block(cid, data)
        except DigestMismatchError as exc:
            raise DigestMismatchError(
                f"block {cid} is corrupt",
                why=f"{where} does not hash to its CID",
                how="re-import it from a CAR file (cheng-pkg car import) or fetch it from a peer; "
                    "the good copy replaces the bad one") from exc
        return data

    def iter_cids(self) -> Iterator[CID]:
        """Every stored block's CID (indexed ones, then version-1 files not yet migrated)."""
        idx = self.index()
        seen: set[bytes] = set()
        if idx is not None:
            for key in idx.all_keys():
                seen.add(key)
                try:
                    yield decode_cid_bytes(key)
                except (CidError, ValueError):
                    continue
        from cheng_build.cas.migrate import flat_files

        for _, cid in flat_files(self):
            if block_key(cid) not in seen:
                yield cid

    def stats(self) -> StoreStats:
        """Counts and sizes (for reports and benchmarks; not verified)."""
        from cheng_build.cas.migrate import flat_files

        idx = self.index()
        blocks, nbytes = idx.stats() if idx is not None else (0, 0)
        packs = pack_bytes = 0
        if self.packs_dir.is_dir():
            for f in os.scandir(self.packs_dir):
                if f.name.endswith(".pack"):
                    packs += 1
                    pack_bytes += f.stat().st_size
        return StoreStats(blocks, nbytes, packs, pack_bytes, sum(1 for _ in flat_files(self)))

    # -- writes ---------------------------------------------------------------------------------

    def batch(self) -> Batch:
        """A batch of puts and pins, committed together when the ``with`` block ends."""
        return Batch(self)

    def batch_under_lock(self) -> Batch:
        """A batch for a caller that holds the store lock already (exclusively: migration, gc)."""
        return Batch(self, lock=False)

    def put(self, cid: CID, data: bytes) -> None:
        """Store one block after verifying it (see :meth:`put_many` for many).

        Raises:
            DigestMismatchError: ``data`` does not hash to ``cid``; nothing is written.
            StoreError: the store cannot be written.
        """
        with self.batch() as b:
            b.put(cid, data)

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> int:
        """Store many blocks in one durable batch; returns how many were new or repaired."""
        with self.batch() as b:
            for cid, data in blocks:
                b.put(cid, data)
        return b.written

    # -- pins and gc ----------------------------------------------------------------------------

    def _pin_path(self, cid: CID) -> Path:
        return self.pins_dir / cid_str(cid)

    def pin(self, cid: CID) -> None:
        """Pin the DAG under ``cid`` so :meth:`gc` keeps it.

        Raises:
            NotFoundError: the root block is not stored.
        """
        with self.locked():
            self._pin_locked(cid)

    def _pin_locked(self, cid: CID) -> None:
        if not self.has(cid):
            raise NotFoundError(f"cannot pin {cid}: its block is not in the store")
        if cid.codec.code == DAG_PB:
            # gc reads every pinned node to find what it keeps; one that does not decode would
            # stop every later gc. Refuse it here, where it comes in.
            try:
                block_links(cid, self.get(cid))
            except DagPbError as exc:
                raise IntegrityError(f"cannot pin {cid}: it is not a valid dag-pb node",
                                     why=f"{exc.what}; gc could never read what it links to",
                                     how="import it without pinning (--no-pin), or get the DAG "
                                         "from a source you trust") from None
        if not self._pin_path(cid).exists():
            atomic_write_bytes(self._pin_path(cid), b"")

    def unpin(self, cid: CID) -> bool:
        """Remove a pin; returns whether there was one."""
        try:
            self._pin_path(cid).unlink()
        except FileNotFoundError:
            return False
        return True

    def pins(self) -> list[CID]:
        """All pinned roots."""
        if not self.pins_dir.is_dir():
            return []
        out = []
        for f in sorted(self.pins_dir.iterdir()):
            try:
                out.append(parse_cid(f.name))
            except CidError:
                continue
        return out

    def gc(self) -> GcResult:
        """Remove every block not reachable from a pin, compact packs, drop orphans.

        Only dag-pb nodes are read (raw leaves have no links), so the mark costs a fraction of
        the store's size. Blocks missing below a pin are tolerated (a partial fetch); a *corrupt*
        pinned node stops gc before anything is deleted, because its children cannot be known
        and would be lost with it.

        Raises:
            DigestMismatchError: a pinned block is corrupt (repair it first).
        """
        from cheng_build.cas.packgc import sweep

        with self.locked(exclusive=True):
            live = self._live()
            res = sweep(self, live)
            return GcResult(res.kept, res.removed, res.bytes_freed, res.stale)

    def _live(self) -> set[bytes]:
        """The binary CIDs of every block reachable from a pin (raw leaves are not read).

        Raises:
            IntegrityError: a pinned DAG has a block that is not valid dag-pb (nothing removed).
        """
        live: set[bytes] = set()
        stack = [(p, p) for p in self.pins()]  # (block, the pin it is under)
        while stack:
            cid, pin = stack.pop()
            key = block_key(cid)
            if key in live:
                continue
            live.add(key)
            if cid.codec.code == RAW:
                continue  # a leaf: nothing below it, no need to read it
            try:
                data = self.get(cid)
            except NotFoundError:
                continue  # a hole below a pin: nothing under it can be found from here
            stack.extend((c, pin) for c in _links_under_pin(cid, data, pin))
        return live


def _links_under_pin(cid: CID, data: bytes, pin: CID) -> list[CID]:
    """A pinned block's links; a block that does not decode stops gc (its children are unknown)."""
    try:
        return block_links(cid, data)
    except DagPbError as exc:
        raise IntegrityError(
            f"pinned DAG {pin} has a block that is not valid dag-pb",
            why=f"{cid}: {exc.what}; what it links to cannot be known, so nothing "
                "is removed",
            how=f"unpin it: cheng-pkg unpin {pin}") from None


class Batch:
    """Staged writes committed together (see the module docstring).

    Use as a context manager; leaving the block normally commits, an exception discards every
    staged block. :attr:`written` counts blocks that were new or replaced a corrupt copy.
    """

    def __init__(self, store: Blockstore, *, lock: bool = True) -> None:
        self.store = store
        self._take_lock = lock
        self._writer: PackWriter | None = None
        self._writers: list[PackWriter] = []  # every pack this batch appended to
        self._rows: list[tuple[bytes, int, int, int]] = []  # (cid, pack, offset, length)
        self._pins: list[CID] = []
        self._seen: set[bytes] = set()  # CIDs put in this batch
        self._lock_cm: contextlib.AbstractContextManager[None] | None = None
        self._index: PackIndex | None = None
        self.written = 0

    def __enter__(self) -> Batch:
        self._index = self.store.index(create=True)
        if self._take_lock:
            self._lock_cm = self.store._lock(exclusive=False)
            self._lock_cm.__enter__()
        else:
            self._lock_cm = contextlib.nullcontext()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if et is None:
                self.commit()
            else:
                self.discard()
        finally:
            assert self._lock_cm is not None
            self._lock_cm.__exit__(et, ev, tb)

    def put(self, cid: CID, data: bytes) -> None:
        """Verify and stage one block (skipped when an identical copy is already stored).

        Raises:
            DigestMismatchError: ``data`` does not hash to ``cid``.
        """
        if self._lock_cm is None:
            raise RuntimeError("Batch.put outside 'with store.batch() as batch:'")
        verify_block(cid, data)
        self._stage(cid, data)

    def put_verified(self, cid: CID, data: bytes | memoryview) -> None:
        """Stage one block the caller has already verified against ``cid`` (not hashed again).

        For transfer code that must hash every received block anyway to recognise it (bitswap
        names a block by its prefix and the digest of its bytes; a gateway's CAR section is
        checked against its CID before it is accepted): hashing it a second time here would
        double the CPU cost of a fetch. Only ever pass bytes whose digest was just compared
        with ``cid``; reads still verify every block (:meth:`Blockstore.get`).
        """
        if self._lock_cm is None:
            raise RuntimeError("Batch.put_verified outside 'with store.batch() as batch:'")
        self._stage(cid, data)

    def _stored_equal(self, cid: CID, key: bytes, data: bytes | memoryview) -> bool:
        """Whether an identical copy is stored already (a differing one is corrupt: replace it)."""
        assert self._index is not None
        loc = self._index.locate(key)
        if loc is None:  # (a version-1 file is not looked at: packing a copy is what migration does)
            return False
        if loc.length != len(data):
            return False
        try:
            return os.pread(self.store._pack_fd(loc.pack), loc.length, loc.offset) == data
        except OSError:
            return False

    def _stage(self, cid: CID, data: bytes | memoryview) -> None:
        from cheng_build.cas.packfile import PACK_LIMIT, acquire

        key = block_key(cid)
        if key in self._seen:
            return  # staged already (a file repeating a chunk, e.g. runs of zeros)
        self._seen.add(key)
        if self._stored_equal(cid, key, data):
            return
        assert self._index is not None
        try:
            w = self._writer
            if w is None or w.pos >= PACK_LIMIT:
                w = self._writer = acquire(self.store.packs_dir, self._index,
                                           frozenset(x.pack for x in self._writers))
                self._writers.append(w)
            off = w.append(key, data)
        except Exception as exc:  # OSError, or sqlite3.Error from the index
            self.discard()
            raise StoreError(f"cannot write block {cid} to {self.store.root}", why=str(exc),
                             how="check free space and permissions of the store") from None
        self._rows.append((key, w.pack, off, len(data)))

    def start_writeback(self) -> None:
        """Start writing the blocks staged so far to disk (no wait): :meth:`commit`'s sync then
        has little left. For long batches filled while more data arrives (a fetch)."""
        for w in self._writers:
            w.start_writeback()

    @property
    def staged(self) -> int:
        """How many blocks are appended to packs and wait for :meth:`commit`."""
        return len(self._rows)

    def pin(self, cid: CID) -> None:
        """Pin ``cid`` once the batch's blocks are in place."""
        self._pins.append(cid)

    def discard(self) -> None:
        """Cut every staged block off its pack and let the packs go."""
        writers, self._writers, self._writer = self._writers, [], None
        for w in writers:
            if w.start == 0 and self._index is not None:
                # A pack this batch started holds nothing committed: remove it, so a refused
                # write leaves no trace. Its row goes first, while the pack is still locked.
                with contextlib.suppress(Exception):
                    self._index.delete([], [w.pack])
                    os.unlink(self.store.pack_path(w.pack))
            w.release(rollback=True)
        self._rows.clear()

    def commit(self) -> None:
        """fdatasync the packs, then index their blocks in one transaction, then write the pins."""
        writers, self._writers, self._writer = self._writers, [], None
        rows, self._rows = self._rows, []
        try:
            if writers:
                try:
                    for w in writers:  # 1. the bytes reach the disk ...
                        w.sync()
                    if any(w.created for w in writers):
                        fsync_dir(self.store.packs_dir)
                    assert self._index is not None  # 2. ... before the index points at them
                    self._index.commit(rows, {w.pack: w.pos for w in writers})
                except Exception as exc:  # OSError, sqlite3.Error
                    for w in writers:
                        w.release(rollback=True)
                    writers = []
                    raise StoreError(f"cannot commit blocks to {self.store.root}", why=str(exc)) from None
                self.written += len(rows)
        finally:
            for w in writers:
                w.release(rollback=False)
        for cid in self._pins:
            self.store._pin_locked(cid)
        self._pins.clear()
