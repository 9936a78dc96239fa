"""Moving a version-1 store (one file per block under ``blocks/<xx>/``) into packs.

Runs under the store's exclusive lock (no writer is alive), as one batch: every file is read and
verified against its name, the good ones are appended to a pack and committed (fsync + index)
together, and only then are the files removed. A kill at any point loses nothing: before the
commit the files are all still there, after it the packs hold every block, and running the
migration again skips what the index already has and removes the files left over.

Files that do not verify are not moved: they go to ``<root>/corrupt/`` (reported by name), where
a user can look at them; the block counts as missing, and fetching it again repairs the store.
Top-level files of ``blocks/`` (the storage root's legacy whole objects) are not blocks of this
layout and are left alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cheng_build.cas.cid import CID, CidError, parse_cid, verify_block
from cheng_build.core.atomic import fsync_dir
from cheng_build.core.errors import DigestMismatchError
from cheng_build.core.record import dataclass, field

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from cheng_build.cas.packed import PackedStore
    from cheng_build.cas.packindex import PackIndex

__all__ = ["MigrateResult", "flat_files", "has_flat_blocks", "migrate_flat"]

_TMP = ".tmp-"


@dataclass(slots=True)
class MigrateResult:
    """What a migration did."""

    moved: int = 0  # blocks now in packs (new or already there)
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)  # files moved to <root>/corrupt/
    temps: int = 0  # write temp files of dead version-1 writers removed


def _shards(store: PackedStore) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(store.blocks_dir)
                if len(e.name) == 2 and e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def has_flat_blocks(store: PackedStore) -> bool:
    """Whether version-1 shard directories exist (cheap: one directory listing)."""
    return bool(_shards(store))


def flat_files(store: PackedStore) -> Iterator[tuple[Path, CID]]:
    """Every version-1 block file and its CID (temp files and stray names skipped)."""
    for shard in sorted(_shards(store)):
        with contextlib.suppress(OSError):
            for f in sorted(os.listdir(shard)):
                if f.startswith(_TMP):
                    continue
                try:
                    yield shard / f, parse_cid(f)
                except CidError:
                    continue


def migrate_flat(store: PackedStore, index: PackIndex) -> MigrateResult:
    """Move every version-1 block into packs; the caller holds the store lock exclusively.

    Raises:
        StoreError: the packs or the index cannot be written (nothing removed).
    """
    res = MigrateResult()
    done: list[Path] = []
    bad: list[Path] = []
    with store.batch_under_lock() as batch:
        for path, cid in flat_files(store):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            try:
                verify_block(cid, data)
            except DigestMismatchError:
                bad.append(path)
                continue
            batch.put_verified(cid, data)
            done.append(path)
            res.moved += 1
            res.bytes += len(data)
    # Committed and durable: the files can go.
    for path in done:
        with contextlib.suppress(OSError):
            path.unlink()
    if bad:
        quarantine = store.root / "corrupt"
        quarantine.mkdir(exist_ok=True)
        for path in bad:
            with contextlib.suppress(OSError):
                os.replace(path, quarantine / path.name)
                res.corrupt.append(path.name)
    for shard in _shards(store):
        for f in os.listdir(shard):
            if f.startswith(_TMP):  # no writer is alive (exclusive lock): an orphan
                with contextlib.suppress(OSError):
                    os.unlink(shard / f)
                    res.temps += 1
        with contextlib.suppress(OSError):
            shard.rmdir()
    with contextlib.suppress(OSError):
        fsync_dir(store.blocks_dir)
    return res
