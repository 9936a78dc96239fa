"""The key order of the original tool's hash tables (compat output only).

The original wrote ``payouts.*`` and ``trust.*_by_*`` in the slot order of its linear-probing
hash table (reference §1.9): Jenkins one-at-a-time over the key's bytes in signed 32-bit
arithmetic (wrap-around, *arithmetic* right shift), slot ``(h & 0x7fffffff) % cap``, probe +1,
start at 64 slots and double *before* an insert when ``(len + 1) * 10 >= cap * 7``, re-inserting
the old keys in their old slot order. Default output sorts keys instead (canonical).
"""

from __future__ import annotations

from collections.abc import Iterable

_INITIAL_CAP = 64


def _i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - 0x100000000 if x & 0x80000000 else x


def jenkins_i32(key: str) -> int:
    """The original's one-at-a-time hash of ``key``'s UTF-8 bytes, as a signed int32."""
    h = 0
    for c in key.encode("utf-8", "surrogatepass"):
        h = _i32(h + c)
        h = _i32(h + _i32(h << 10))
        h = _i32(h ^ (h >> 6))  # Python's >> on a negative int is arithmetic, as on aarch64
    h = _i32(h + _i32(h << 3))
    h = _i32(h ^ (h >> 11))
    return _i32(h + _i32(h << 15))


def _place(slots: list[str | None], key: str) -> None:
    cap = len(slots)
    i = (jenkins_i32(key) & 0x7FFFFFFF) % cap
    while slots[i] is not None:
        i = (i + 1) % cap
    slots[i] = key


def table_order(keys: Iterable[str]) -> list[str]:
    """The emitted order of a table that had ``keys`` inserted in this order (no duplicates)."""
    slots: list[str | None] = [None] * _INITIAL_CAP
    for n, key in enumerate(keys):
        if (n + 1) * 10 >= len(slots) * 7:
            old = [k for k in slots if k is not None]
            slots = [None] * (len(slots) * 2)
            for k in old:
                _place(slots, k)
        _place(slots, key)
    return [k for k in slots if k is not None]


def slot_of(key: str, cap: int = _INITIAL_CAP) -> int:
    """The home slot of ``key`` in a table of ``cap`` slots (before probing)."""
    return (jenkins_i32(key) & 0x7FFFFFFF) % cap


__all__ = ["jenkins_i32", "slot_of", "table_order"]
