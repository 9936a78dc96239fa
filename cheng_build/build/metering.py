"""Metered builds (``chengc --ledger:<file>``): a compile's measured usage as a ``compute`` event
whose author royalty is shared among the packages the build used.

What is measured: the compiler processes only (``getrusage(RUSAGE_CHILDREN)`` before and after
the compile; chengc starts no other child): CPU time (user + system), the largest child's peak
RSS, and the bytes they caused to be written (``ru_oublock`` x 512: pages dirtied for the disk,
what Linux's write accounting counts). A cache hit runs no compiler and records nothing; a
``--reproducible-check`` build records both compiles.

The event is the compute issue's ``compute`` event (:mod:`cheng_build.ledger.pricing` prices it
in integer nano units; prices from ``[metering]`` in ``cheng-pkg-config.toml``) with
``task_id = "chengc:<input root>"``, ``package_id`` the package being built (or the source's
name), ``executor_id`` the builder, and one extra key::

    "packages": [{"package_id": ..., "cid": ..., "author_id": ...}, ...]   # lock order

Settlement splits the event's ``royalty`` among those entries **equally per package** (an author
with two used packages gets two shares); the integer remainder goes one nano unit at a time to
the first entries in list order, so shares always add up to the royalty exactly and every machine
computes the same split (:func:`cheng_build.ledger.pricing.royalty_shares`). A build without
locked packages pays no royalty (its royalty rate is taken as 0): there is nobody to pay.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cheng_build.core.errors import InputError

# Default prices (whole units), as the seed's metering examples use them; overridable per key in
# the config file's [metering] table.
DEFAULT_PRICES: Mapping[str, str] = {"price_cpu": "0.000001", "price_mem": "0.10", "price_io": "0.05",
                                     "royalty": "0.12", "treasury": "0.03"}


@dataclass(frozen=True, slots=True)
class CompileUsage:
    """What the compiler processes used."""

    cpu_ms: int
    mem_bytes: int
    io_bytes: int


class ChildMeter:
    """Measures the children reaped between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self._before = resource.getrusage(resource.RUSAGE_CHILDREN)

    def stop(self) -> CompileUsage:
        """The usage of the children reaped since construction."""
        a, b = self._before, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime) * 1000.0
        return CompileUsage(cpu_ms=max(0, round(cpu)), mem_bytes=b.ru_maxrss * 1024,
                            io_bytes=max(0, b.ru_oublock - a.ru_oublock) * 512)


@dataclass(frozen=True, slots=True)
class UsedPackage:
    """A package a build used, as its lock records it."""

    package_id: str
    cid: str
    author_id: str


def used_packages(dependencies: Sequence[Mapping[str, object]]) -> tuple[UsedPackage, ...]:
    """The lock's dependency tables as used packages (path dependencies have no author: skipped)."""
    out = []
    for d in dependencies:
        author = d.get("author_id")
        if isinstance(author, str) and author and not d.get("path"):
            out.append(UsedPackage(str(d.get("package_id", "")), str(d.get("cid", "")), author))
    return tuple(out)


def prices(config_values: Mapping[str, object]) -> dict[str, int]:
    """Nano-unit prices and rates from ``[metering]`` values over :data:`DEFAULT_PRICES`.

    Raises:
        InputError: a value is not a non-negative decimal, or a rate is above 1.
    """
    from cheng_build.ledger.money import NANO, MoneyError, to_nano

    unknown = set(config_values) - set(DEFAULT_PRICES)
    if unknown:
        raise InputError(f"[metering] has unknown keys: {', '.join(sorted(unknown))}",
                         how=f"use {', '.join(DEFAULT_PRICES)}")
    out: dict[str, int] = {}
    for key, default in DEFAULT_PRICES.items():
        value = config_values.get(key, default)
        try:
            nano = to_nano(str(value), what=f"[metering] {key}")
        except MoneyError as exc:
            raise InputError(f"[metering] {key} is not a decimal: {value!r}", why=exc.what) from None
        if nano < 0 or (key in ("royalty", "treasury") and nano > NANO):
            raise InputError(f"[metering] {key} is out of range: {value!r}",
                             how="prices are >= 0; royalty and treasury are rates between 0 and 1")
        out[key] = nano
    if out["royalty"] + out["treasury"] > NANO:
        raise InputError("[metering] royalty + treasury is more than 1")
    return out


