"""Materialise a snapshot: ``<cache_root>/packages/<cid>/``, complete or absent, never half.

On-disk format::

    <cache_root>/packages/<cid>/            a finished checkout of the UnixFS DAG <cid>
                                            (files read-only, 0444: the cache is shared by builds)
    <cache_root>/packages/.<cid>.tmp-<hex>/  a checkout in progress (or left by a crash)

The tree is exported into the temp directory (:func:`~cheng_build.cas.exporter.export_to`), every
file and directory fsynced, and the temp directory renamed to its final name in one ``rename``.
Because the name is the CID, a directory that exists is complete and correct. Symlinks that would
lead out of the package (absolute, or climbing above its root) are refused, and the export is
capped (:data:`~cheng_build.cas.exporter.SNAPSHOT_LIMITS`) against DAGs that expand enormously.
Two processes materialising the same CID both succeed: the second rename loses and its copy is
removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cheng_build.cas.cid import CID, cid_str
from cheng_build.cas.exporter import SNAPSHOT_LIMITS, EntryKind, ExportLimits, export_to, kind_of
from cheng_build.core.errors import InputError

if TYPE_CHECKING:
    from cheng_build.cas.blockstore import Blockstore

__all__ = ["materialize", "package_dir"]


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
        export_to(store, cid, final, file_mode=0o444, durable=True, contained_symlinks=True,
                  limits=limits)
    except InputError:
        if final.is_dir():  # another process finished first: theirs is identical
            return final
        raise
    return final
