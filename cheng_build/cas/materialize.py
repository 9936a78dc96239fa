"""Materialise a snapshot: ``<cache_root>/packages/<cid>/``, complete or absent, never half.

On-disk format::

    <cache_root>/packages/<cid>/            a finished checkout of the UnixFS DAG <cid>
                                            (files read-only, 0444: the cache is shared by builds)
    <cache_root>/packages/.<cid>.tmp-<hex>/  a checkout in progress (or left by a crash)
    <cache_root>/checkout.lock              flock: checkouts hold it shared; the next fetch
                                            removes a crashed checkout's temp tree when it can
                                            take it exclusively (no checkout alive)

The tree is exported into the temp directory (:func:`~cheng_build.cas.exporter.export_to`), every
file and directory fsynced, and the temp directory renamed to its final name in one ``rename``.
Because the name is the CID, a directory that exists is complete and correct. Symlinks that would
lead out of the package (absolute, or climbing above its root) are refused, and the export is
capped (:data:`~cheng_build.cas.exporter.SNAPSHOT_LIMITS`) against DAGs that expand enormously.
Two processes materialising the same CID both succeed: the second rename loses and its copy is
removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cheng_build.cas.cid import CID, cid_str
from cheng_build.cas.exporter import SNAPSHOT_LIMITS, EntryKind, ExportLimits, export_to, kind_of
from cheng_build.core.errors import InputError

if TYPE_CHECKING:
    from cheng_build.cas.blockstore import Blockstore

__all__ = ["clean_orphaned_checkouts", "materialize", "package_dir"]

_LOCK = "checkout.lock"


def package_dir(cache_root: str | os.PathLike[str], cid: CID) -> Path:
    """Where ``cid`` is (or would be) materialised."""
    return Path(cache_root) / "packages" / cid_str(cid)


def materialize(store: Blockstore, cid: CID, cache_root: str | os.PathLike[str], *,
                limits: ExportLimits = SNAPSHOT_LIMITS) -> Path:
    """Check out the directory ``cid`` to ``cache_root/packages/<cid>/`` and return that path.

    ``limits``: caps on what the checkout may write (default :data:`SNAPSHOT_LIMITS`).

    Raises:
        InputError: ``cid`` is not a directory (snapshots are trees).
        NotFoundError / DigestMismatchError / UnixFSStructureError: the DAG is incomplete or bad;
            nothing is left at the final path.
    """
    final = package_dir(cache_root, cid)
    if final.is_dir():
        return final
    if kind_of(store, cid) is not EntryKind.DIRECTORY:
        raise InputError(f"{cid} is not a directory", why="a package snapshot is a UnixFS directory")
    try:
        with _checkout_lock(cache_root, exclusive=False):  # see clean_orphaned_checkouts
            export_to(store, cid, final, file_mode=0o444, durable=True, contained_symlinks=True,
                      limits=limits)
    except InputError:
        if final.is_dir():  # another process finished first: theirs is identical
            return final
        raise
    return final


@contextlib.contextmanager
def _checkout_lock(cache_root: str | os.PathLike[str], *, exclusive: bool,
                   wait: bool = True) -> Iterator[bool]:
    """``<cache>/checkout.lock``: checkouts hold it shared while their temp tree exists;
    yields False when ``wait`` is off and it is not free."""
    d = Path(cache_root)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def clean_orphaned_checkouts(cache_root: str | os.PathLike[str]) -> tuple[int, int]:
    """Remove ``packages/.<cid>.tmp-*`` trees of checkouts that died; returns (files, bytes).

    Only when no checkout is running (the lock is free for an exclusive hold), so a live
    checkout's temp tree is never touched.
    """
    d = Path(cache_root) / "packages"
    if not d.is_dir():
        return 0, 0
    files = nbytes = 0
    with _checkout_lock(cache_root, exclusive=True, wait=False) as free:
        if not free:
            return 0, 0
        for tmp in d.iterdir():
            if not (tmp.name.startswith(".") and ".tmp-" in tmp.name) or tmp.is_symlink():
                continue
            for p in tmp.rglob("*"):
                with contextlib.suppress(OSError):
                    if p.is_file() and not p.is_symlink():
                        files += 1
                        nbytes += p.stat().st_size
            for p in sorted(tmp.rglob("*"), reverse=True):  # files are read-only: fix modes
                with contextlib.suppress(OSError):
                    if p.is_dir() and not p.is_symlink():
                        os.chmod(p, 0o755)
            shutil.rmtree(tmp, ignore_errors=True)
    return files, nbytes
