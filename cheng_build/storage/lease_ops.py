"""``lease``: record a lease event and, for a CID, a lease record pinned as far as the blocks allow.

A lease for content already stored is ``pinned`` at once; for content not here it is ``queued``,
and in p2p mode with peers it goes ``pinning`` while the DAG is read from them, then ``pinned`` or
``failed`` (the Pinning Service model).
"""

from __future__ import annotations

from dataclasses import dataclass

from cheng_build.core.errors import ChengError
from cheng_build.ledger.ids import legacy_lease_id
from cheng_build.ledger.log import Ledger, latest_epoch
from cheng_build.storage.config import Mode, StorageConfig
from cheng_build.storage.leases import LeaseBook, LeaseRecord, LeaseStatus, lease_event
from cheng_build.storage.store import fetch_from_peers, missing_blocks, open_root, parse_cid_ref


@dataclass(frozen=True, slots=True)
class LeaseResult:
    lease_id: str
    status: str
    event: dict[str, object]


def record_lease(cfg: StorageConfig, *, package_id: str, author_id: str, provider_id: str,
                 nbytes: int, duration_days: int, replicas: int, price_per_gb_month: int,
                 royalty_rate: int, treasury_rate: int, cid: str, now: int, epoch: int | None,
                 expires_in: int | None, legacy_ids: bool = False) -> LeaseResult:
    """Append the lease event; with ``cid``, create and advance its lease record.

    Raises:
        LedgerError / OSError: the ledger cannot be written (nothing is pinned then).
    """
    ledger = cfg.ledger_path
    ep = latest_epoch(ledger) if epoch is None else epoch
    expires = now + (expires_in if expires_in else duration_days * 86400)
    lease_id = legacy_lease_id(package_id, author_id, provider_id, nbytes, duration_days, replicas,
                               str(now)) if legacy_ids else ""
    ev = lease_event(mode=cfg.mode.value, lease_id=lease_id, package_id=package_id,
                     author_id=author_id, provider_id=provider_id, nbytes=nbytes,
                     duration_days=duration_days, replicas=replicas,
                     price_per_gb_month=price_per_gb_month, royalty_rate=royalty_rate,
                     treasury_rate=treasury_rate, start_ts=str(now), epoch=ep, cid=cid,
                     expires_ts=str(expires) if cid else "")
    if not cid:
        written = Ledger(ledger).append(ev)
        return LeaseResult(str(written["lease_id"]), "", written)
    root = parse_cid_ref(cid).cid
    store = open_root(cfg.root, create=True)
    book = LeaseBook(cfg.root)
    with store.locked():
        written = Ledger(ledger).append(ev)
        lid = str(written["lease_id"])
        rec = LeaseRecord(lease_id=lid, cid=cid, expires_ts=expires, status=LeaseStatus.QUEUED,
                          provider_id=provider_id, author_id=author_id, package_id=package_id,
                          bytes=nbytes, created_ts=now)
        book.write(rec)
        if not missing_blocks(store, root):
            rec = book.set_status(rec, LeaseStatus.PINNED)
    if rec.status is LeaseStatus.QUEUED and cfg.mode is Mode.P2P and cfg.peers:
        rec = book.set_status(rec, LeaseStatus.PINNING)
        try:
            fetch_from_peers(store, root, cfg.peers)
        except ChengError as exc:
            rec = book.set_status(rec, LeaseStatus.FAILED, error=exc.what)
        else:
            with store.locked():
                rec = book.set_status(rec, LeaseStatus.PINNED if not missing_blocks(store, root)
                                      else LeaseStatus.FAILED)
    return LeaseResult(lid, rec.status.value, written)
