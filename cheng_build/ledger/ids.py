"""Event ids: collision-free by default, the original's schemes for compat.

The original named most events ``<prefix>-<len(payload)>`` (reference §1.1): two receipts whose
fields have the same lengths share an id, and settlement merged them silently. Ours is
``<prefix>-`` + a CIDv1 (raw, sha2-256, base32) of the event's canonical JSON together with the
ledger position it is written at (``seq`` and the previous line's hash), so two events in one
ledger can never share an id, and the id also commits to the content. Lease ids keep the original's
scheme (CID of ``package|author|provider|bytes|days|replicas|start_ts``) when no token names one.
"""

from __future__ import annotations

import base64
import hashlib
import json


def raw_cid(data: bytes) -> str:
    """CIDv1 text of ``data`` as a raw block hashed with sha2-256 (``bafkrei...``)."""
    digest = hashlib.sha256(data).digest()
    body = base64.b32encode(b"\x01\x55\x12\x20" + digest).decode("ascii").lower().rstrip("=")
    return "b" + body


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes ids and signatures are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8", "surrogateescape")


def new_id(prefix: str, event: dict[str, object], *, seq: int, prev: str) -> str:
    """A collision-free id for ``event`` written at ``seq`` after a line hashing to ``prev``."""
    payload = canonical_json({"event": event, "seq": seq, "prev": prev})
    return f"{prefix}-{raw_cid(payload)}"


def _int32(value: int) -> int:
    """Two's-complement wrap to int32, as the original's ``int32(x)`` did."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def legacy_length_id(prefix: str, fields: list[object]) -> str:
    """The original's ``<prefix>-<len(payload)>`` id (for tests and ``--legacy-ids`` only).

    ``fields`` are the payload parts in the §1.1 order, already in the original's text form
    (ints that it wrapped with ``int32`` must be passed wrapped: see :func:`int32`).
    """
    payload = "|".join(str(f) for f in fields)
    return f"{prefix}-{len(payload.encode('utf-8'))}"


def int32(value: int) -> int:
    """Public alias of the int32 wrap (``17179869184`` -> 0), for building legacy payloads."""
    return _int32(value)


def legacy_lease_id(package_id: str, author_id: str, provider_id: str, nbytes: int,
                    duration_days: int, replicas: int, start_ts: str) -> str:
    """The original's lease id: ``lease-`` + CID of the ``|``-joined lease fields (§1.1)."""
    payload = "|".join([package_id, author_id, provider_id, str(_int32(nbytes)),
                        str(duration_days), str(replicas), start_ts])
    return "lease-" + raw_cid(payload.encode("utf-8"))
