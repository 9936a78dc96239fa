"""Event ids: collision-free by default, the original's length ids on request.

The original built every id as ``<prefix>-<len(payload)>`` (reference section 1.1): two receipts
whose fields have the same lengths get the same id, and settlement then merges them silently. We
write ``<prefix>-<ULID>`` (48-bit time in ms + 80 random bits, Crockford base32): unique without
coordination, and sortable by creation time. Any ``<prefix>-<text>`` is accepted on read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = {
    "exec_request": "req",
    "compute": "usage",
    "exec_receipt": "receipt",
    "audit": "audit",
    "audit_sample": "sample",
    "fraud_report": "fraud",
}


def ulid() -> str:
    """A fresh ULID (26 characters)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    """``<prefix>-<ULID>``."""
    return f"{prefix}-{ulid()}"


def int32(value: int) -> int:
    """Two's-complement wrap to int32, as the original's ``int32(x)`` casts."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def legacy_id(prefix: str, parts: Sequence[object]) -> str:
    """The original's id: ``<prefix>-<byte length of the parts joined with '|'>``.

    Callers pass the parts already formatted as the original did (``int32`` applied where it did).
    """
    payload = "|".join(str(p) for p in parts)
    return f"{prefix}-{int32(len(payload.encode('utf-8')))}"
