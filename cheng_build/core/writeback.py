"""Start writing a file's dirty pages to disk now, without waiting and without dropping them.

A long batch of appends ends with one ``fdatasync``; left alone, the kernel writes nothing
until then, so that call waits for every byte of the batch. Asking for the writeback of each
stretch as it is appended (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``) lets the disk work
while the next bytes arrive, and the final ``fdatasync`` finds little left. It is a hint only:
durability still comes from ``fdatasync``. Elsewhere (no such call) it does nothing.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

__all__ = ["start_writeback"]

_WRITE = 2  # SYNC_FILE_RANGE_WRITE: start writeback of the dirty pages, do not wait
_fn: Any = None
_loaded = False


def _load() -> Any:
    global _fn, _loaded
    if not _loaded:
        _loaded = True
        if sys.platform.startswith("linux"):
            # ctypes (~1.5 ms to import) only once a batch asks for writeback (a fetch does; a
            # publish never does). ``CDLL(None)`` is the process's own symbols, libc among them
            # (``ctypes.util.find_library`` would import subprocess, shutil and tempfile).
            import ctypes

            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = libc.sync_file_range
                fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _fn = fn
            except (OSError, AttributeError):
                _fn = None
    return _fn


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask for ``length`` bytes of ``fd`` from ``offset`` to be written out; True if asked.

    Never raises: a refusal (an old kernel, a file system without it) only means the final
    ``fdatasync`` does all the work, as it would anyway.
    """
    fn = _load()
    if fn is None or length <= 0:
        return False
    return bool(fn(fd, offset, length, _WRITE) == 0)  # ctypes lets go of the GIL for the call
