"""Default locations, each overridable by a flag or an environment variable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

DEFAULT_CACHE_DIR = "chengcache"
DEFAULT_REGISTRY = "build/cheng_registry/registry.jsonl"


def cache_dir(flag: str | None = None) -> Path:
    """The package cache: ``--pkg-cache:`` > ``PKG_CACHE`` > ``./chengcache``.

    Raises:
        InputError: the path (or a directory above it) is a file, so the cache could never be
            created there; said here, once, rather than as a bare ``File exists`` from a mkdir
            deep inside a fetch.
    """
    if flag:
        path, source = Path(flag), "--pkg-cache"
    elif os.environ.get("PKG_CACHE"):
        path, source = Path(os.environ["PKG_CACHE"]), "PKG_CACHE"
    else:
        path, source = Path(DEFAULT_CACHE_DIR), "the default cache ./chengcache"
    _check_can_be_dir(path, source)
    return path


def _check_can_be_dir(path: Path, source: str) -> None:
    # The nearest existing path at or above `path` must be a directory (one stat per level).
    probe = path
    while True:
        try:
            st = probe.stat()
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                return
            probe = probe.parent
            continue
        except OSError:
            return  # permissions and the like: the operation that needs it says so
        if stat.S_ISDIR(st.st_mode):
            return
        from cheng_build.core.errors import InputError

        where = "it" if probe == path else f"{probe}, above it,"
        raise InputError(f"package cache {path} is not a directory",
                         why=f"{source} names {path}, but {where} is a file; the package cache is "
                             "a directory (blocks/, packages/)",
                         how="point PKG_CACHE (or --pkg-cache:) at a directory, or move the file "
                             "away")


def registry_path(flag: str | None = None) -> Path:
    """The registry log: ``--registry:`` > ``PKG_REGISTRY`` > ``build/cheng_registry/registry.jsonl``."""
    return Path(flag or os.environ.get("PKG_REGISTRY") or DEFAULT_REGISTRY)
