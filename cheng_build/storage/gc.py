"""Lease-aware garbage collection: mark from unexpired leases and pins, sweep the rest.

Roots are every explicit pin (``<root>/pins/``) and the CID of every *live* lease record (status
queued/pinning/pinned and ``now < expires_ts``, :mod:`cheng_build.storage.leases`). A block
reachable from a root is never deleted.

Crash safety (``kill -9`` at any moment):

- the whole collection holds the store lock exclusively, and writers (imports, leased puts) hold
  it shared while they write blocks *and* their lease record or pin, so a root can never appear
  between the mark and the sweep;
- expired leases are first marked ``expired`` in their records (atomic rewrite) and reported;
  only then does the mark start, so the report always precedes the deletion of their blocks;
- the mark is complete before the first unlink; each unlink removes one unreachable block, which
  is atomic. A killed sweep leaves a store in which every live block is still present and intact;
  the next gc finishes the job. ``<root>/gc.state`` records the sweep in progress (mark epoch,
  root count) and lets the next run report that it resumes an interrupted sweep;
- a corrupt or undecodable block on a root's path stops gc before it deletes anything (its
  children cannot be known and would be lost); a damaged lease record stops it too (its root is
  unknown). Missing blocks below a root are tolerated (a lease still being pinned).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import CID, CidError, cid_bytes, decode_cid_bytes, parse_cid
from cheng_build.core.atomic import atomic_write_text
from cheng_build.core.errors import IntegrityError, NotFoundError
from cheng_build.storage.leases import LIVE, LeaseBook, LeaseRecord, LeaseStatus
from cheng_build.storage.links import DAG_PB_CODEC, codec, links


class GcRefusedError(IntegrityError):
    """gc found something that makes a safe sweep impossible (damaged lease record, corrupt node)."""


@dataclass(slots=True)
class GcReport:
    """What a collection did (or would do, on a dry run)."""

    expired: list[LeaseRecord] = field(default_factory=list)
    roots: int = 0
    live_blocks: int = 0
    kept: int = 0
    removed: int = 0
    bytes_freed: int = 0
    stale_temps: int = 0
    resumed: bool = False
    dry_run: bool = False


def mark(get: Callable[[CID], bytes], roots: Iterable[CID]) -> set[bytes]:
    """Every binary CID reachable from ``roots``; only dag-pb nodes are read (verified by ``get``).

    Binary CIDs, not CID objects or text: a DAG of a million leaves has a million links, and a
    set of bytes is all the sweep needs (:mod:`cheng_build.storage.links`).

    Raises:
        DigestMismatchError / DagPbError: a node on the way is corrupt (never tolerated).
    """
    live: set[bytes] = set()
    stack = [cid_bytes(r) for r in roots]
    pop, push, add = stack.pop, stack.extend, live.add
    while stack:
        b = pop()
        if b in live:
            continue
        add(b)
        if codec(b) != DAG_PB_CODEC:
            continue  # a raw leaf (or a codec without links): nothing below it
        try:
            data = get(decode_cid_bytes(b))
        except (NotFoundError, ValueError):  # ValueError: a link naming no valid CID
            continue  # a hole below a root (a lease still pinning): nothing more to find here
        push([c for c, _ in links(data)])
    return live


def _roots(store: Blockstore, book: LeaseBook, now: int, report: GcReport, dry_run: bool) -> list[CID]:
    # Pins first, then leases: a leased put writes its record before it would drop a pin.
    roots = list(store.pins())
    damaged = book.damaged()
    if damaged:
        raise GcRefusedError(f"lease record {damaged[0]} is damaged",
                             why="its CID cannot be read, so its blocks cannot be protected",
                             how="restore or remove the record, then run gc again")
    for rec in book.all():
        if rec.status in LIVE and now >= rec.expires_ts:
            report.expired.append(rec)
            if not dry_run:
                book.set_status(rec, LeaseStatus.EXPIRED)
            continue
        if rec.live(now) and rec.cid:
            try:
                roots.append(parse_cid(rec.cid))
            except CidError:
                raise GcRefusedError(f"lease {rec.lease_id} names no valid CID",
                                     how="fix or remove its record") from None
    return roots


def collect(root: Path, store: Blockstore, *, now: int | None = None, dry_run: bool = False,
            on_delete: Callable[[str], None] | None = None) -> GcReport:
    """Expire leases, mark from the live roots, and sweep (see the module doc).

    Raises:
        GcRefusedError: a damaged lease record, or a corrupt node under a root.
        StoreError: the store cannot be locked.
    """
    now = int(time.time()) if now is None else now
    report = GcReport(dry_run=dry_run)
    book = LeaseBook(root)
    state_path = root / "gc.state"
    with store.locked(exclusive=True):
        report.resumed = state_path.exists()
        roots = _roots(store, book, now, report, dry_run)
        report.roots = len(roots)
        try:
            live = mark(store.get, roots)
        except IntegrityError as exc:
            raise GcRefusedError(f"a block under a live root is corrupt: {exc.what}",
                                 how="repair it (put the content again, or fetch it from a peer)",
                                 why="gc deletes nothing while it cannot see everything a root "
                                     "reaches") from exc
        report.live_blocks = len(live)
        if not dry_run:
            atomic_write_text(state_path, json.dumps({"state": "sweeping", "mark_ts": now,
                                                      "roots": len(roots),
                                                      "live": len(live)}) + "\n")
        _sweep(store, live, now, report, dry_run, on_delete)
        if not dry_run:
            with contextlib.suppress(FileNotFoundError):
                state_path.unlink()
    return report


def _sweep(store: Blockstore, live: set[bytes], now: float, report: GcReport, dry_run: bool,
           on_delete: Callable[[str], None] | None) -> None:
    """Forget the blocks that are not live and compact the packs (:mod:`cheng_build.cas.packgc`).

    Legacy whole objects directly under ``blocks/`` are read-only here: import-legacy moves them.
    """
    from cheng_build.cas.packgc import sweep

    res = sweep(store, live, dry_run=dry_run, on_delete=on_delete)
    report.kept += res.kept
    report.removed += res.removed
    report.bytes_freed += res.bytes_freed
    report.stale_temps += res.stale
