"""Writing content to a storage root, with or without a lease (the original's ``io_backend`` put).

Order of a leased write, chosen so that a failed check writes nothing and a crash never leaves a
paid-for DAG unprotected (the store's shared lock is held throughout, so gc cannot run between):

1. checks that need no hashing: the ledger verifies (no torn or edited line), signature, expiry,
   registry binding, size of a file, replay (the lease id in the ledger or in a lease record);
2. import into one staged batch (temp files); the root CID and total size are now known; a wrong
   CID or too many bytes discards the batch: nothing is written;
3. create the lease record (``pinning``) exclusively: a concurrent write with the same token loses
   here, and its batch is discarded;
4. commit the batch (fsync + rename), append the ``lease`` event (under the ledger lock, refusing
   a lease id already there), mark the record ``pinned``.

A crash after 3 leaves a record that protects the DAG until expiry (never a lost block); one
between 4's steps leaves a ``pinning`` record and no ledger event, which a retry with the same
token reports as already used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cheng_build.cas.blockstore import Batch, Blockstore
from cheng_build.cas.cid import cid_str
from cheng_build.cas.importer import import_path
from cheng_build.core.errors import InputError, PolicyError
from cheng_build.ledger.log import Ledger, LedgerError, iter_events, latest_epoch, verify_ledger
from cheng_build.storage.config import StorageConfig
from cheng_build.storage.leases import LeaseBook, LeaseRecord, LeaseStatus, lease_event
from cheng_build.storage.store import open_root
from cheng_build.storage.token import KeyLookup, LeaseToken, TokenError, check_content, check_token


class LeaseRequiredError(PolicyError):
    """A write without a lease where one is required."""


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a put stored and recorded."""

    cid: str
    size: int
    blocks: int
    lease: LeaseRecord | None = None
    event: dict[str, object] | None = None


class _HeldBatch:
    """Hands :func:`import_path` our open batch, so we decide whether it commits."""

    def __init__(self, store: Blockstore, batch: Batch) -> None:
        self.root = store.root
        self._batch = batch

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        yield self._batch


def _lease_in_ledger(ledger: Path, lease_id: str) -> bool:
    return any(ev.get("type") == "lease" and ev.get("lease_id") == lease_id
               for ev in iter_events(ledger))


def put(cfg: StorageConfig, source: Path, *, token: LeaseToken | None = None,
        require_lease: bool = False, compat: bool = False, key_lookup: KeyLookup | None = None,
        now: int, epoch: int | None = None, pin: bool | None = None) -> PutResult:
    """Store a file or directory; with ``token``, pay for it with a lease and record it.

    Args:
        cfg: the root, mode and ledger.
        source: a file or a directory (imported as a UnixFS directory).
        token: a parsed lease token, checked before anything is written.
        require_lease: the caller's policy (the CLI's ``put`` requires one in p2p mode).
        compat: accept v1 tokens.
        key_lookup: the registry binding check for v2 tokens.
        now: unix seconds.
        epoch: the lease event's epoch (default: the ledger's current epoch).
        pin: pin explicitly (default: only writes without a lease, which nothing else protects).

    Raises:
        LeaseRequiredError: no token where one is required (``IO_REQUIRE_LEASE`` in p2p mode, or
            the caller's policy).
        TokenError: the token fails a check; nothing is written.
        InputError: the source is missing or not a file/directory.
    """
    if token is None and require_lease:
        raise LeaseRequiredError("missing --lease", why=f"writes in {cfg.mode.value} mode are paid "
                                 "for with a lease", how="pass --lease:<token.json> (cheng-storage "
                                 "leasegen writes one), or --no-lease to store locally")
    if token is None and cfg.enforce_lease:
        raise LeaseRequiredError("lease required", why="IO_REQUIRE_LEASE is set and the mode is p2p",
                                 how="pass --lease:<token.json>; cheng-storage leasegen writes one")
    if not source.exists():
        raise InputError(f"no such file: {source}")
    store = open_root(cfg.root, create=True)
    if token is None:
        res = import_path(store, source, pin=True if pin is None else pin)
        return PutResult(cid_str(res.root), res.bytes, res.blocks)
    return _put_leased(cfg, store, source, token, compat=compat, key_lookup=key_lookup, now=now,
                       epoch=epoch, pin=bool(pin))


