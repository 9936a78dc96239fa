"""Reading one field of a ledger event, the way settlement needs it.

The original's getters were forgiving (a missing key reads as its fallback, a float epoch is
truncated, an int money field reads as a float: reference §1.1); we keep that, but a field of the
wrong JSON type (a string where money belongs) is an error naming the line, never a silent 0.

Money has two readings:

- compat: floats in whole units, summed in file order like the original (results depend on order);
- default: integer nano-units (1e-9), as chained lines store them (:mod:`cheng_build.ledger.money`);
  an original line's float is converted once, so the sums are exact integers, independent of line
  order and the same on every machine.
"""

from __future__ import annotations

import math
from typing import Any

from cheng_build.ledger.money import NANO, MoneyError, read_money
from cheng_build.settle.errors import LedgerLineError as LedgerError

GIB = 1073741824.0
GIB_INT = 1073741824

Event = dict[str, Any]
Num = int | float


def text(ev: Event, key: str, line: int) -> str:
    """A string field; missing or null reads as ``""``."""
    v = ev.get(key)
    if type(v) is str:
        return v
    if v is None:
        return ""
    raise LedgerError(f"{key} is not a string", line=line, why=f"got {str(v)[:40]!r}")


def epoch_of(ev: Event, line: int) -> int:
    """The event's epoch: missing reads as 0 (legacy leases had none); a float is truncated."""
    v = ev.get("epoch", 0)
    t = type(v)
    if t is int:
        return int(v)
    if t is float:
        return int(v)
    if v is None:
        return 0
    raise LedgerError("epoch is not a number", line=line, why=f"got {str(v)[:40]!r}")


def number(ev: Event, key: str, line: int) -> float:
    """A numeric field as a float (missing reads as 0.0)."""
    v = ev.get(key)
    if type(v) is float or type(v) is int:
        return float(v)
    if v is None:
        return 0.0
    raise LedgerError(f"{key} is not a number", line=line, why=f"got {str(v)[:40]!r}")


def quantity(ev: Event, key: str, line: int) -> Num:
    """A non-money numeric field (ms, bytes) as written: int stays int, float stays float."""
    v = ev.get(key)
    if type(v) is int or type(v) is float:
        n: Num = v
        return n
    if v is None:
        return 0
    raise LedgerError(f"{key} is not a number", line=line, why=f"got {str(v)[:40]!r}")


def round_div(num: Num, den: int) -> int:
    """``num / den`` rounded half up to an integer; exact for integers, ``round`` for floats.

    Raises:
        LedgerError: a float product is not finite (absurd quantities).
    """
    if type(num) is int:
        return (2 * num + den) // (2 * den)
    x = num / den
    if not math.isfinite(x):
        raise LedgerError(f"an amount overflows ({num!r})")
    return math.floor(x + 0.5)


def money_float(ev: Event, key: str, line: int) -> float:
    """Compat reading of a money field as a float in whole units.

    A chained line (it has ``prev``) holds integer nano-units; the original's lines hold floats.
    """
    v = ev.get(key)
    if type(v) is float:
        return float(v)
    if type(v) is int and "prev" in ev:
        return v / NANO
    return number(ev, key, line)


def money_nano(ev: Event, key: str, line: int) -> int:
    """Default reading of a money field in nano-units; negative amounts are refused.

    A chained line holds the integer already; an original line's float is converted by
    :func:`cheng_build.ledger.money.to_nano` (its shortest decimal, rounded half to even).

    Raises:
        LedgerError: not a number, not an integer in a chained line, negative, too large.
    """
    v = ev.get(key)
    if v is None:
        return 0
    t = type(v)
    if t is int and "prev" in ev:
        n = int(v)
    elif t is not int and t is not float:  # a string or a boolean is not an amount
        raise LedgerError(f"{key} is not a number", line=line, why=f"got {str(v)[:40]!r}")
    else:
        try:
            n = read_money(ev, key)
        except MoneyError as exc:
            raise LedgerError(exc.what, line=line) from None
    if n < 0:
        raise LedgerError(f"{key} is negative ({v!r})", line=line,
                          how="money in a ledger is never negative; penalties have their own "
                              "events")
    return n


def alpha_bps(ev: Event, line: int) -> int:
    """The GPU workload weight in basis points: train 13500, infer 8500, anything else 10000."""
    kind = text(ev, "workload_kind", line).strip().lower() or "other"
    return ALPHA_MAP_BPS.get(kind, 10000)


ALPHA_MAP_BPS: dict[str, int] = {"train": 13500, "infer": 8500, "other": 10000}

# Fraud severity weights in tenths (low 0.1, medium 0.5, anything else 1.0), so default mode sums
# integers and prints tenths / 10, which is exact and the same everywhere.
SEVERITY_TENTHS: dict[str, int] = {"low": 1, "medium": 5}


def severity_tenths(ev: Event, line: int) -> int:
    """A fraud report's weight in tenths."""
    return SEVERITY_TENTHS.get(text(ev, "severity", line).lower(), 10)


__all__ = [
    "ALPHA_MAP_BPS",
    "GIB",
    "GIB_INT",
    "NANO",
    "Event",
    "Num",
    "alpha_bps",
    "epoch_of",
    "money_float",
    "money_nano",
    "number",
    "quantity",
    "round_div",
    "severity_tenths",
    "text",
]
