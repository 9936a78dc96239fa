"""Measured usage: CPU time, peak memory, bytes written, GPU time and memory.

Metering is measured, never declared. Three sources, best first:

``cgroup2``
    A fresh cgroup v2 directory per execution (under the unified hierarchy, where this process
    may create one). Every process the execution starts inherits it, so nothing escapes by
    forking. ``cpu.stat`` ``usage_usec`` gives the CPU time (always present in a v2 cgroup);
    ``memory.peak`` and ``io.stat`` (``wbytes``) are read when the memory and io controllers are
    enabled there; a figure the cgroup lacks comes from the next source.
``rusage``
    ``getrusage`` of the process and its reaped children (``ru_utime + ru_stime``, the larger
    ``ru_maxrss``) and ``/proc/self/io`` ``wchar`` (bytes passed to write calls, which Linux
    also accumulates from reaped children): what the kernel kept for the process tree.
``nvml``
    GPU time and peak GPU memory per process from NVML's accounting (``pynvml``, NVIDIA's own
    binding), for the processes seen in the tree while it ran (sampled every 100 ms; CUDA start-up
    alone takes longer). Without NVML or a GPU, GPU figures are 0 and :func:`gpu_status` says why.

:class:`Meter` is the Python metering API (the seed's ``withMetering``/``withIoMetering``): a
context manager and decorator that measures a block of Python work the same way (process CPU
time, peak RSS after resetting the high-water mark, bytes written) and, with a ledger, writes the
usage event. Manual ``add_*`` calls add declared amounts, as the seed's ``meterAdd*`` did (memory:
the peak of single amounts).
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

from cheng_build.compute.cgroups import Cgroup, cgroup2_mount, sweep_stale_cgroups
from cheng_build.compute.gpu import GpuStatus, PidWatcher, gpu_status, gpu_usage
from cheng_build.compute.ids import new_id
from cheng_build.compute.records import Usage
from cheng_build.ledger.pricing import Prices, nano_cost, normalize_workload

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Measured:
    """What one execution used, and where each figure came from."""

    cpu_ms: int = 0
    mem_bytes: int = 0
    io_bytes: int = 0
    gpu_ms: int = 0
    gpu_mem_bytes: int = 0
    gpu_count: int = 0
    gpu_type: str = ""
    source: str = ""  # e.g. "cgroup2+rusage", "rusage", "python"; "+nvml" when GPU figures came in

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Measured:
        vals: dict[str, Any] = {}
        for k in cls.__dataclass_fields__:
            v = obj.get(k)
            if k in ("gpu_type", "source"):
                vals[k] = v if isinstance(v, str) else ""
            else:
                vals[k] = v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
        return cls(**vals)


# --- /proc and getrusage -------------------------------------------------------------------


def proc_io(pid: int | str = "self") -> dict[str, int]:
    """``/proc/<pid>/io`` as a dict (empty when unreadable)."""
    try:
        with open(f"/proc/{pid}/io", "rb") as fh:
            out = {}
            for line in fh.read().splitlines():
                k, _, v = line.partition(b":")
                out[k.decode()] = int(v)
            return out
    except (OSError, ValueError):
        return {}


def _ms(ru: resource.struct_rusage) -> float:
    return (ru.ru_utime + ru.ru_stime) * 1000.0


def rusage_tree() -> tuple[float, int]:
    """(CPU ms, peak RSS bytes) of this process plus its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _ms(me) + _ms(ch), max(me.ru_maxrss, ch.ru_maxrss) * 1024


