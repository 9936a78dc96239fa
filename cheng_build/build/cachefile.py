"""Writes for chengc's own cache files: atomic (temp file + rename), deliberately not fsynced.

Everything under ``<cache>/chengc/`` can be rebuilt and is checked when read (entries and stamps
must parse and match their key; artifacts must match their digest), so after a power cut a torn
file is a cache miss, never a wrong build. Skipping the two fsyncs of
:func:`cheng_build.core.atomic.atomic_write_bytes` saves ~10-15 ms per file on a busy disk, and a
cache miss writes five of them. Artifacts and ``cheng.meta.toml`` (what the user keeps) are
still written durably with ``core.atomic``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_cache_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (readers see the old or the new file, whole).

    Raises:
        OSError: the directory cannot be created or written (nothing is left behind).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name made here rather than by tempfile.mkstemp: importing tempfile (shutil, bz2,
    # lzma, random) costs a no-op build more than this whole write.
    tmp = os.path.join(path.parent, f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


__all__ = ["write_cache_file"]