def usage_event(use: CompileUsage, *, task_id: str, package_id: str, executor_id: str,
                packages: Sequence[UsedPackage], price: Mapping[str, int], epoch: int,
                start_ts: int | None = None) -> dict[str, object]:
    """The ``compute`` event of a metered compile (priced; ``usage_id`` left for the ledger)."""
    from cheng_build.ledger.pricing import Prices, nano_cost

    royalty_rate = price["royalty"] if packages else 0
    p = Prices(cpu_ms=price["price_cpu"], mem_gb=price["price_mem"], io_gb=price["price_io"],
               royalty_rate=royalty_rate, treasury_rate=price["treasury"])
    split = nano_cost(use.cpu_ms, use.mem_bytes, use.io_bytes, 0, 0, "other", p)
    return {
        "type": "compute", "usage_id": "", "task_id": task_id, "package_id": package_id,
        # The royalty goes to the packages below; author_id names the first for readers that
        # know one author per event (the original's), the split is settlement's.
        "author_id": packages[0].author_id if packages else "",
        "executor_id": executor_id, "cpu_ms": use.cpu_ms, "mem_bytes": use.mem_bytes,
        "io_bytes": use.io_bytes, "gpu_ms": 0, "gpu_mem_bytes": 0, "gpu_count": 0,
        "workload_kind": "other", "price_cpu_ms": p.cpu_ms, "price_mem_gb": p.mem_gb,
        "price_io_gb": p.io_gb, "price_gpu_ms": 0, "price_gpu_mem_gb": 0,
        "royalty_rate": p.royalty_rate, "treasury_rate": p.treasury_rate, "epoch": epoch,
        "start_ts": str(int(time.time()) if start_ts is None else start_ts),
        "total": split.total, "royalty": split.royalty, "treasury": split.treasury,
        "executor": split.executor, "source": "rusage",
        "packages": [{"package_id": u.package_id, "cid": u.cid, "author_id": u.author_id}
                     for u in packages],
    }


def record(ledger: Path, use: CompileUsage, *, task_id: str, package_id: str, executor_id: str,
           packages: Sequence[UsedPackage], config_values: Mapping[str, object],
           epoch: int | None = None) -> dict[str, object]:
    """Append the usage of one metered compile to ``ledger``; the event as written.

    The epoch is ``CHENG_EPOCH`` if set, else the ledger's current (highest) epoch.

    Raises:
        InputError: bad ``[metering]`` values or ``CHENG_EPOCH``.
        LedgerError: the ledger ends in a torn line.
        OSError: the ledger cannot be written (nothing is left half-written).
    """
    from cheng_build.ledger.log import Ledger, latest_epoch

    if epoch is None:
        env_epoch = os.environ.get("CHENG_EPOCH", "")
        if env_epoch:
            if not env_epoch.isdigit():
                raise InputError(f"CHENG_EPOCH is not a whole number: {env_epoch!r}")
            epoch = int(env_epoch)
        else:
            epoch = latest_epoch(ledger) if ledger.is_file() else 0
    event = usage_event(use, task_id=task_id, package_id=package_id, executor_id=executor_id,
                        packages=packages, price=prices(config_values), epoch=epoch)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    return Ledger(ledger).append(event)


__all__ = ["DEFAULT_PRICES", "ChildMeter", "CompileUsage", "UsedPackage", "prices", "record",
           "usage_event", "used_packages"]
