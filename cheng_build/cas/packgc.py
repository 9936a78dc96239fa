"""Sweeping and compacting the packed blockstore (the caller holds the store lock exclusively).

A sweep, given the set of live binary CIDs (the mark, by :meth:`Blockstore.gc` or
:func:`cheng_build.storage.gc.collect`):

1. moves any version-1 files into packs (:mod:`cheng_build.cas.migrate`) and removes orphans:
   pack files the index does not know, and pack bytes past their committed length (no writer is
   alive under the exclusive lock, so both are leftovers of killed ones);
2. forgets every block that is not live, in one index transaction;
3. compacts: a pack whose live records fill less than half of it, and every pack under
   ``SMALL_PACK`` bytes when there are several (many small batches), has its live records copied
   into a fresh pack; after the copy is fsynced, one transaction points the index at the copies
   and drops the old packs' rows, and only then are the old files removed.

A ``kill -9`` anywhere leaves a store that opens and reads: before a commit the index still points
at the old, intact records; after it, at fsynced copies; a leftover file is dropped by the next
sweep (or ``clean_orphans``). Blocks are copied as stored, not re-hashed: a corrupt block stays
corrupt and is still reported on read, where the check belongs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cheng_build.cas.cid import DAG_PB, cid_bytes, cid_str, decode_cid_bytes

if TYPE_CHECKING:
    from cheng_build.cas.packed import PackedStore
    from cheng_build.cas.packindex import PackIndex

__all__ = ["SMALL_PACK", "SweepResult", "compact", "drop_orphans", "sweep"]

SMALL_PACK = 16 << 20
_SPARSE = 0.5  # a pack less than this full of live records is rewritten
_STALE_TMP_SECONDS = 3600.0


@dataclass(slots=True)
class SweepResult:
    """What a sweep did (or would do, on a dry run)."""

    kept: int = 0
    removed: int = 0
    bytes_freed: int = 0  # block bytes forgotten
    stale: int = 0  # orphan files and tails removed
    packs_rewritten: int = 0
    packs_removed: int = 0
    pack_bytes_freed: int = 0  # what the packs directory shrank by (net of the copies)


def _pack_id(name: str) -> int | None:
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "pack" and stem.isdigit() else None


def drop_orphans(store: PackedStore, *, flat_temps_older_than: float = _STALE_TMP_SECONDS) -> tuple[int, int]:
    """Remove what dead writers left; returns (files or tails, bytes). Exclusive lock held."""
    files = nbytes = 0
    idx = store.index()
    # Without an index nothing can be judged an orphan (a lost index.sqlite must not cost the
    # packs too): leave the packs alone.
    known = idx.packs() if idx is not None else {}
    if idx is not None and store.packs_dir.is_dir():
        for e in os.scandir(store.packs_dir):
            pack = _pack_id(e.name)
            if pack is None:
                continue
            with contextlib.suppress(OSError):
                size = e.stat().st_size
                committed = known.get(pack)
                if committed is None or committed == 0:
                    os.unlink(e.path)  # not (or never) committed: nothing points into it
                    if committed == 0 and idx is not None:
                        idx.delete([], [pack])
                    files, nbytes = files + 1, nbytes + size
                elif size > committed:
                    os.truncate(e.path, committed)
                    files, nbytes = files + 1, nbytes + size - committed
    # Temp files of version-1 writers (chengc's action cache still writes that layout).
    from cheng_build.cas.migrate import _shards

    now = time.time()
    for shard in _shards(store):
        for e in os.scandir(shard):
            if e.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):
                    st = e.stat()
                    if now - st.st_mtime >= flat_temps_older_than:
                        os.unlink(e.path)
                        files, nbytes = files + 1, nbytes + st.st_size
    return files, nbytes


def sweep(store: PackedStore, live: set[bytes], *, dry_run: bool = False,
          on_delete: Callable[[str], None] | None = None) -> SweepResult:
    """Forget every block not in ``live``, then compact (see the module doc).

    Raises:
        StoreError: the index or the packs cannot be written.
    """
    from cheng_build.cas.migrate import flat_files, has_flat_blocks, migrate_flat

    res = SweepResult()
    idx = store.index()
    if idx is None:
        return res
    if dry_run:
        for _, cid in flat_files(store):  # counted as they would be once migrated
            key = cid_bytes(cid)
            if key in live or (key[1] == DAG_PB and key[2:] in live):
                res.kept += 1
            else:
                res.removed += 1
    else:
        if has_flat_blocks(store):
            migrate_flat(store, idx)
        res.stale += drop_orphans(store)[0]
    dead: list[bytes] = []
    for key, loc in idx.rows():
        # A mark made from dag-pb links holds a CIDv0 as its bare multihash; the index keys it
        # as CIDv1 (blockstore.block_key).
        if key in live or (key[1] == DAG_PB and key[2:] in live):
            res.kept += 1
        else:
            dead.append(key)
            res.removed += 1
            res.bytes_freed += loc.length
    if dry_run:
        return res
    idx.delete(dead)
    if on_delete is not None:
        for key in dead:
            on_delete(cid_str(decode_cid_bytes(key)))
    compact(store, idx, res)
    return res


def compact(store: PackedStore, idx: PackIndex, res: SweepResult | None = None) -> SweepResult:
    """Rewrite sparse and small packs into fresh ones (see the module doc). Exclusive lock held."""
    from cheng_build.cas.packfile import PACK_LIMIT, fresh

    res = res if res is not None else SweepResult()
    packs = idx.packs()
    live = idx.live_bytes()
    empty = [p for p, c in packs.items() if live.get(p, 0) == 0]
    sparse = [p for p, c in packs.items() if p not in empty and live[p] < c * _SPARSE]
    small = [p for p, c in packs.items() if p not in empty and p not in sparse and c < SMALL_PACK]
    todo = sorted(sparse + (small if len(small) > 1 else []))
    if empty:
        idx.delete([], empty)
        for p in empty:
            res.pack_bytes_freed += _remove(store.pack_path(p))
            res.packs_removed += 1
    w = None
    try:
        for old in todo:
            rows = idx.pack_rows(old)
            if w is None or w.pos >= PACK_LIMIT:
                if w is not None:
                    w.release(rollback=False)
                w = fresh(store.packs_dir, idx)
            moved = []
            before = w.pos
            with open(store.pack_path(old), "rb") as fh:
                for key, off, ln in rows:
                    data = os.pread(fh.fileno(), ln, off)
                    moved.append((key, w.pack, w.append(key, data), len(data)))
            w.sync()
            if w.created:
                from cheng_build.core.atomic import fsync_dir

                fsync_dir(store.packs_dir)
                w.created = False
            idx.commit(moved, {w.pack: w.pos}, drop_packs=[old])
            res.pack_bytes_freed += _remove(store.pack_path(old)) - (w.pos - before)
            res.packs_rewritten += 1
    finally:
        if w is not None:
            w.release(rollback=False)
    return res


def _remove(path: os.PathLike[str]) -> int:
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except OSError:
        return 0
    return size
