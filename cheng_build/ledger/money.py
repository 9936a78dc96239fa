"""Money as integers: nano-units (1e-9 of one unit), so sums never drift with the ledger's order.

The original wrote money as IEEE doubles and summed them left to right, so a settlement depended on
line order (reference §1.11 item 7). Our default-mode lines hold integer nano-units; the original's
floats are read through the shortest decimal that round-trips (``repr``) and rounded half-to-even to
the nearest nano-unit, so ``0.000244140625`` (244140.625 nano) reads as ``244141``.
Rates (``royalty_rate``, ``treasury_rate``) use the same scale: ``0.12`` is ``120_000_000``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from cheng_build.core.errors import InputError

NANO = 10**9
_NANO_DEC = Decimal(NANO)
_ONE = Decimal(1)
# Amounts beyond 1e18 whole units are a typo or an attack, not money (and would exhaust Decimal).
_MAX_DIGITS = 18


class MoneyError(InputError):
    """A money field is not a finite number (or not an integer where one is required)."""


def to_nano(value: object, *, what: str = "amount") -> int:
    """Convert a float, int or decimal string in whole units to integer nano-units.

    Raises:
        MoneyError: not a finite number (NaN, infinity, text that is not a decimal, a boolean).
    """
    if isinstance(value, bool):
        raise MoneyError(f"{what} must be a number, not a boolean")
    if isinstance(value, int):
        return value * NANO
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise MoneyError(f"{what} must be a number, got {type(value).__name__}")
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise MoneyError(f"{what} {text[:40]!r} is not a decimal number") from None
    if not dec.is_finite():
        raise MoneyError(f"{what} {text[:40]!r} is not finite")
    if dec and dec.adjusted() > _MAX_DIGITS:
        raise MoneyError(f"{what} {text[:40]!r} is too large")
    if dec and dec.adjusted() < -_MAX_DIGITS:
        return 0  # far below a nano-unit
    return int((dec * _NANO_DEC).quantize(_ONE, rounding=ROUND_HALF_EVEN))


def format_nano(nano: int) -> str:
    """Nano-units as a plain decimal in whole units, trailing zeros cut (``1500000000`` -> ``1.5``)."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


def mul_rate(amount_nano: int, rate_nano: int) -> int:
    """``amount * rate`` where both are nano-scaled, rounded half-to-even to a nano-unit."""
    q, r = divmod(amount_nano * rate_nano, NANO)
    # divmod floors; round half to even on the remainder
    if r * 2 > NANO or (r * 2 == NANO and q % 2 == 1):
        q += 1
    return q


def read_money(event: dict[str, object], key: str, default: int = 0) -> int:
    """A money field of a ledger event in nano-units, whichever writer wrote it.

    A default-mode line (it has ``prev``) holds an integer already; an original/compat line holds
    the original's float (or an int, which its reader also accepted) in whole units.

    Raises:
        MoneyError: the field is not a number, or a default-mode line holds a non-integer.
    """
    if key not in event:
        return default
    value = event[key]
    if "prev" in event:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise MoneyError(f"{key} must be an integer count of nano-units in a chained line, got {value!r:.40}")
    return to_nano(value, what=key)
