"""Measured metering: cgroup v2 where it can be made, getrusage + /proc otherwise, NVML absent
here (its absence is reported, not faked); the Python metering API writes the usage event."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cheng_build.compute.metering import (
    Billing,
    Meter,
    TreeMeter,
    cgroup2_mount,
    gpu_status,
    gpu_usage,
    metered,
)
from cheng_build.compute.records import Usage
from cheng_build.ledger.log import Ledger, iter_events
from cheng_build.ledger.pricing import Prices

WORK = ("import os\nb = bytearray(48 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
        "s = 0\nfor i in range(3 * 10**6): s += i\n"
        "with open(os.environ['OUT'], 'wb') as f: f.write(b'x' * (1 << 20))\n")


def _child(tmp: Path) -> None:
    subprocess.run([sys.executable, "-c", WORK], env={**os.environ, "OUT": str(tmp / "o")},
                   check=True)


@pytest.mark.parametrize("use_cgroup", [True, False], ids=["cgroup", "rusage"])
def test_tree_meter_measures_a_child(tmp_path: Path, use_cgroup: bool) -> None:
    tm = TreeMeter(use_cgroup=use_cgroup, gpu=False)
    tm.start()
    _child(tmp_path)
    m = tm.stop()
    assert m.cpu_ms > 0
    assert m.mem_bytes >= 48 << 20  # the child touched 48 MiB
    assert m.io_bytes >= 1 << 20  # and wrote 1 MiB
    if use_cgroup and cgroup2_mount() is not None:
        assert m.source.startswith("cgroup2")
    else:
        assert m.source == "rusage"


@pytest.mark.skipif(cgroup2_mount() is None and os.environ.get("CI") != "true",
                    reason="no writable cgroup v2 hierarchy here")
def test_cgroup_and_rusage_agree_on_cpu(tmp_path: Path) -> None:
    """Both sources measure the same child: their CPU figures agree within a factor (not a time
    assertion: the ratio of two measurements of one run)."""
    from cheng_build.compute.metering import Cgroup, rusage_tree

    cg = Cgroup.create()
    assert cg is not None
    before = rusage_tree()[0]
    cg.add(os.getpid())
    try:
        _child(tmp_path)
        via_cgroup = (cg.cpu_usec() or 0) / 1000
    finally:
        cg.close()
    via_rusage = rusage_tree()[0] - before
    assert via_cgroup > 0 and via_rusage > 0
    assert 0.5 < via_cgroup / via_rusage < 2.0


def test_gpu_absent_is_reported_not_faked() -> None:
    st = gpu_status()
    if st.available:  # a GPU machine: NVML answers for real
        assert st.devices and gpu_usage({os.getpid()}) is not None
        return
    assert st.reason  # says why: library missing, no driver, no device
    assert gpu_usage({os.getpid()}) is None


def test_meter_block_writes_usage(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    billing = Billing("pkg://cheng/fs", "node:alice", "node:exec-1",
                      Prices(cpu_ms=1000, mem_gb=10**8, royalty_rate=12 * 10**7), "train", 3)
    with metered("job-1", billing, ledger=ledger) as m:
        b = bytearray(40 << 20)
        for i in range(0, len(b), 4096):
            b[i] = 1
        (tmp_path / "f").write_bytes(b"y" * 300_000)
        m.add_gpu(175000)
        m.add_gpu_mem(16106127360)
        m.add_mem(1000)
    assert m.measured is not None and m.usage is not None
    assert m.measured.mem_bytes >= 40 << 20 and m.measured.io_bytes >= 300_000
    assert m.measured.gpu_ms == 175000 and m.measured.gpu_mem_bytes == 16106127360
    (ev,) = list(iter_events(tmp_path / "ledger.jsonl"))
    u = Usage.from_event(ev)
    assert u == m.usage and u.workload_kind == "train" and u.source == "python"
    assert u.royalty + u.treasury + u.executor == u.total > 0


def test_meter_decorator_and_no_write_on_error(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")

    @Meter.decorate("job-2", Billing(executor_id="e"), ledger=ledger)
    def work(n: int) -> int:
        return sum(range(n))

    assert work(1000) == sum(range(1000))
    assert work(10) == 45
    with pytest.raises(ZeroDivisionError), Meter("job-3", ledger=ledger):
        1 / 0  # noqa: B018
    assert [e["task_id"] for e in iter_events(tmp_path / "l.jsonl")] == ["job-2", "job-2"]


class _FakeNvml:
    """A stand-in for NVIDIA's ``pynvml`` (no GPU on this machine): two devices, accounting on
    one, per-pid stats, so the code that reads NVML runs; the real one runs on a GPU machine."""

    NVML_FEATURE_ENABLED = 1

    class Stats:
        def __init__(self, ms: int, mem: int) -> None:
            self.time = ms
            self.maxMemoryUsage = mem

    def __init__(self, pids: dict[int, tuple[int, int]]) -> None:
        self.pids = pids
        self.mode = {0: 0, 1: 1}
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H100" if h == 0 else b"NVIDIA A10G"

    def nvmlDeviceGetAccountingMode(self, h: int) -> int:
        return self.mode[h]

    def nvmlDeviceSetAccountingMode(self, h: int, mode: int) -> None:
        self.mode[h] = mode

    def nvmlDeviceGetAccountingPids(self, h: int) -> list[int]:
        return list(self.pids) if h == 0 else [999999]

    def nvmlDeviceGetAccountingStats(self, h: int, pid: int) -> Stats:
        ms, mem = self.pids[pid]
        return self.Stats(ms, mem)


def test_nvml_accounting_path_with_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeNvml({4242: (1500, 2 << 30), 4343: (500, 3 << 30), 777: (9999, 9 << 30)})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    st = gpu_status()
    assert st.available and st.accounting and st.devices == ("NVIDIA H100", "NVIDIA A10G")
    assert fake.mode[0] == fake.NVML_FEATURE_ENABLED  # accounting turned on where it was off
    # Only the pids of the metered tree count (777 is someone else's process).
    assert gpu_usage({4242, 4343, 1}) == (2000, 3 << 30, 1, "NVIDIA H100")
    assert fake.calls.count("init") == fake.calls.count("shutdown")
    with Meter("job-gpu", gpu=True) as m:
        pass
    assert m.measured is not None and m.measured.gpu_ms == 0  # this process used no GPU
    fake.pids[os.getpid()] = (120, 1 << 30)
    with Meter("job-gpu", gpu=True) as m:
        pass
    assert m.measured is not None and (m.measured.gpu_ms, m.measured.gpu_type) == (120, "NVIDIA H100")
    assert m.measured.source == "python+nvml"


def test_pid_watcher_sees_the_tree(tmp_path: Path) -> None:
    from cheng_build.compute.metering import PidWatcher

    with PidWatcher(os.getpid(), interval=0.02) as w:
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
        p.wait()
    assert p.pid in w.seen
