"""A filesystem blockstore: every block a file named by its CID, verified on every read.

(Over 400 lines because the store and its write :class:`Batch` share one on-disk layout and one
lock protocol, documented here once.)

On-disk format (version 1)::

    <root>/blocks/<xx>/<cid>      one block; <cid> is CIDv1 base32, <xx> its next-to-last two
                                  characters (go-ipfs flatfs "next-to-last/2": the last character
                                  of a base32 CID carries padding bits, the two before it are
                                  uniformly spread, giving <= 1,024 shard directories)
    <root>/blocks/<xx>/.tmp-*     a write in flight (or left by a crash; gc removes old ones)
    <root>/pins/<cid>             an empty file: the DAG under <cid> is pinned (recursively)
    <root>/store.lock             flock: writers hold it shared, gc holds it exclusive

Writes are atomic and durable, and batched so durability does not cost one fsync round trip per
block: a :class:`Batch` writes every block to a temp file in its shard, then makes all of them
durable together (per-file fsyncs from a thread pool for small batches; one ``syncfs`` of the
store's file system from 64 blocks on, see :mod:`cheng_build.cas.durable`), then renames each into
place, then makes the renames durable (each touched directory fsynced once, or a second
``syncfs``). A reader sees a block completely or not at all; a crash leaves only ``.tmp-`` files.

Concurrent writers are safe without coordination: a block's name is its content, so two writers
renaming the same CID install identical bytes. ``gc`` takes the lock exclusively, and a batch
(import + pin) holds it shared from its first write until its pins are written, so gc can never
delete blocks an import has written but not yet pinned.

A block that fails verification on read raises :class:`DigestMismatchError` naming its CID; putting
the block again (from a CAR file or a peer) repairs it, because ``put`` compares an existing file
with the new bytes and replaces it when they differ.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cheng_build.cas.cid import CID, DAG_PB, RAW, CidError, cid_bytes, cid_str, parse_cid, verify_block
from cheng_build.cas.dagpb import DagPbError
from cheng_build.cas.durable import SYNCFS_MIN_FILES, flush_filesystem, fsync_dirs, fsync_files
from cheng_build.cas.walk import block_links
from cheng_build.core.atomic import atomic_write_bytes
from cheng_build.core.errors import DigestMismatchError, IntegrityError, NotFoundError, StoreError
from cheng_build.core.paths import cache_dir

__all__ = ["Batch", "Blockstore", "GcResult"]

_TMP = ".tmp-"
_STALE_TMP_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class GcResult:
    """What a garbage collection did."""

    kept: int
    removed: int
    bytes_freed: int
    stale_temps: int


class Blockstore:
    """Blocks under ``root/blocks/``; see the module docstring for the layout.

    Args:
        root: the cache root (``chengcache`` by default, see :func:`cheng_build.core.paths.cache_dir`).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()
        self.blocks_dir = self.root / "blocks"
        self.pins_dir = self.root / "pins"

    def __repr__(self) -> str:
        return f"Blockstore({os.fspath(self.root)!r})"

    # -- locations ------------------------------------------------------------------------------

    def path_for(self, cid: CID) -> Path:
        """Where the block of ``cid`` lives (whether or not it exists)."""
        s = cid_str(cid)
        return self.blocks_dir / s[-3:-1] / s

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "store.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the store at {self.root}", why=str(exc),
                             how="check the path and its permissions (--pkg-cache: / PKG_CACHE)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def locked(self, *, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the store lock: shared keeps gc out (writers), exclusive keeps writers out (gc).

        A caller that records its own roots next to the store (the storage leases) writes them
        under the shared lock, so a gc that honours those roots never runs in between.
        """
        return self._lock(exclusive)

    def clean_orphans(self) -> tuple[int, int]:
        """Remove the temp files of writers that died (a killed fetch); returns (files, bytes).

        Every writer holds the store lock shared from its first temp file to its commit, so
        when the lock can be taken exclusively *right now* no writer is alive and every
        ``.tmp-`` file is an orphan. When it cannot (a fetch is running), nothing is touched:
        the next fetch tries again, and gc removes what is over an hour old. (Judging by the
        writer's pid instead would delete a live writer's files in another pid namespace.)
        """
        if not self.blocks_dir.is_dir():
            return 0, 0
        try:
            fd = os.open(self.root / "store.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return 0, 0
        files = nbytes = 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0, 0
            for shard in self.blocks_dir.iterdir():
                if not shard.is_dir():
                    continue
                for f in shard.iterdir():
                    if f.name.startswith(_TMP):
                        with contextlib.suppress(OSError):
                            size = f.stat().st_size
                            f.unlink()
                            files += 1
                            nbytes += size
        finally:
            os.close(fd)  # releases the lock
        return files, nbytes

    # -- reads ----------------------------------------------------------------------------------

    def has(self, cid: CID) -> bool:
        """Whether a block for ``cid`` is stored (not verified; :meth:`get` verifies)."""
        return self.path_for(cid).is_file()

    def get(self, cid: CID) -> bytes:
        """The verified bytes of ``cid``.

        Raises:
            NotFoundError: the block is not stored, naming the CID.
            DigestMismatchError: the stored bytes do not match, naming the CID and the file.
        """
        path = self.path_for(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"block {cid} is not in the store", why=f"looked in {self.root}",
                                how="fetch it (cheng-pkg fetch) or import a CAR that holds it") from None
        except OSError as exc:
            raise StoreError(f"cannot read block {cid}", why=str(exc)) from None
        try:
            verify_block(cid, data)
        except DigestMismatchError as exc:
            raise DigestMismatchError(
                f"block {cid} is corrupt",
                why=f"{path} does not hash to its CID",
                how="re-import it from a CAR file (cheng-pkg car import) or fetch it from a peer; "
                    "the good copy replaces the bad one") from exc
        return data

    def iter_cids(self) -> Iterator[CID]:
        """Every stored block's CID (files that are not CIDs are skipped)."""
        if not self.blocks_dir.is_dir():
            return
        for shard in sorted(self.blocks_dir.iterdir()):
            if not shard.is_dir():
                continue
            for f in sorted(shard.iterdir()):
                if f.name.startswith(_TMP):
                    continue
                try:
                    yield parse_cid(f.name)
                except CidError:
                    continue

    # -- writes ---------------------------------------------------------------------------------

    def batch(self) -> Batch:
        """A batch of puts and pins, committed together when the ``with`` block ends."""
        return Batch(self)

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
        with self._lock(exclusive=False):
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
        """Remove every block not reachable from a pin, and stale temp files.

        Only dag-pb nodes are read (raw leaves have no links), so gc costs a fraction of the
        store's size. Blocks missing below a pin are tolerated (a partial fetch); a *corrupt*
        pinned node stops gc before anything is deleted, because its children cannot be known
        and would be lost with it.

        Raises:
            DigestMismatchError: a pinned block is corrupt (repair it first).
        """
        with self._lock(exclusive=True):
            live = self._live()
            kept = removed = freed = stale = 0
            now = time.time()
            for f in self._block_files():
                if f.name.startswith(_TMP):
                    stale += _drop_if_stale(f, now)
                elif f.name in live:
                    kept += 1
                else:
                    size = _unlink(f)
                    if size is not None:
                        removed += 1
                        freed += size
            return GcResult(kept, removed, freed, stale)

    def _live(self) -> set[str]:
        """The names of every block reachable from a pin (raw leaves are not read).

        Raises:
            IntegrityError: a pinned DAG has a block that is not valid dag-pb (nothing removed).
        """
        live: set[str] = set()
        stack = [(p, p) for p in self.pins()]  # (block, the pin it is under)
        while stack:
            cid, pin = stack.pop()
            name = cid_str(cid)
            if name in live:
                continue
            live.add(name)
            if cid.codec.code == RAW:
                continue  # a leaf: nothing below it, no need to read it
            try:
                data = self.get(cid)
            except NotFoundError:
                continue  # a hole below a pin: nothing under it can be found from here
            stack.extend((c, pin) for c in _links_under_pin(cid, data, pin))
        return live

    def _block_files(self) -> Iterator[Path]:
        """Every file in every shard directory (blocks and temp files alike)."""
        if not self.blocks_dir.is_dir():
            return
        for shard in self.blocks_dir.iterdir():
            if shard.is_dir():
                yield from shard.iterdir()


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


