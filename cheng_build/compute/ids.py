"""Event ids: collision-free by default, the original's length ids on request.

The original built every id as ``<prefix>-<len(payload)>`` (reference section 1.1): two receipts
whose fields have the same lengths get the same id, and settlement then merges them silently. We
write ``<prefix>-<ULID>`` (48-bit time in ms + 80 random bits, Crockford base32): unique without
coordination, sortable by creation time, and known before the line is written (a receipt signs
its own id, and a request's id travels to the executor before any ledger sees it). The ledger
keeps an id it is given and fills ``<prefix>-<CID>`` only for events without one. Any
``<prefix>-<text>`` is accepted on read; the original's length ids are built by
:func:`cheng_build.ledger.ids.legacy_length_id` for ``--legacy-ids``.
"""

from __future__ import annotations

import os
import time

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
