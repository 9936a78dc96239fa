"""Reading a task's log files without letting the task choose what is read.

A task can write its own directory, so it can replace ``stderr.log`` by a symbolic link to
``~/.ssh/id_ed25519`` (or a hard link, a FIFO that blocks the reader forever, a device). The
engine, ``cis debt``, ``cis status`` and the web view run outside the sandbox and would follow
it. So every reader goes through :func:`read_tail`, which opens the task directory and then the
log with ``O_NOFOLLOW`` (a link in either place is refused), without blocking (a FIFO cannot
hang it), and reads only a regular file with a single link.

What this does not cover: a task that is not sandboxed (``unsandboxed`` mode, or
``isolation = "none"``) can read the user's files itself, so there is nothing for it to gain.
"""

from __future__ import annotations

import errno
import os
import stat

LOG_NAMES = ("stdout.log", "stderr.log", "output.log")


class LogRefusedError(Exception):
    """The log is not a plain file the engine wrote (a link, a FIFO, ...): it is not read."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_tail(task_dir: str, name: str, limit: int) -> bytes:
    """The last ``limit`` bytes of ``<task_dir>/<name>``.

    Raises:
        FileNotFoundError: there is no such log (the task never started).
        LogRefusedError: the task directory or the log is a link or not a regular file.
        OSError: it cannot be read.
    """
    if name not in LOG_NAMES:
        raise LogRefusedError(f"{name} is not a task log")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dfd = os.open(task_dir, flags | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LogRefusedError(f"task directory {task_dir} is a link, not the engine's "
                                  "directory") from None
        raise
    try:
        try:
            fd = os.open(name, flags | os.O_NONBLOCK, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LogRefusedError(f"{name} is a symbolic link (replaced by the task)") from None
            raise
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LogRefusedError(f"{name} is {_kind(st.st_mode)} (replaced by the task)")
        if st.st_nlink != 1:
            raise LogRefusedError(f"{name} has {st.st_nlink} hard links (the task linked "
                                  "another file to it)")
        start = max(0, st.st_size - limit)
        return os.pread(fd, limit, start)
    finally:
        os.close(fd)


def tail_lines(task_dir: str, name: str, lines: int = 5, limit: int = 4096) -> list[str]:
    """The last ``lines`` non-empty lines of a log, for a failure's "why"; a refused log gives
    one line saying why it was not read, a missing one nothing."""
    try:
        data = read_tail(task_dir, name, limit).decode("utf-8", "replace")
    except LogRefusedError as exc:
        return [f"log not read: {exc}"]
    except OSError:
        return []
    return [ln for ln in data.splitlines() if ln.strip()][-lines:]