def _drop_if_stale(f: Path, now: float) -> int:
    """Remove a temp file a crashed writer left (older than the stale limit); 1 when removed."""
    with contextlib.suppress(OSError):
        if now - f.stat().st_mtime > _STALE_TMP_SECONDS:
            f.unlink()
            return 1
    return 0


def _unlink(f: Path) -> int | None:
    """Remove a block file; its size, or None when it could not be removed (gone already)."""
    try:
        size = f.stat().st_size
        f.unlink()
    except OSError:
        return None
    return size


class Batch:
    """Staged writes committed together (see the module docstring).

    Use as a context manager; leaving the block normally commits, an exception discards every
    staged file. :attr:`written` counts blocks that were new or replaced a corrupt copy.
    """

    def __init__(self, store: Blockstore) -> None:
        self.store = store
        self._staged: list[tuple[Path, Path]] = []  # (temp, final)
        self._pins: list[CID] = []
        self._shards: set[Path] = set()  # shard directories known to exist
        self._fresh: set[Path] = set()  # ... of which this batch created these
        self._seen: set[bytes] = set()  # CIDs put in this batch
        self._lock_cm: contextlib.AbstractContextManager[None] | None = None
        self.written = 0

    def __enter__(self) -> Batch:
        self._lock_cm = self.store._lock(exclusive=False)
        self._lock_cm.__enter__()
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

    def _stage(self, cid: CID, data: bytes | memoryview) -> None:
        key = cid_bytes(cid)
        if key in self._seen:
            return  # staged already (a file repeating a chunk, e.g. runs of zeros)
        self._seen.add(key)
        final = self.store.path_for(cid)
        shard = final.parent
        # A shard this batch created held nothing before it: no need to look for a copy there.
        if shard not in self._fresh:
            try:
                if final.stat().st_size == len(data) and final.read_bytes() == data:
                    return  # already stored intact
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot read block {cid}", why=str(exc)) from None
        try:
            if shard not in self._shards:
                try:
                    shard.mkdir()
                    self._fresh.add(shard)
                except FileExistsError:
                    pass
                except FileNotFoundError:
                    shard.mkdir(parents=True, exist_ok=True)
                    self._fresh.add(shard)
                self._shards.add(shard)
            tmp = shard / f"{_TMP}{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            finally:
                os.close(fd)
        except OSError as exc:
            self.discard()
            raise StoreError(f"cannot write block {cid} to {self.store.root}", why=str(exc),
                             how="check free space and permissions of the store") from None
        self._staged.append((tmp, final))

    @property
    def staged(self) -> int:
        """How many blocks are written to temp files and wait for :meth:`commit`."""
        return len(self._staged)

    def pin(self, cid: CID) -> None:
        """Pin ``cid`` once the batch's blocks are in place."""
        self._pins.append(cid)

    def discard(self) -> None:
        """Remove every staged temp file."""
        for tmp, _ in self._staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._staged.clear()

    def commit(self) -> None:
        """fsync staged files together, rename them into place, fsync their directories once."""
        staged, self._staged = self._staged, []
        if staged:
            big = len(staged) >= SYNCFS_MIN_FILES
            try:
                # 1. the data of every temp file reaches the disk ...
                if not (big and flush_filesystem(self.store.blocks_dir)):
                    fsync_files([t for t, _ in staged])
                # 2. ... before any of them gets its final name ...
                for tmp, final in staged:
                    os.replace(tmp, final)
            except OSError as exc:
                for tmp, _ in staged:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                raise StoreError(f"cannot commit blocks to {self.store.root}", why=str(exc)) from None
            # 3. ... and the renames themselves are made durable, once per directory.
            if not (big and flush_filesystem(self.store.blocks_dir)):
                fsync_dirs([*(final.parent for _, final in staged), self.store.blocks_dir])
            self.written += len(staged)
        for cid in self._pins:
            self.store._pin_locked(cid)
        self._pins.clear()
