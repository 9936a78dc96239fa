"""GPU metering through NVML (``pynvml``, NVIDIA's own binding from ``nvidia-ml-py``).

Accounting mode (enabled here where allowed: it needs root) keeps per-process GPU time and peak
memory; :class:`PidWatcher` collects the pids of the metered process tree while it runs, so only
its processes are counted. Without the library, a driver or a GPU, :func:`gpu_status` says why and
:func:`gpu_usage` returns None: GPU figures are then 0, never invented.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any

from cheng_build.compute.cgroups import Cgroup


@dataclass(frozen=True, slots=True)
class GpuStatus:
    """Whether GPU metering works here, and why not."""

    available: bool
    reason: str
    devices: tuple[str, ...] = ()
    accounting: bool = False


def _nvml() -> Any:
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def gpu_status() -> GpuStatus:
    """Probe NVML once: library, driver, devices, accounting mode (enabled when we may)."""
    try:
        nv = _nvml()
    except ImportError:
        return GpuStatus(False, "pynvml (nvidia-ml-py) is not installed")
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return GpuStatus(False, f"NVML unavailable: {exc}")
    try:
        n = nv.nvmlDeviceGetCount()
        if n == 0:
            return GpuStatus(False, "NVML reports no GPU")
        names = []
        accounting = True
        for i in range(n):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name = nv.nvmlDeviceGetName(h)
            names.append(name.decode() if isinstance(name, bytes) else str(name))
            try:
                if nv.nvmlDeviceGetAccountingMode(h) != nv.NVML_FEATURE_ENABLED:
                    nv.nvmlDeviceSetAccountingMode(h, nv.NVML_FEATURE_ENABLED)
            except Exception:
                accounting = False
        return GpuStatus(True, "ok" if accounting else "accounting mode is off and cannot be "
                         "enabled (needs root)", tuple(names), accounting)
    finally:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()


def gpu_usage(pids: set[int]) -> tuple[int, int, int, str] | None:
    """(gpu_ms, peak gpu_mem_bytes, devices used, gpu type) of ``pids`` from NVML accounting,
    or None when NVML is not usable."""
    try:
        nv = _nvml()
    except Exception:
        return None
    try:
        total_ms = peak = 0
        used: list[str] = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            try:
                acct = set(nv.nvmlDeviceGetAccountingPids(h))
            except Exception:
                continue
            hit = False
            for pid in acct & pids:
                try:
                    st = nv.nvmlDeviceGetAccountingStats(h, pid)
                except Exception:
                    continue
                total_ms += int(st.time)
                peak = max(peak, int(st.maxMemoryUsage or 0))
                hit = True
            if hit:
                name = nv.nvmlDeviceGetName(h)
                used.append(name.decode() if isinstance(name, bytes) else str(name))
        return total_ms, peak, len(used), used[0] if used else ""
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


class PidWatcher:
    """Collects every pid in a process tree (or cgroup) while it runs, every ``interval`` s."""

    def __init__(self, root_pid: int, cgroup: Cgroup | None = None, interval: float = 0.1) -> None:
        self.root = root_pid
        self.cgroup = cgroup
        self.interval = interval
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pid-watcher", daemon=True)

    def _sample(self) -> None:
        if self.cgroup is not None:
            self.seen |= self.cgroup.pids()
            return
        todo = [self.root]
        while todo:
            p = todo.pop()
            kids = _children(p)
            self.seen.update(kids)
            todo.extend(kids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PidWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


