"""The price of a usage: the original's float formula (compat) and integer nano units (default).

Original (reference section 1.4, IEEE doubles evaluated left to right)::

    cpu   = cpu_ms * price_cpu_ms
    mem   = (mem_bytes / GiB) * price_mem_gb          # GB, no time factor
    io    = (io_bytes / GiB) * price_io_gb
    gpu   = (gpu_ms * price_gpu_ms + (gpu_mem_bytes / GiB) * price_gpu_mem_gb) * alpha(workload)
    total = ((cpu + mem) + io) + gpu
    royalty = total * royalty_rate; treasury = total * treasury_rate
    executor = total - royalty - treasury

Default mode keeps the same formula in integers, so totals do not depend on summation order:
prices are nano units (1e-9) per unit, rates parts per million, ``alpha`` basis points (train
13500, infer 8500, other 10000, as settlement's ``alpha_map_bps``); every division rounds down,
per component, and the executor gets the remainder, so the parts always add up to the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

GIB = 1073741824
NANO = 1_000_000_000
PPM = 1_000_000
ALPHA = {"train": 1.35, "infer": 0.85, "other": 1.0}
ALPHA_BPS = {"train": 13500, "infer": 8500, "other": 10000}
# A price or amount beyond this many nano units (1e18 = a billion whole units) is absurd.
MAX_NANO = 10**18


class MoneyError(ValueError):
    """A price or rate text is not a usable decimal."""


def normalize_workload(kind: str) -> str:
    """``train`` / ``infer`` / ``other`` (lower-cased, stripped; anything else is other)."""
    k = kind.strip().lower()
    return k if k in ("train", "infer") else "other"


@dataclass(frozen=True, slots=True)
class Prices:
    """Unit prices as the original wrote them (floats) and as nano units."""

    cpu_ms: float = 0.0
    mem_gb: float = 0.0
    io_gb: float = 0.0
    gpu_ms: float = 0.0
    gpu_mem_gb: float = 0.0
    royalty_rate: float = 0.0
    treasury_rate: float = 0.0

    def nano(self) -> tuple[int, int, int, int, int]:
        """The five unit prices in nano units (exact for decimals written with <= 9 places)."""
        return (to_nano(self.cpu_ms), to_nano(self.mem_gb), to_nano(self.io_gb),
                to_nano(self.gpu_ms), to_nano(self.gpu_mem_gb))

    def ppm(self) -> tuple[int, int]:
        """Royalty and treasury rates in parts per million."""
        return to_ppm(self.royalty_rate), to_ppm(self.treasury_rate)


@dataclass(frozen=True, slots=True)
class Split:
    """A total and its parts: author royalty, treasury, executor."""

    total: float | int
    royalty: float | int
    treasury: float | int
    executor: float | int


def _decimal(text: str | float | int, what: str) -> Decimal:
    try:
        d = Decimal(str(text).strip())
    except InvalidOperation:
        raise MoneyError(f"{what} {str(text)[:40]!r} is not a number") from None
    if not d.is_finite():
        raise MoneyError(f"{what} {text!r} is not finite")
    if d < 0:
        raise MoneyError(f"{what} {text!r} is negative")
    return d


def to_nano(value: str | float | int, what: str = "price") -> int:
    """A non-negative decimal (``0.000001``, ``2e-5``) in nano units, rounded down.

    Raises:
        MoneyError: not a number, negative, infinite, or absurdly large.
    """
    n = int(_decimal(value, what) * NANO)
    if n > MAX_NANO:
        raise MoneyError(f"{what} {value!r} is absurdly large")
    return n


def to_ppm(value: str | float | int, what: str = "rate") -> int:
    """A rate in [0, 1] in parts per million, rounded down.

    Raises:
        MoneyError: not a number, negative, or above 1.
    """
    d = _decimal(value, what)
    if d > 1:
        raise MoneyError(f"{what} {value!r} is above 1")
    return int(d * PPM)


def compat_cost(cpu_ms: int, mem_bytes: int, io_bytes: int, gpu_ms: int, gpu_mem_bytes: int,
                workload: str, p: Prices) -> Split:
    """The original's float formula, in its evaluation order."""
    gib = float(GIB)
    cpu = cpu_ms * p.cpu_ms
    mem = (mem_bytes / gib) * p.mem_gb
    io = (io_bytes / gib) * p.io_gb
    gpu = (gpu_ms * p.gpu_ms + (gpu_mem_bytes / gib) * p.gpu_mem_gb) * ALPHA[normalize_workload(workload)]
    total = ((cpu + mem) + io) + gpu
    royalty = total * p.royalty_rate
    treasury = total * p.treasury_rate
    return Split(total, royalty, treasury, total - royalty - treasury)


def nano_cost(cpu_ms: int, mem_bytes: int, io_bytes: int, gpu_ms: int, gpu_mem_bytes: int,
              workload: str, prices_nano: tuple[int, int, int, int, int],
              rates_ppm: tuple[int, int]) -> Split:
    """The same formula in integers (nano units), each division rounding down."""
    p_cpu, p_mem, p_io, p_gpu, p_gmem = prices_nano
    cpu = cpu_ms * p_cpu
    mem = mem_bytes * p_mem // GIB
    io = io_bytes * p_io // GIB
    gpu = (gpu_ms * p_gpu + gpu_mem_bytes * p_gmem // GIB) * ALPHA_BPS[normalize_workload(workload)] // 10000
    total = cpu + mem + io + gpu
    royalty = total * rates_ppm[0] // PPM
    treasury = total * rates_ppm[1] // PPM
    return Split(total, royalty, treasury, total - royalty - treasury)


def nano_to_float(n: int) -> float:
    """Nano units as the float the original's readers expect."""
    return n / NANO
