"""Leases: their cost, the ``lease`` ledger event, and lease records (time-bounded pins).

A lease pays for storing one DAG for a time. Here it becomes a *lease record*,
``<root>/leases/<lease_id>.json``, following the IPFS Pinning Service status model::

    queued  -> pinning -> pinned        (the whole DAG is in the store)
                       -> failed        (blocks could not be had; kept for the report)
    pinned  -> expired                  (gc found expires_ts passed; its blocks may now go)

While a record is ``queued``, ``pinning`` or ``pinned`` and ``now < expires_ts``, its CID is a GC
root (:mod:`cheng_build.storage.gc`). Records are written atomically (temp + fsync + rename) under
the store's shared lock, so a gc (exclusive) never runs between a write and its record.

Cost (integer nano-units, the original's §1.3 formula without float drift)::

    storage_cost = round(bytes * duration_days * replicas * price_per_gb_month / (2^30 * 30))
    royalty      = storage_cost * royalty_rate        (to the author)
    treasury     = storage_cost * treasury_rate
    provider     = storage_cost - royalty - treasury  (to the provider)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

from cheng_build.core.atomic import atomic_write_text
from cheng_build.core.errors import InputError
from cheng_build.ledger.log import iter_events
from cheng_build.ledger.money import mul_rate

GIB = 1 << 30


class LeaseStatus(StrEnum):
    """Pinning Service states, plus ``expired``."""

    QUEUED = "queued"
    PINNING = "pinning"
    PINNED = "pinned"
    FAILED = "failed"
    EXPIRED = "expired"


LIVE = frozenset({LeaseStatus.QUEUED, LeaseStatus.PINNING, LeaseStatus.PINNED})


@dataclass(frozen=True, slots=True)
class Cost:
    """A lease's cost split, nano-units."""

    storage_cost: int
    royalty: int
    treasury: int
    provider: int


def _div_round(num: int, den: int) -> int:
    q, r = divmod(num, den)
    if r * 2 > den or (r * 2 == den and q % 2 == 1):
        q += 1
    return q


def lease_cost(nbytes: int, duration_days: int, replicas: int, price_per_gb_month: int,
               royalty_rate: int, treasury_rate: int) -> Cost:
    """The cost split of a lease (see the module doc); all amounts and rates nano-scaled."""
    storage = _div_round(nbytes * duration_days * replicas * price_per_gb_month, GIB * 30)
    royalty = mul_rate(storage, royalty_rate)
    treasury = mul_rate(storage, treasury_rate)
    return Cost(storage, royalty, treasury, storage - royalty - treasury)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One lease's pin: what to keep, until when, and how far pinning got."""

    lease_id: str
    cid: str
    expires_ts: int
    status: LeaseStatus
    provider_id: str = ""
    author_id: str = ""
    package_id: str = ""
    bytes: int = 0
    created_ts: int = 0
    error: str = ""

    def live(self, now: int) -> bool:
        """Whether this lease still protects its DAG from gc."""
        return self.status in LIVE and now < self.expires_ts


class LeaseBook:
    """The lease records of one storage root (``<root>/leases/``)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "leases"

    def path(self, lease_id: str) -> Path:
        if "/" in lease_id or lease_id.startswith(".") or not lease_id:
            raise InputError(f"bad lease id {lease_id!r}")
        return self.dir / f"{lease_id}.json"

    def write(self, rec: LeaseRecord) -> None:
        d = asdict(rec)
        d["status"] = rec.status.value
        atomic_write_text(self.path(rec.lease_id), json.dumps(d, sort_keys=True) + "\n")

    def create(self, rec: LeaseRecord) -> bool:
        """Write a new record only if none exists for its lease id; False if one does.

        The file appears complete or not at all (temp + fsync, then ``link``, which fails when
        the name exists): two writers racing with one token cannot both win.
        """
        import contextlib
        import os
        import tempfile

        from cheng_build.core.atomic import fsync_dir

        final = self.path(rec.lease_id)
        self.dir.mkdir(parents=True, exist_ok=True)
        d = asdict(rec)
        d["status"] = rec.status.value
        fd, tmp = tempfile.mkstemp(prefix=".rec-", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(d, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        fsync_dir(self.dir)
        return True

    def set_status(self, rec: LeaseRecord, status: LeaseStatus, error: str = "") -> LeaseRecord:
        new = replace(rec, status=status, error=error)
        self.write(new)
        return new

    def get(self, lease_id: str) -> LeaseRecord | None:
        try:
            return _parse_record(self.path(lease_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def all(self) -> Iterator[LeaseRecord]:
        """Every readable record (a damaged record file is skipped; see :meth:`damaged`)."""
        if not self.dir.is_dir():
            return
        for f in sorted(self.dir.glob("*.json")):
            try:
                rec = _parse_record(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if rec is not None:
                yield rec

    def damaged(self) -> list[Path]:
        """Record files that do not parse (gc refuses to sweep while any exists)."""
        out = []
        if self.dir.is_dir():
            for f in sorted(self.dir.glob("*.json")):
                try:
                    if _parse_record(f.read_text(encoding="utf-8")) is None:
                        out.append(f)
                except (OSError, ValueError):
                    out.append(f)
        return out


def _parse_record(text: str) -> LeaseRecord | None:
    d = json.loads(text)
    if not isinstance(d, dict):
        return None
    try:
        return LeaseRecord(
            lease_id=str(d["lease_id"]), cid=str(d["cid"]), expires_ts=int(d["expires_ts"]),
            status=LeaseStatus(d["status"]), provider_id=str(d.get("provider_id", "")),
            author_id=str(d.get("author_id", "")), package_id=str(d.get("package_id", "")),
            bytes=int(d.get("bytes", 0)), created_ts=int(d.get("created_ts", 0)),
            error=str(d.get("error", "")))
    except (KeyError, ValueError, TypeError):
        return None


def used_lease_ids(ledger: Path) -> set[str]:
    """Every lease id already recorded in the ledger (a token's id is consumed once)."""
    out: set[str] = set()
    for ev in iter_events(ledger):
        if ev.get("type") == "lease":
            lid = ev.get("lease_id")
            if isinstance(lid, str) and lid:
                out.add(lid)
    return out


def lease_event(*, mode: str, lease_id: str, package_id: str, author_id: str, provider_id: str,
                nbytes: int, duration_days: int, replicas: int, price_per_gb_month: int,
                royalty_rate: int, treasury_rate: int, start_ts: str, epoch: int, cid: str = "",
                expires_ts: str = "", token_version: int = 0, issuer_key: str = "") -> dict[str, object]:
    """A ``lease`` ledger event: the original's keys and order, then ``epoch`` and what we add."""
    cost = lease_cost(nbytes, duration_days, replicas, price_per_gb_month, royalty_rate, treasury_rate)
    ev: dict[str, object] = {
        "type": "lease", "mode": mode, "lease_id": lease_id, "package_id": package_id,
        "author_id": author_id, "provider_id": provider_id, "bytes": nbytes,
        "duration_days": duration_days, "replicas": replicas,
        "price_per_gb_month": price_per_gb_month, "royalty_rate": royalty_rate,
        "treasury_rate": treasury_rate, "start_ts": start_ts, "storage_cost": cost.storage_cost,
        "royalty": cost.royalty, "treasury": cost.treasury, "provider": cost.provider,
        "epoch": epoch,
    }
    if cid:
        ev["cid"] = cid
    if expires_ts:
        ev["expires_ts"] = expires_ts
    if token_version:
        ev["token_version"] = token_version
    if issuer_key:
        ev["issuer_key"] = issuer_key
    return ev
