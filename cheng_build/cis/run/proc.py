"""A task's process as the engine sees it: the record of a running one, whether a pid still
names the process an engine started (boot-time ticks, so pid reuse is caught), its log files,
and what its logs say the sandbox denied.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Proc:
    """A task process the engine is waiting for."""

    idx: int
    popen: subprocess.Popen[bytes]
    pidfd: int
    started: float
    deadline: float | None
    task_dir: str
    cwd: str
    env: dict[str, str]
    inputs: list[str]
    attempt: int
    reason: str = ""  # why we are stopping it: timeout | amend | cancel | interrupt
    kill_at: float | None = None
    mode: str = ""  # the sandbox it ran in (a failure may be the sandbox's doing)


def proc_start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].split()[19].decode()


_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def boot_ticks() -> int:
    """Now, in the clock ticks ``/proc/<pid>/stat`` gives start times in (boot time)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // _TICK_NS


def is_task_process(pid: int, pid_start: str) -> bool:
    """Is ``pid`` still the process a (dead) engine started, not a later one that reuses the pid?

    ``pid_start`` is ``"<lo>-<hi>"``: the boot-time ticks just before and after the launch, a
    window only that task can have started in (the pid was the engine's child all through it).
    Reading the child's own start time right after the launch instead costs 0.2-0.9 ms per task:
    ``/proc/<pid>/stat`` waits while the child is still exec'ing. An exact value (written by
    earlier versions) must match exactly.
    """
    st = proc_start_time(pid)
    if st is None:
        return False
    lo, sep, hi = pid_start.partition("-")
    if not sep:
        return st == pid_start
    try:
        return int(lo) <= int(st) <= int(hi)
    except ValueError:
        return False


def open_logs(task_dir: str) -> tuple[int, int]:
    """Create (truncate) a task's stdout.log and stderr.log; return both fds.

    ``O_NOFOLLOW``: a link left where a log goes must not make the engine truncate its target.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    out = os.open(os.path.join(task_dir, "stdout.log"), flags, 0o644)
    try:
        return out, os.open(os.path.join(task_dir, "stderr.log"), flags, 0o644)
    except OSError:
        os.close(out)
        raise


def sandbox_denial(p: Proc, network: bool) -> Any:
    """The sandbox denial a failed task's logs show (see :mod:`denials`), or None."""
    if p.mode not in ("bubblewrap", "namespaces"):
        return None
    from cheng_build.cis.run import tasklog
    from cheng_build.cis.sandbox import denials

    lines: list[str] = []
    for name in ("stderr.log", "stdout.log"):
        with contextlib.suppress(OSError, tasklog.LogRefusedError):
            lines += tasklog.read_tail(p.task_dir, name, 16384).decode("utf-8", "replace") \
                .splitlines()
    return denials.explain(lines, mode=p.mode, network=network, home=os.path.expanduser("~"))


__all__ = ["Proc", "boot_ticks", "is_task_process", "open_logs", "proc_start_time", "sandbox_denial"]
