"""The price of a usage (compute events, metered builds): the original's float formula (compat)
and integer nano units (default). It sits with the ledger, below compute and build, because both
price what they write to it.

Original (reference section 1.4, IEEE doubles evaluated left to right)::

    cpu   = cpu_ms * price_cpu_ms
    mem   = (mem_bytes / GiB) * price_mem_gb          # GB, no time factor
    io    = (io_bytes / GiB) * price_io_gb
    gpu   = (gpu_ms * price_gpu_ms + (gpu_mem_bytes / GiB) * price_gpu_mem_gb) * alpha(workload)
    total = ((cpu + mem) + io) + gpu
    royalty = total * royalty_rate; treasury = total * treasury_rate
    executor = total - royalty - treasury

Default mode computes the same formula in integers, as the ledger stores money
(:mod:`cheng_build.ledger.money`: nano units, rates nano-scaled too, ``0.12`` is ``120_000_000``),
so totals never depend on summation order: each GiB division rounds down per component, ``alpha``
is in basis points (train 13500, infer 8500, other 10000, settlement's ``alpha_map_bps``), the
royalty and treasury round half to even (``mul_rate``), and the executor gets the remainder, so
the parts always add up to the total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cheng_build.ledger.money import NANO, mul_rate

GIB = 1073741824
ALPHA = {"train": 1.35, "infer": 0.85, "other": 1.0}
ALPHA_BPS = {"train": 13500, "infer": 8500, "other": 10000}


def normalize_workload(kind: str) -> str:
    """``train`` / ``infer`` / ``other`` (lower-cased, stripped; anything else is other)."""
    k = kind.strip().lower()
    return k if k in ("train", "infer") else "other"


@dataclass(frozen=True, slots=True)
class Prices:
    """Unit prices and rates in nano units (``price_cpu_ms=1000`` is 0.000001 per ms)."""

    cpu_ms: int = 0
    mem_gb: int = 0
    io_gb: int = 0
    gpu_ms: int = 0
    gpu_mem_gb: int = 0
    royalty_rate: int = 0
    treasury_rate: int = 0


@dataclass(frozen=True, slots=True)
class Split:
    """A total and its parts: author royalty, treasury, executor."""

    total: int
    royalty: int
    treasury: int
    executor: int


@dataclass(frozen=True, slots=True)
class FloatSplit:
    """The original's float split (compat mode)."""

    total: float
    royalty: float
    treasury: float
    executor: float


def compat_cost(cpu_ms: int, mem_bytes: int, io_bytes: int, gpu_ms: int, gpu_mem_bytes: int,
                workload: str, p: Prices) -> FloatSplit:
    """The original's float formula, in its evaluation order (prices given as nano units)."""
    gib = float(GIB)
    f = float(NANO)
    cpu = cpu_ms * (p.cpu_ms / f)
    mem = (mem_bytes / gib) * (p.mem_gb / f)
    io = (io_bytes / gib) * (p.io_gb / f)
    gpu = (gpu_ms * (p.gpu_ms / f) + (gpu_mem_bytes / gib) * (p.gpu_mem_gb / f)) \
        * ALPHA[normalize_workload(workload)]
    total = ((cpu + mem) + io) + gpu
    royalty = total * (p.royalty_rate / f)
    treasury = total * (p.treasury_rate / f)
    return FloatSplit(total, royalty, treasury, total - royalty - treasury)


def nano_cost(cpu_ms: int, mem_bytes: int, io_bytes: int, gpu_ms: int, gpu_mem_bytes: int,
              workload: str, p: Prices) -> Split:
    """The same formula in integer nano units."""
    cpu = cpu_ms * p.cpu_ms
    mem = mem_bytes * p.mem_gb // GIB
    io = io_bytes * p.io_gb // GIB
    gpu = (gpu_ms * p.gpu_ms + gpu_mem_bytes * p.gpu_mem_gb // GIB) \
        * ALPHA_BPS[normalize_workload(workload)] // 10000
    total = cpu + mem + io + gpu
    royalty = mul_rate(total, p.royalty_rate)
    treasury = mul_rate(total, p.treasury_rate)
    return Split(total, royalty, treasury, total - royalty - treasury)


def royalty_shares(royalty: int, packages: Sequence[Mapping[str, object]]) -> list[tuple[str, int]]:
    """A metered build's royalty split among the packages it used (``compute`` events with a
    ``packages`` list): ``(author_id, nano)`` per package in list order, equal shares, the integer
    remainder one nano unit each to the first ones, so the shares add up to ``royalty`` exactly
    and every machine splits the same way."""
    n = len(packages)
    if n == 0:
        return []
    base, rest = divmod(royalty, n)
    return [(str(p.get("author_id", "")), base + (1 if i < rest else 0)) for i, p in enumerate(packages)]
