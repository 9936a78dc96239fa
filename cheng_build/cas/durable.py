"""fsync many files at once: the batching behind the blockstore's and materialize's durability."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cheng_build.core.atomic import fsync_dir

__all__ = ["fsync_dirs", "fsync_files"]


def _fsync_one(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(paths: Sequence[Path]) -> None:
    """fsync every file; several in flight so the file system can merge their journal commits.

    Raises:
        OSError: a file cannot be opened or flushed.
    """
    if len(paths) <= 2:
        for p in paths:
            _fsync_one(p)
        return
    # fsync releases the GIL; with many outstanding, ext4/xfs group them into few commits.
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        list(pool.map(_fsync_one, paths))


def fsync_dirs(dirs: Sequence[Path]) -> None:
    """fsync each directory once (makes renames and creations inside it durable)."""
    for d in dict.fromkeys(dirs):
        fsync_dir(d)
