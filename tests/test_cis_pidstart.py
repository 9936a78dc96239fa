"""Recognising a task process left behind by a dead engine (pid_start windows)."""

from __future__ import annotations

import subprocess

from cheng_build.cis.run.proc import boot_ticks as _boot_ticks
from cheng_build.cis.run.proc import is_task_process as _is_task_process
from cheng_build.cis.run.proc import proc_start_time as _proc_start_time


def test_window_around_the_launch_identifies_the_process() -> None:
    lo = _boot_ticks()
    p = subprocess.Popen(["sleep", "30"])
    hi = _boot_ticks()
    try:
        assert _is_task_process(p.pid, f"{lo}-{hi}")
        # A process that started outside the window (a reused pid) is not ours.
        assert not _is_task_process(p.pid, f"{lo - 1000}-{lo - 1}")
        assert not _is_task_process(p.pid, f"{hi + 1}-{hi + 1000}")
        # The exact form earlier versions stored still matches exactly.
        exact = _proc_start_time(p.pid)
        assert exact is not None and _is_task_process(p.pid, exact)
        assert not _is_task_process(p.pid, str(int(exact) + 1))
        assert not _is_task_process(p.pid, "garbage-value")
    finally:
        p.kill()
        p.wait()
    assert not _is_task_process(p.pid, f"{lo}-{hi}")  # gone (reaped)