def _put_leased(cfg: StorageConfig, store: Blockstore, source: Path, token: LeaseToken, *,
                compat: bool, key_lookup: KeyLookup | None, now: int, epoch: int | None,
                pin: bool) -> PutResult:
    book = LeaseBook(cfg.root)
    ledger = cfg.ledger_path

    def used(lease_id: str) -> bool:
        return book.get(lease_id) is not None or _lease_in_ledger(ledger, lease_id)

    # 1. every check that needs no hashing (a file's size is its stat size), and a ledger the
    #    lease event can be chained onto (torn or edited: refuse before writing anything)
    rep = verify_ledger(ledger)
    if not rep.ok:
        first = rep.problems[0]
        raise LedgerError(f"{ledger}: line {first.line}: {first.what}",
                          why="the lease would be recorded in a ledger that does not verify",
                          how="run 'cheng-storage verify-ledger' (--repair cuts a torn last line)")
    lease_id = check_token(token, now=now, key_registered=key_lookup, used=used, compat=compat)
    if source.is_file():
        check_content(token, size=source.stat().st_size, cid=None)
    ep = latest_epoch(ledger) if epoch is None else epoch
    expires = int(token.expires_ts) if token.expires_ts else \
        int(token.start_ts) + token.duration_days * 86400
    with store.locked():
        with store.batch() as batch:
            # 2. stage the blocks; the CID and size decide whether they stay
            res = import_path(_HeldBatch(store, batch), source)  # type: ignore[arg-type]
            cid = cid_str(res.root)
            check_content(token, size=res.bytes, cid=cid)
            # 3. claim the lease id
            rec = LeaseRecord(lease_id=lease_id, cid=cid, expires_ts=expires,
                              status=LeaseStatus.PINNING, provider_id=token.provider_id,
                              author_id=token.author_id, package_id=token.package_id,
                              bytes=res.bytes, created_ts=now)
            if not book.create(rec):
                raise TokenError(f"lease token already used: {lease_id}",
                                 why="a lease record with this id exists in this root")
            if pin:
                batch.pin(res.root)
            # 4. the batch commits when this block ends
        event = lease_event(
            mode=cfg.mode.value, lease_id=lease_id, package_id=token.package_id,
            author_id=token.author_id, provider_id=token.provider_id, nbytes=token.bytes,
            duration_days=token.duration_days, replicas=token.replicas,
            price_per_gb_month=token.price_per_gb_month, royalty_rate=token.royalty_rate,
            treasury_rate=token.treasury_rate, start_ts=token.start_ts, epoch=ep, cid=cid,
            expires_ts=str(expires), token_version=token.version, issuer_key=token.pub_key)

        def not_recorded() -> None:
            if _lease_in_ledger(ledger, lease_id):
                raise TokenError(f"lease token already used: {lease_id}",
                                 why="the ledger already records this lease")

        try:
            written = Ledger(ledger).append(event, guard=not_recorded)
        except (TokenError, LedgerError, OSError) as exc:
            book.set_status(rec, LeaseStatus.FAILED, error=str(exc))
            raise
        rec = book.set_status(rec, LeaseStatus.PINNED)
    return PutResult(cid, res.bytes, res.blocks, rec, written)


def put_bytes(cfg: StorageConfig, data: bytes, **kw: object) -> PutResult:
    """:func:`put` for in-memory bytes (``put-text``), through a private temp file."""
    import tempfile

    cfg.root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".put-", dir=cfg.root)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return put(cfg, Path(tmp), **kw)  # type: ignore[arg-type]
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
