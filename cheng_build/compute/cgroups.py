"""cgroup v2 for metering: a fresh cgroup per execution, its CPU, memory and IO figures.

Every process an execution starts inherits its cgroup, so nothing escapes the meter by forking.
``cpu.stat`` (``usage_usec``) exists in every v2 cgroup; ``memory.peak`` and ``io.stat`` only where
those controllers are enabled (a hybrid hierarchy, as on this machine, has neither).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 (unified) hierarchy is mounted writable for us, or None."""
    try:
        with open("/proc/self/mountinfo") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(" - ")
        if len(parts) != 2 or not parts[1].startswith("cgroup2 "):
            continue
        mount = Path(parts[0].split()[4])
        if os.access(mount, os.W_OK):
            return mount
    return None


_SEQ = [0]


class Cgroup:
    """A cgroup v2 directory holding one execution's processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, mount: Path | None = None) -> Cgroup | None:
        """A fresh ``cheng-compute-<pid>-<n>`` cgroup, or None where none can be made."""
        mount = mount or cgroup2_mount()
        if mount is None:
            return None
        _SEQ[0] += 1
        path = mount / f"cheng-compute-{os.getpid()}-{_SEQ[0]}-{time.monotonic_ns() % 10**6}"
        try:
            path.mkdir()
        except OSError:
            return None
        return cls(path)

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so all it starts from now on) into this cgroup.

        Raises:
            OSError: the kernel refused (another delegation, a dead pid).
        """
        with open(self.path / "cgroup.procs", "w") as fh:
            fh.write(str(pid))

    def pids(self) -> set[int]:
        try:
            return {int(x) for x in (self.path / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            return set()

    def _kv(self, name: str) -> dict[str, int] | None:
        try:
            text = (self.path / name).read_text()
        except OSError:
            return None
        out: dict[str, int] = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[k] = int(v)
        return out

    def cpu_usec(self) -> int | None:
        stat = self._kv("cpu.stat")
        return stat.get("usage_usec") if stat else None

    def memory_peak(self) -> int | None:
        try:
            return int((self.path / "memory.peak").read_text())
        except (OSError, ValueError):
            return None

    def io_wbytes(self) -> int | None:
        try:
            text = (self.path / "io.stat").read_text()
        except OSError:
            return None
        total = 0
        for line in text.splitlines():
            for item in line.split()[1:]:
                k, _, v = item.partition("=")
                if k == "wbytes":
                    total += int(v)
        return total

    def close(self) -> None:
        """Remove the cgroup (its processes have exited; move ourselves out first)."""
        if os.getpid() in self.pids():
            with contextlib.suppress(OSError):
                (self.path.parent / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)


def sweep_stale_cgroups(mount: Path | None = None, *, wait_s: float = 0.0) -> int:
    """Remove empty ``cheng-compute-<pid>-*`` cgroups whose creating process is gone (a runner
    killed on timeout cannot remove its own); returns how many were removed. With ``wait_s``,
    retry for that long while one still holds processes (a killed runner's tasks take a moment
    to die after it)."""
    mount = mount or cgroup2_mount()
    if mount is None:
        return 0
    deadline = time.monotonic() + wait_s
    removed = _sweep_once(mount)
    while _stale(mount) and time.monotonic() < deadline:
        time.sleep(0.05)
        removed += _sweep_once(mount)
    return removed


def _stale(mount: Path) -> list[str]:
    try:
        names = os.listdir(mount)
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith("cheng-compute-"):
            try:
                pid = int(name.split("-")[2])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                out.append(name)
    return out


def _sweep_once(mount: Path) -> int:
    removed = 0
    for name in _stale(mount):
        try:
            (mount / name).rmdir()
            removed += 1
        except OSError:
            continue  # still holds processes: left for a later sweep
    return removed


