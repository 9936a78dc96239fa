"""Run one program and capture its output, without :mod:`subprocess` where the platform allows.

Importing :mod:`subprocess` (with :mod:`locale`, :mod:`signal`, :mod:`selectors`) is ~6% of the
instructions of a chengc cache miss. Where ``os.posix_spawn`` and ``os.memfd_create`` exist
(Linux), :func:`run_captured` starts the program with ``posix_spawn`` (a vfork and exec in libc),
its stdin ``/dev/null`` and its stdout and stderr anonymous in-memory files read back once it
exited: no pipes to drain, so no threads or selectors. ``posix_spawn`` has no working-directory
argument before Python 3.13's glibc-only extension, so the spawning thread changes directory
around the call and back, which is why this path is taken only while no other Python thread
runs (a thread resolving a relative path at that moment would see the wrong directory);
otherwise, or off Linux, :mod:`subprocess` runs it as before. Either way the child gets the same
things: the given argv, environment and directory, default SIGPIPE/SIGXFSZ handling, and no
descriptors of ours but 0-2 (those Python opens are non-inheritable, PEP 446; any other, e.g.
one this process was started with, is closed in the child).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def run_captured(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> tuple[int, bytes, bytes]:
    """Run ``argv`` (``argv[0]`` the program, a relative one found from ``cwd``, as subprocess
    does) in ``cwd`` with exactly ``env``; its exit code (negative: the signal that killed it),
    stdout and stderr.

    Raises:
        OSError: it could not be started (FileNotFoundError, PermissionError, ENOEXEC...).
    """
    if "/" in argv[0] and _can_spawn():  # a bare name is looked up on PATH: subprocess does that
        got = _posix_spawn(argv, cwd, env)
        if got is not None:
            return got
    import subprocess

    proc = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _can_spawn() -> bool:
    if not (hasattr(os, "posix_spawn") and hasattr(os, "memfd_create")):
        return False
    threading = sys.modules.get("threading")  # not imported: no thread was started through it
    return threading is None or threading.active_count() == 1


def _posix_spawn(argv: Sequence[str], cwd: str, env: Mapping[str, str]) -> tuple[int, bytes, bytes] | None:
    """The posix_spawn path; None when this process's directory cannot be saved to come back to,
    or its descriptors cannot be listed."""
    try:
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    import signal  # the child's SIGPIPE/SIGXFSZ back to default, as subprocess's restore_signals

    fds: list[int] = []
    try:
        fds.append(os.memfd_create("chengc-stdout", os.MFD_CLOEXEC))
        fds.append(os.memfd_create("chengc-stderr", os.MFD_CLOEXEC))
        inherited = _inheritable_fds()
        if inherited is None:
            return None
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fds[0], 1), (os.POSIX_SPAWN_DUP2, fds[1], 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited]
        os.chdir(cwd)
        try:
            pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
        finally:
            os.fchdir(here)
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # interrupted (Ctrl-C): do not leave the compiler running
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        return os.waitstatus_to_exitcode(status), _read_all(fds[0]), _read_all(fds[1])
    finally:
        for fd in (*fds, here):
            os.close(fd)


def _inheritable_fds() -> list[int] | None:
    """Descriptors above 2 the child would inherit (subprocess's close_fds closes them: one this
    process was itself started with, or one a library made inheritable); None without /proc."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    out = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    out.append(fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
    return out


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts: list[bytes] = []
    got = 0
    while got < size:  # one pread returns at most ~2 GiB
        part = os.pread(fd, size - got, got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


__all__ = ["run_captured"]
