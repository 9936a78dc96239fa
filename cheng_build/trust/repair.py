"""``cheng-registry repair``: cut off a torn last line, and nothing else.

A publisher killed mid-append (power cut, ``kill -9``) can leave the log ending in bytes without a
newline. Every reader refuses such a log (a torn line is never silently dropped), so one command
removes exactly that unterminated tail, under the log's file lock, and says what it removed. A
complete line, however wrong, is never touched: that is tampering for ``verify`` to name, not
damage to repair.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cheng_build.core.atomic import file_lock
from cheng_build.core.errors import InputError

_PREVIEW = 60


@dataclass(frozen=True, slots=True)
class Repair:
    """What ``repair`` did: ``removed`` bytes of line ``line`` (0 bytes: nothing to do)."""

    path: Path
    line: int  # the torn line's number (the one after the last complete line)
    removed: int
    kept: int  # bytes left: the complete lines
    preview: str  # the removed bytes, shortened and escaped for one terminal line


def repair_torn_tail(path: str | os.PathLike[str]) -> Repair:
    """Truncate ``path`` after its last newline when it does not end in one.

    Raises:
        InputError: no such registry.
        OSError: it cannot be read or truncated.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"registry {p} not found", how="pass --registry:<path>")
    with file_lock(p):
        fd = os.open(p, os.O_RDWR)
        try:
            data = b""
            while chunk := os.read(fd, 1 << 20):
                data += chunk
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            line = data.count(b"\n", 0, cut) + 1
            if tail:
                os.ftruncate(fd, cut)
                os.fsync(fd)
        finally:
            os.close(fd)
    text = tail[:_PREVIEW].decode("utf-8", "backslashreplace").encode("unicode_escape").decode()
    if len(tail) > _PREVIEW:
        text += "..."
    return Repair(p, line, len(tail), cut, text)


__all__ = ["Repair", "repair_torn_tail"]
