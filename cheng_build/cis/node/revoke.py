"""Revocation, a node's side of it: one execution of a task while the nodes are online.

The ledger (ledger.py) holds the rule every reader applies in timeline order: a takeover claim
of epoch ``n+1`` revokes epoch ``n`` and is pending until the old holder's ``release`` or the
taker's ``start``; a renewal or result of ``n`` from the old holder before either voids it. This
module is what a node does about it, decided on each tick of the agent:

* :func:`startable`: a won task starts only if no revocation of it is pending and its lease is
  *fresh*: its own claim or renewal for that epoch is in the timeline and was queued less than
  ``FRESH`` of the lease ago, on the plain monotonic clock (a pause of this process counts
  against its own lease). A takeover needs a whole lease of silence after the holder's last
  event, so none can be in the timeline before then: a holder never starts what was revoked
  before it could see the revoke.
* :func:`answer`: the holder's side. A revoked epoch not yet started is dropped and released;
  one already running is answered with a renewal of it (the contradiction that voids a pending
  takeover). A takeover this node won that was voided is dropped: the old holder runs it.
* :func:`due_starts`: the taker's side. A takeover nobody answered for a whole lease (awake
  clock, from when it was seen winning) gets a ``start`` event; the ledger settles it when that
  is in the timeline with no answer before it, and :func:`startable` lets it run.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from cheng_build.cis.node.ledger import Ledger, TaskRec

FRESH = 0.6
Pairs = dict[str, list[list[int]]]  # run id -> [[task, epoch], ...]


@dataclass
class Held:
    """A task this node won (and may be running)."""

    run: str
    idx: int
    epoch: int
    renewed: float  # monotonic time its last renewal was queued
    started: bool = False
    confirmed: float = -math.inf  # queue time (monotonic) of the newest own claim/renewal seen
    won: float = 0.0  # awake-clock time the claim was seen winning (a takeover waits from it)
    start_posted: bool = False
    answered: int = -1  # the revoking epoch this node last answered


def startable(ledger: Ledger, rec: TaskRec, h: Held, node: str, lease_s: float,
              now: float | None = None) -> bool:
    """Won, not revoked, no revocation of its own pending, and the lease fresh."""
    now = time.monotonic() if now is None else now
    return ledger.may_start(rec, h.epoch, node) and now - h.confirmed < FRESH * lease_s


def answer(held: dict[tuple[str, int], Held], rec_of: Callable[[str, int], TaskRec | None], node: str,
           log: Callable[[str], None]) -> tuple[Pairs, Pairs]:
    """Drop what was revoked before it started or voided; return (release, contradict) pairs."""
    release: Pairs = defaultdict(list)
    contradict: Pairs = defaultdict(list)
    for key, h in list(held.items()):
        rec = rec_of(h.run, h.idx)
        if rec is None:
            continue
        if rec.winners.get(h.epoch) != node:
            del held[key]
            log(f"task {h.idx} of {h.run}: takeover void: {rec.holder} answered that it runs it")
        elif rec.epoch > h.epoch and not h.started:
            del held[key]
            release[h.run].append([h.idx, h.epoch])
            log(f"task {h.idx} of {h.run}: taken over by {rec.holder} (epoch {rec.epoch}) "
                "before it started here: not running it")
        elif rec.epoch > h.epoch and h.answered < rec.epoch:
            h.answered = rec.epoch
            if rec.epoch in rec.pending and rec.epoch == h.epoch + 1:
                contradict[h.run].append([h.idx, h.epoch])
                log(f"task {h.idx} of {h.run}: revoked by {rec.holder} (epoch {rec.epoch}) "
                    "while running here: answering that it runs")
            else:
                log(f"task {h.idx} of {h.run}: taken over by {rec.holder} (epoch {rec.epoch}) "
                    "while running here: both results will show (debt)")
    return release, contradict


def due_starts(held: dict[tuple[str, int], Held], rec_of: Callable[[str, int], TaskRec | None],
               now: float, lease_s: float) -> Pairs:
    """Takeovers won at least a lease ago (awake clock) and still pending: post ``start``."""
    start: Pairs = defaultdict(list)
    for h in held.values():
        if h.start_posted or h.epoch == 0:
            continue  # epoch 0 is never a takeover (the common case: no lookup)
        rec = rec_of(h.run, h.idx)
        if rec is None or h.epoch not in rec.pending:
            continue
        if now - h.won >= lease_s:
            h.start_posted = True
            start[h.run].append([h.idx, h.epoch])
    return start
