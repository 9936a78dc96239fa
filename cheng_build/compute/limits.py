"""Limits on untrusted input, in one place: usage figures, request sizes, executor waits.

A usage beyond these is absurd (a typo or an attack on someone's bill), not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from cheng_build.core.errors import IntegrityError


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit the compute layer applies to data it did not produce."""

    max_cpu_ms: int = 10**12  # ~31 years of one core
    max_mem_bytes: int = 1 << 50  # 1 PiB
    max_io_bytes: int = 1 << 56
    max_gpu_ms: int = 10**12
    max_gpu_mem_bytes: int = 1 << 44  # 16 TiB
    max_gpu_count: int = 1024
    max_message_bytes: int = 1 << 20  # one request or reply frame on the wire
    max_input_bytes: int = 1 << 30  # code and input an executor fetches for one request
    max_timeout_s: int = 24 * 3600
    max_text: int = 4096  # ids, CIDs, reasons, notes


DEFAULT_LIMITS = Limits()


class AbsurdUsageError(IntegrityError):
    """A usage figure is negative or beyond any real task (exit 1: the bill fails a check)."""


def check_usage_figures(cpu_ms: int, mem_bytes: int, io_bytes: int, gpu_ms: int,
                        gpu_mem_bytes: int, gpu_count: int, limits: Limits = DEFAULT_LIMITS,
                        *, what: str = "usage") -> None:
    """Refuse negative or absurd usage figures.

    Raises:
        AbsurdUsageError: a figure is negative or beyond its limit (names it).
    """
    for name, value, cap in (("cpu_ms", cpu_ms, limits.max_cpu_ms),
                             ("mem_bytes", mem_bytes, limits.max_mem_bytes),
                             ("io_bytes", io_bytes, limits.max_io_bytes),
                             ("gpu_ms", gpu_ms, limits.max_gpu_ms),
                             ("gpu_mem_bytes", gpu_mem_bytes, limits.max_gpu_mem_bytes),
                             ("gpu_count", gpu_count, limits.max_gpu_count)):
        if value < 0:
            raise AbsurdUsageError(f"{what}: {name} is negative ({value})",
                             why="usage is an amount consumed; it cannot be below 0")
        if value > cap:
            raise AbsurdUsageError(f"{what}: {name} {value} is absurd (limit {cap})",
                             why="no single task uses this much; it is a typo or a forged bill")
