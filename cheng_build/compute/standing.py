"""``ratelimit`` and ``repute``: the original's formulas over the ledger (reference section 1.8).

ratelimit
    Counts ``exec_request`` lines whose ``requester_id`` matches and ``exec_receipt`` lines whose
    ``executor_id`` matches, in one epoch (-1: all); ``allow_X = max <= 0 or count < max``.
    Advisory: the answer is data, never an exit code.
repute
    Over every epoch: ``score = clamp(1 + 0.001*ok_receipts + 0.005*audit_ok - 0.01*bad_receipts
    - 0.05*audit_bad - 0.1*fraud_reports, 0, 1)``; level ``excellent`` (>= 0.9), ``good``
    (>= 0.75), ``warn`` (>= 0.5), else ``bad``. Starting at 1 and clamping means good work only
    offsets bad work. ``audit_sample`` lines are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cheng_build.compute.sampling import _epoch, _s


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The ``ratelimit`` answer, fields in the original's output order."""

    epoch: int
    requester_id: str
    executor_id: str
    request_count: int
    receipt_count: int
    max_requests: int
    max_receipts: int
    allow_request: bool
    allow_receipt: bool

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def ratelimit(events: Iterable[Mapping[str, Any]], *, requester: str = "", executor: str = "",
              max_requests: int = 0, max_receipts: int = 0, epoch: int = -1) -> RateLimit:
    """Count a requester's requests and an executor's receipts (in ``epoch``, -1 = all)."""
    reqs = recs = 0
    for ev in events:
        if epoch >= 0 and _epoch(ev) != epoch:
            continue
        kind = ev.get("type")
        if kind == "exec_request" and requester and _s(ev, "requester_id") == requester:
            reqs += 1
        elif kind == "exec_receipt" and executor and _s(ev, "executor_id") == executor:
            recs += 1
    return RateLimit(epoch, requester, executor, reqs, recs, max_requests, max_receipts,
                     max_requests <= 0 or reqs < max_requests, max_receipts <= 0 or recs < max_receipts)


@dataclass(frozen=True, slots=True)
class Repute:
    """The ``repute`` answer, fields in the original's output order."""

    executor_id: str
    ok_receipt_count: int
    bad_receipt_count: int
    audit_ok_count: int
    audit_bad_count: int
    fraud_report_count: int
    score: float
    level: str

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def level_of(score: float) -> str:
    """excellent / good / warn / bad."""
    if score >= 0.9:
        return "excellent"
    if score >= 0.75:
        return "good"
    if score >= 0.5:
        return "warn"
    return "bad"


def repute(events: Iterable[Mapping[str, Any]], executor: str) -> Repute:
    """An executor's reputation over every epoch of the ledger."""
    ok = bad = a_ok = a_bad = fraud = 0
    for ev in events:
        if _s(ev, "executor_id") != executor:
            continue
        kind = ev.get("type")
        if kind == "exec_receipt":
            if _s(ev, "status") == "ok":
                ok += 1
            else:
                bad += 1
        elif kind == "audit":
            if _s(ev, "status") == "ok":
                a_ok += 1
            else:
                a_bad += 1
        elif kind == "fraud_report":
            fraud += 1
    score = 1.0 + 0.001 * ok + 0.005 * a_ok - 0.01 * bad - 0.05 * a_bad - 0.1 * fraud
    score = max(0.0, min(1.0, score))
    return Repute(executor, ok, bad, a_ok, a_bad, fraud, score, level_of(score))
