"""The two sources that need no network: a dev-only path override and the local cache.

Cache layout (``cas`` owns the formats): blocks under ``<cache>/blocks/``, complete snapshots under
``<cache>/packages/<cid>/`` (made by ``cas.materialize``: temp dir + rename, so a directory
there is always complete).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cheng_build.core.errors import InputError, PolicyError

if TYPE_CHECKING:
    from cheng_build.pkg.lock import LockedDep


def packages_dir(cache_root: Path, cid: str) -> Path:
    return cache_root / "packages" / cid


def cached_package(cache_root: Path, cid: str) -> Path | None:
    """``packages/<cid>/`` when it exists (it exists only complete)."""
    p = packages_dir(cache_root, cid)
    return p if p.is_dir() else None


def path_override(dep: LockedDep, lock_dir: Path | None, level: str) -> Path | None:
    """A dependency's ``path`` override (seed A1.3: dev only), resolved against the lock's folder.

    Raises:
        PolicyError: an override at security level L2 (production builds use locked CIDs only).
        InputError: the override names a folder that does not exist.
    """
    raw = dep.path
    if not raw:
        return None
    if level == "L2":
        raise PolicyError(f"{dep.package_id}: path override '{raw}' refused at level L2",
                          why="a path override builds unverified local files; L2 builds only "
                              "what the lock pins by CID",
                          how="remove 'path' from the lock, or use level L0/L1 for development")
    p = Path(raw).expanduser()
    if not p.is_absolute() and lock_dir is not None:
        p = lock_dir / p
    if not p.is_dir():
        raise InputError(f"{dep.package_id}: path override {p} does not exist",
                         how="fix or remove the dependency's 'path' in the lock")
    return p.resolve()
