"""Monotonic ULIDs: 48-bit Unix time in ms + 80 random bits, Crockford base32 (26 chars).

Written out here (checked against python-ulid in the tests) because importing python-ulid pulls
in importlib.metadata and costs tens of ms on every ``cis run``.

Monotonic as the ULID spec describes: a ULID made in the same millisecond as the previous one
(or behind it, when the clock stepped back) is the previous one plus 1 in its random part, so
ids sort in the order they were made. ``after`` extends that to ids made elsewhere (another
process's run in the same store): the new id sorts after it too.
"""

from __future__ import annotations

import os
import threading
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}
_RANDOM_BITS = 80
_MAX = (1 << 128) - 1

_lock = threading.Lock()
_last = 0  # the last value handed out by this process


def encode(value: int) -> str:
    """The 26-character Crockford base32 text of a 128-bit value."""
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def decode(text: str) -> int | None:
    """The value of a ULID's text, or None if it is not one (case-insensitive, as the spec)."""
    if len(text) != 26:
        return None
    value = 0
    for ch in text.upper():
        digit = _DECODE.get(ch)
        if digit is None:
            return None
        value = value << 5 | digit
    return value if value <= _MAX else None


def new_ulid(after: str | None = None) -> str:
    """A fresh ULID that sorts after every one this process made, and after ``after``.

    Raises:
        OverflowError: 2**80 ids in one millisecond (the spec's overflow; never in practice).
    """
    global _last
    fresh = (time.time_ns() // 1_000_000) << _RANDOM_BITS | int.from_bytes(os.urandom(10), "big")
    floor = decode(after) if after else None
    with _lock:
        prev = max(_last, floor or 0)
        if fresh >> _RANDOM_BITS <= prev >> _RANDOM_BITS:
            # Same millisecond as (or clock behind) the newest id seen: count up from it.
            if prev & ((1 << _RANDOM_BITS) - 1) == (1 << _RANDOM_BITS) - 1:
                raise OverflowError("ULID random part overflowed within one millisecond")
            fresh = prev + 1
        _last = fresh
    return encode(fresh)


__all__ = ["CROCKFORD", "decode", "encode", "new_ulid"]