def _vm_hwm() -> int | None:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    """Reset this process's peak-RSS mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


__all__ = ["Billing", "Cgroup", "GpuStatus", "Measured", "Meter", "PidWatcher", "TreeMeter",
           "build_usage", "cgroup2_mount", "gpu_status", "gpu_usage", "metered", "proc_io",
           "rusage_tree", "sweep_stale_cgroups"]


# --- measuring an execution (the runner process measures itself and its tree) ---------------


class TreeMeter:
    """Meters this process and everything it starts, from :meth:`start` to :meth:`stop`.

    Used by the runner (a fresh process per request): with ``use_cgroup`` it moves itself into a
    fresh cgroup first, so every task process inherits it.
    """

    def __init__(self, *, use_cgroup: bool = True, gpu: bool | None = None) -> None:
        self.cgroup = Cgroup.create() if use_cgroup else None
        self._gpu = gpu
        self._watch: PidWatcher | None = None
        self._cpu0 = 0.0
        self._io0 = 0

    def start(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.add(os.getpid())
            except OSError:
                self.cgroup.close()
                self.cgroup = None
        if self._gpu is None:
            self._gpu = gpu_status().available
        if self._gpu:
            self._watch = PidWatcher(os.getpid(), self.cgroup).__enter__()
        self._cpu0 = rusage_tree()[0]
        self._io0 = proc_io().get("wchar", 0)

    def stop(self) -> Measured:
        """Read the figures (call after every child has been reaped).

        Memory without a cgroup ``memory.peak`` is the peak RSS of the largest process the tree
        started (``RUSAGE_CHILDREN``), not this process's own (the engine's) memory.
        """
        cpu_ms, _ = rusage_tree()
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        cpu_ms -= self._cpu0
        io = proc_io().get("wchar", 0) - self._io0
        sources = ["rusage"]
        if self.cgroup is not None:
            usec = self.cgroup.cpu_usec()
            if usec is not None:
                cpu_ms = usec / 1000.0
                sources.insert(0, "cgroup2")
            peak = self.cgroup.memory_peak()
            if peak is not None:
                rss = peak
            wbytes = self.cgroup.io_wbytes()
            if wbytes is not None:
                io = wbytes
            self.cgroup.close()
        m = Measured(cpu_ms=max(0, round(cpu_ms)), mem_bytes=rss, io_bytes=max(0, io),
                     source="+".join(sources))
        if self._watch is not None:
            self._watch.__exit__(None, None, None)
            got = gpu_usage(self._watch.seen | {os.getpid()})
            if got is not None:
                m = replace(m, gpu_ms=got[0], gpu_mem_bytes=got[1], gpu_count=got[2],
                            gpu_type=got[3], source=m.source + "+nvml")
        return m


# --- building the usage event ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Billing:
    """Who a usage is billed for and at what prices (the seed's ``MeteringConfig``)."""

    package_id: str = ""
    author_id: str = ""
    executor_id: str = ""
    prices: Prices = field(default_factory=Prices)
    workload_kind: str = "other"
    epoch: int = 0
    mode: str = ""


def build_usage(m: Measured, task_id: str, b: Billing, *, request_id: str = "",
                start_ts: str | None = None, usage_id: str | None = None) -> Usage:
    """The ``compute`` event of a measurement, priced in nano units."""
    split = nano_cost(m.cpu_ms, m.mem_bytes, m.io_bytes, m.gpu_ms, m.gpu_mem_bytes,
                      b.workload_kind, b.prices)
    p = b.prices
    return Usage(
        usage_id=usage_id or new_id("usage"), task_id=task_id, package_id=b.package_id,
        author_id=b.author_id, executor_id=b.executor_id, cpu_ms=m.cpu_ms, mem_bytes=m.mem_bytes,
        io_bytes=m.io_bytes, gpu_ms=m.gpu_ms, gpu_mem_bytes=m.gpu_mem_bytes, gpu_count=m.gpu_count,
        gpu_type=m.gpu_type, workload_kind=normalize_workload(b.workload_kind),
        price_cpu_ms=p.cpu_ms, price_mem_gb=p.mem_gb, price_io_gb=p.io_gb, price_gpu_ms=p.gpu_ms,
        price_gpu_mem_gb=p.gpu_mem_gb, royalty_rate=p.royalty_rate, treasury_rate=p.treasury_rate,
        epoch=b.epoch, start_ts=start_ts or str(int(time.time())), total=split.total,
        royalty=split.royalty, treasury=split.treasury, executor=split.executor,
        request_id=request_id, source=m.source, mode=b.mode)


# --- the Python metering API -----------------------------------------------------------------


class Meter:
    """Meter a block of Python work; with ``ledger``, write its usage event on exit.

    ::

        with Meter("job-1", billing, ledger=Ledger(path)) as m:
            work()
            m.add_gpu(175000)          # declared amounts, as the seed's meterAdd*
        m.usage                         # the Usage written (None without a ledger)

        @Meter.decorate("job-1", billing, ledger=ledger)
        def work(): ...

    Measured: process CPU time (``RUSAGE_SELF`` + reaped children), peak RSS of the block (the
    kernel's high-water mark is reset on entry where ``/proc/self/clear_refs`` allows, else the
    process's lifetime peak), bytes written (``/proc/self/io`` ``wchar``), and GPU figures of
    this process from NVML when ``gpu=True`` and a GPU is present.
    """

    def __init__(self, task_id: str, billing: Billing | None = None, *, ledger: Any = None,
                 request_id: str = "", gpu: bool = False) -> None:
        self.task_id = task_id
        self.billing = billing or Billing()
        self.ledger = ledger
        self.request_id = request_id
        self.gpu = gpu
        self.measured: Measured | None = None
        self.usage: Usage | None = None
        self._extra = {"cpu": 0, "io": 0, "gpu": 0}
        self._mem_peak = 0
        self._gpu_mem_peak = 0
        self._gpu_count = 0
        self._start: tuple[float, int, bool, str] = (0.0, 0, False, "")

    def add_cpu(self, ms: int) -> None:
        self._extra["cpu"] += max(0, int(ms))

    def add_io(self, nbytes: int) -> None:
        self._extra["io"] += max(0, int(nbytes))

    def add_gpu(self, ms: int) -> None:
        self._extra["gpu"] += max(0, int(ms))

    def add_mem(self, nbytes: int) -> None:
        """Memory is billed as the peak of single amounts, as the seed's SDK did."""
        self._mem_peak = max(self._mem_peak, int(nbytes))

    def add_gpu_mem(self, nbytes: int) -> None:
        self._gpu_mem_peak = max(self._gpu_mem_peak, int(nbytes))

    def set_gpu_count(self, n: int) -> None:
        self._gpu_count = max(0, int(n))

    def __enter__(self) -> Meter:
        reset = _reset_hwm()
        cpu, _ = rusage_tree()
        self._start = (cpu, proc_io().get("wchar", 0), reset, str(int(time.time())))
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: Any) -> None:
        cpu, rss = rusage_tree()
        cpu0, io0, reset, ts = self._start
        hwm = _vm_hwm() if reset else None
        m = Measured(
            cpu_ms=max(0, round(cpu - cpu0)) + self._extra["cpu"],
            mem_bytes=max(hwm if hwm is not None else rss, self._mem_peak),
            io_bytes=max(0, proc_io().get("wchar", 0) - io0) + self._extra["io"],
            gpu_ms=self._extra["gpu"], gpu_mem_bytes=self._gpu_mem_peak, gpu_count=self._gpu_count,
            source="python")
        if self.gpu:
            got = gpu_usage({os.getpid()})
            if got is not None and got[0]:
                m = replace(m, gpu_ms=m.gpu_ms + got[0], gpu_mem_bytes=max(m.gpu_mem_bytes, got[1]),
                            gpu_count=max(m.gpu_count, got[2]), gpu_type=got[3],
                            source="python+nvml")
        self.measured = m
        if self.ledger is not None and et is None:
            self.usage = build_usage(m, self.task_id, self.billing, request_id=self.request_id,
                                     start_ts=ts)
            self.ledger.append(self.usage.to_event())

    @classmethod
    def decorate(cls, task_id: str, billing: Billing | None = None, **kw: Any
                 ) -> Callable[[Callable[P, T]], Callable[P, T]]:
        """A decorator metering every call of the function (one usage event per call)."""

        def wrap(fn: Callable[P, T]) -> Callable[P, T]:
            @functools.wraps(fn)
            def inner(*args: P.args, **kwargs: P.kwargs) -> T:
                with cls(task_id, billing, **kw):
                    return fn(*args, **kwargs)

            return inner

        return wrap


@contextlib.contextmanager
def metered(task_id: str, billing: Billing | None = None, **kw: Any) -> Iterator[Meter]:
    """``with metered("job-1", billing, ledger=...) as m:`` (the seed's ``withMetering``)."""
    with Meter(task_id, billing, **kw) as m:
        yield m
