"""Up-front checks of the paths a user names on the command line, before any work starts.

The library layers report what they meet (``[Errno 21] Is a directory: '.x.tmp'``); at the CLI we
know which *flag* named the path, so we can say ``--out: adir is a directory`` and how to fix it,
and refuse a FIFO or a device before a read blocks forever. Every failure is a usage error (exit 2).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cheng_build.core.errors import InputError, UsageError

# Fits the registry's integers (epochs, lines, TTLs) into a signed 64-bit field, which is what
# every other reader of registry.jsonl (the existing Cheng tooling, JSON parsers in C/Go) can hold.
MAX_INT64 = 2**63 - 1


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def input_file(path: str | os.PathLike[str], flag: str, *, optional: bool = False) -> Path | None:
    """Check that ``path`` (named by ``flag``) is an existing regular file (symlinks followed).

    Args:
        path: the path as the user wrote it.
        flag: how the user named it (``--lock``), for the message.
        optional: a missing file is fine (returns None); only a wrong kind of file is refused.

    Raises:
        InputError: missing (unless ``optional``), a dangling symlink, a directory, FIFO or device.
    """
    p, st = _stat_input(path, flag, "file", optional=optional)
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{flag}: {p} is {_kind(st.st_mode)}",
                         how=f"pass {flag}:<a regular file>")
    return p


def input_dir(path: str | os.PathLike[str], flag: str, *, optional: bool = False) -> Path | None:
    """Check that ``path`` is an existing directory (or missing, when ``optional``).

    Raises:
        InputError: missing (unless ``optional``), or something other than a directory.
    """
    p, st = _stat_input(path, flag, "directory", optional=optional)
    if st is None:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{flag}: {p} is not a directory",
                         how=f"pass {flag}:<a directory>")
    return p


def _stat_input(path: str | os.PathLike[str], flag: str, kind: str, *,
                optional: bool) -> tuple[Path, os.stat_result | None]:
    """Stat an input path; ``None`` for a missing optional one. Errors name the flag."""
    p = Path(path)
    try:
        return p, p.stat()
    except FileNotFoundError:
        if os.path.lexists(p):
            raise InputError(f"{flag}: {p} is a dangling symlink",
                             why=f"it points to {os.readlink(p)}, which does not exist",
                             how=f"fix the link or pass {flag}:<existing {kind}>") from None
        if optional:
            return p, None
        raise InputError(f"{flag}: {p} not found", how=f"pass {flag}:<existing {kind}>") from None
    except OSError as exc:
        raise InputError(f"{flag}: cannot read {p}", why=exc.strerror or str(exc)) from None


def output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that a file can be written at ``path``: not a directory, its parent not a file.

    Raises:
        UsageError: ``path`` is a directory or a non-regular file, or a parent is not a directory.
    """
    p = Path(path)
    if str(path) == "":
        raise UsageError(f"{flag}: empty path", how=f"pass {flag}:<file>")
    try:
        st = p.stat()
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{flag}: {p} is {_kind(st.st_mode)}",
                         how=f"name a file to write, e.g. {flag}:{p / 'out'}"
                         if stat.S_ISDIR(st.st_mode) else f"name a regular file with {flag}:")
    for parent in p.absolute().parents:
        try:
            pst = parent.stat()
        except OSError:
            continue  # missing parents are created
        if not stat.S_ISDIR(pst.st_mode):
            raise UsageError(f"{flag}: cannot write {p}",
                             why=f"{parent} is a file, not a directory",
                             how=f"pick another {flag}: path")
        break
    return p


__all__ = ["MAX_INT64", "input_dir", "input_file", "output_file"]
