"""What this machine can run: CUDA devices, a CUDA toolkit, Metal, CPU features.

Tasks of a sketch declare the capabilities they need (``cuda`` to run on an NVIDIA GPU,
``cuda-toolkit`` to compile CUDA code, ``metal`` for Apple GPUs, ``cpu`` always); a task whose
capability is absent is Skipped with the reason recorded here.

- ``cuda``: NVML through ``pynvml`` (the NVIDIA driver's management library): device count, and
  per device its name, compute capability, memory and the driver version. No driver, no library
  or no device: absent, with NVML's own error as the reason.
- ``cuda-toolkit``: ``nvcc`` on ``PATH`` (or under ``$CUDA_HOME/bin``).
- ``metal``: macOS only, ``system_profiler SPDisplaysDataType -json`` lists a GPU with Metal
  support (``spdisplays_mtlgpufamilysupport`` or ``sppci_metal``).
- ``cpu``: always; the detail is the CPU model, core count and the SIMD features that matter
  for kernels (``/proc/cpuinfo`` flags on Linux, ``sysctl`` on macOS).

Detection is quick (NVML fails fast without a driver; system_profiler is bounded by a timeout),
because ``cis run "<sketch>"`` must start its first task within a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field

_SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "neon", "asimd", "sve")
PROFILER_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One CUDA device as NVML reports it."""

    index: int
    name: str
    compute_capability: str  # "9.0"
    memory_mib: int


@dataclass(frozen=True, slots=True)
class Capability:
    """Whether one capability is here; ``detail`` when it is, ``reason`` when it is not."""

    name: str
    present: bool
    detail: str = ""
    reason: str = ""
    devices: tuple[GpuDevice, ...] = ()
    driver: str = ""

    def line(self) -> str:
        """``cuda: absent (NVML Shared Library Not Found)`` / ``cpu: present (...)``."""
        return (f"{self.name}: present ({self.detail})" if self.present
                else f"{self.name}: absent ({self.reason})")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Everything detected, by name."""

    items: dict[str, Capability] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        cap = self.items.get(name)
        return cap is not None and cap.present

    def why_not(self, name: str) -> str:
        cap = self.items.get(name)
        return "unknown capability" if cap is None else cap.reason

    def lines(self) -> list[str]:
        return [c.line() for c in self.items.values()]


def detect_cuda() -> Capability:
    """NVIDIA GPUs through NVML (pynvml)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pynvml's own deprecation notice, not ours to show
            import pynvml
    except ImportError as exc:
        return Capability("cuda", False, reason=f"pynvml is not installed ({exc})")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return Capability("cuda", False, reason=f"NVML could not start: {exc} (no NVIDIA driver)")
    except OSError as exc:
        return Capability("cuda", False, reason=f"NVML could not start: {exc}")
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        devices = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total // (1024 * 1024)
            devices.append(GpuDevice(i, name, f"{major}.{minor}", int(mem)))
    except pynvml.NVMLError as exc:
        return Capability("cuda", False, reason=f"NVML query failed: {exc}")
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    if not devices:
        return Capability("cuda", False, reason=f"driver {driver} reports no CUDA device",
                          driver=driver)
    detail = "; ".join(f"{d.index}: {d.name}, sm {d.compute_capability}, {d.memory_mib} MiB"
                       for d in devices)
    return Capability("cuda", True, detail=f"{len(devices)} device(s): {detail}; driver {driver}",
                      devices=tuple(devices), driver=driver)


def detect_cuda_toolkit(path: str | None = None) -> Capability:
    """``nvcc`` on PATH (or ``$CUDA_HOME/bin``)."""
    search = path if path is not None else os.environ.get("PATH", "")
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home:
        search = os.pathsep.join([search, os.path.join(home, "bin")])
    nvcc = shutil.which("nvcc", path=search)
    if nvcc is None:
        return Capability("cuda-toolkit", False, reason="nvcc not found on PATH (nor $CUDA_HOME/bin)")
    return Capability("cuda-toolkit", True, detail=f"nvcc at {nvcc}")


def detect_metal(system: str | None = None) -> Capability:
    """Apple Metal through ``system_profiler`` (macOS only)."""
    system = system or platform.system()
    if system != "Darwin":
        return Capability("metal", False, reason=f"Metal exists only on macOS (this is {system})")
    prof = shutil.which("system_profiler")
    if prof is None:
        return Capability("metal", False, reason="system_profiler not found")
    try:
        out = subprocess.run([prof, "SPDisplaysDataType", "-json"], capture_output=True, text=True,
                             timeout=PROFILER_TIMEOUT_S, check=False).stdout
        gpus = json.loads(out).get("SPDisplaysDataType", [])
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return Capability("metal", False, reason=f"system_profiler failed: {exc}")
    return metal_from_profile(gpus)


def metal_from_profile(gpus: list[dict[str, object]]) -> Capability:
    """The ``metal`` capability from system_profiler's ``SPDisplaysDataType`` entries."""
    found = []
    for g in gpus:
        family = g.get("spdisplays_mtlgpufamilysupport") or g.get("sppci_metal")
        if family:
            found.append(f"{g.get('sppci_model') or g.get('_name') or 'GPU'} ({family})")
    if not found:
        return Capability("metal", False, reason="no GPU with Metal support listed by system_profiler")
    return Capability("metal", True, detail="; ".join(found))


def detect_cpu(cpuinfo: str | None = None) -> Capability:
    """The CPU: model, cores, SIMD features (always present)."""
    model = platform.processor() or platform.machine()
    feats: list[str] = []
    if cpuinfo is None and os.path.exists("/proc/cpuinfo"):
        with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8",
                                                errors="replace") as fh:
            cpuinfo = fh.read(65536)
    if cpuinfo:
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "cpu model") and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not feats:
                have = set(value.split())
                feats = [f for f in _SIMD if f in have]
    elif platform.system() == "Darwin":
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                   text=True, timeout=2, check=False).stdout.strip() or model
        if platform.machine() == "arm64":
            feats = ["neon"]
    detail = f"{model}, {os.cpu_count() or 1} cores" + (f", {' '.join(feats)}" if feats else "")
    return Capability("cpu", True, detail=detail)


def detect(names: tuple[str, ...] = ("cpu", "cuda", "cuda-toolkit", "metal")) -> Capabilities:
    """Detect the named capabilities (all by default)."""
    probes = {"cpu": detect_cpu, "cuda": detect_cuda, "cuda-toolkit": detect_cuda_toolkit,
              "metal": detect_metal}
    return Capabilities({n: probes[n]() for n in names if n in probes})


__all__ = ["Capabilities", "Capability", "GpuDevice", "detect", "detect_cpu", "detect_cuda",
           "detect_cuda_toolkit", "detect_metal", "metal_from_profile"]
