"""The first program inside a ``namespaces`` sandbox: finish the sandbox, then become the task.

``unshare -U -r -m -p -f --mount-proc [-n]`` gives the task its own user, mount, pid (with a
fresh ``/proc``) and network namespaces, but leaves three gaps that this program closes before
it ``exec``s the task's argv:

* a new network namespace has its loopback *down*, so a task cannot reach a server it started
  itself on 127.0.0.1 (bubblewrap's ``--unshare-net`` brings ``lo`` up). ``--lo`` sets
  ``IFF_UP`` on ``lo`` with the ``SIOCSIFFLAGS`` ioctl: no ``ip`` binary needed, and the
  namespace still has no other interface, so no route out;
* the task is root in its user namespace, which maps to the engine's uid; when the engine runs
  as root, root-owned files such as ``/sys/fs/cgroup/pids/cgroup.procs`` are writable to it, and
  a task could move itself out of its pids cgroup. ``--cover DIR`` mounts an empty read-only
  tmpfs over each such directory (in the task's private mount namespace only);
* a task holding ``CAP_SYS_ADMIN`` in its namespaces could unmount that cover again. So all
  capabilities are dropped for good (bounding set emptied, ``SECBIT_NOROOT`` locked, so uid 0
  regains none on ``exec``, and ``no_new_privs``), as bubblewrap's ``--cap-drop ALL`` does.

It runs as ``python -I -S nsinit.py [--lo] [--cover DIR]... -- argv...`` and imports only the
standard library (it must not import cheng_build: that would cost start-up time per task).
Exit status 125 means a sandbox step failed (so the sandbox probe fails and the engine falls
back honestly); 127 means the task's program could not be executed.
"""

from __future__ import annotations

import _socket  # the C module: ``socket`` would import enum/selectors, tens of ms per task
import ctypes  # always needed (cover + capabilities)
import fcntl
import os
import struct
import sys

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_IFREQ = "16sH22x"  # struct ifreq: name[16] + short flags, padded to 40 bytes

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# SECBIT_NOROOT | _LOCKED | SECBIT_NO_SETUID_FIXUP | _LOCKED | SECBIT_KEEP_CAPS_LOCKED
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20
_EXIT_SETUP = 125
_EXIT_EXEC = 127


class SetupError(Exception):
    """A sandbox step failed; the task must not start half-sandboxed."""


def loopback_up() -> None:
    """Set ``IFF_UP`` on ``lo`` of the current network namespace."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        raw = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0))
        flags = struct.unpack(_IFREQ, raw)[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS,
                    struct.pack(_IFREQ, b"lo", flags | _IFF_UP | _IFF_RUNNING))
    except OSError as exc:
        raise SetupError(f"bringing up lo: {exc.strerror}") from None
    finally:
        s.close()


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _errno() -> str:
    return os.strerror(ctypes.get_errno())


def cover(libc: ctypes.CDLL, path: str) -> None:
    """Mount an empty read-only tmpfs over ``path`` (when it is a directory)."""
    if not os.path.isdir(path):
        return
    flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc.mount(b"cis-cover", os.fsencode(path), b"tmpfs", flags, b"mode=0555") != 0:
        raise SetupError(f"covering {path}: {_errno()}")


def drop_capabilities(libc: ctypes.CDLL) -> None:
    """No capability now or after ``exec``, even as uid 0 of the user namespace."""
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0) != 0:
        raise SetupError(f"locking securebits: {_errno()}")
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel knows
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SetupError(f"setting no_new_privs: {_errno()}")


def parse(argv: list[str]) -> tuple[bool, list[str], list[str]]:
    """``[--lo] [--cover DIR]... -- prog args...`` -> (lo, covers, task argv)."""
    lo, covers = False, []
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--lo":
            lo = True
        elif argv[i] == "--cover" and i + 1 < len(argv):
            i += 1
            covers.append(argv[i])
        else:
            raise SetupError(f"unknown argument {argv[i]!r}")
        i += 1
    task = argv[i + 1:]
    if not task:
        raise SetupError("no task argv after --")
    return lo, covers, task


def main(argv: list[str]) -> int:
    try:
        lo, covers, task = parse(argv)
        if lo:
            loopback_up()
        libc = _libc()
        for path in covers:
            cover(libc, path)
        drop_capabilities(libc)
    except SetupError as exc:
        print(f"cis sandbox (namespaces): {exc}", file=sys.stderr)
        return _EXIT_SETUP
    try:
        os.execv(task[0], task)
    except OSError as exc:
        print(f"cis sandbox (namespaces): cannot run {task[0]}: {exc.strerror}", file=sys.stderr)
    return _EXIT_EXEC


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
