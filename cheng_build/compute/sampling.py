"""Which receipts to audit: the original's selection formula, exactly (reference section 1.7).

1. Rates become basis points (``rate_to_bps``): r <= 1 is a fraction, r <= 100 a percent, else bps.
2. One pass over the ledger: the latest epoch of any event; per executor the latest epoch of a
   non-ok receipt (whatever the epoch filter); per request, receipt, task and executor the latest
   epoch of a fraud report (no upper bound); the receipts inside the filter, in ledger order.
3. ``window_start = (filter >= 0 ? filter : latest) - window + 1`` (a window <= 0 is 3).
4. A receipt's risk reason is the first that applies: ``receipt_status_non_ok``,
   ``request_missing``, ``task_missing``, ``executor_missing``, ``usage_missing``,
   ``fraud_linked_receipt`` / ``_request`` / ``_task`` / ``_executor`` (a fraud epoch >= window
   start), ``executor_history_bad``; none means low risk. High risk samples at the high rate.
5. Selected when rate >= 10000, never when rate <= 0, else when
   ``uint32_be(sha256(receipt_id + "|" + seed)[:4]) % 10000 < rate``.

The same ledger and the same seed select the same receipts on any machine. The seed is chosen by
the auditor; a seed fixed before the receipts exist (a beacon, or the previous settlement's hash)
keeps it from being ground to steer the sample.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cheng_build.compute.orderbook import event_int
from cheng_build.compute.records import AuditSample
from cheng_build.ledger.ids import int32

_sha256 = hashlib.sha256
_FROM = int.from_bytes
_RECEIPT_KEYS = ("status", "receipt_id", "request_id", "task_id", "executor_id", "usage_id")
_RECEIPT_FIELDS = operator.itemgetter(*_RECEIPT_KEYS)


def rate_to_bps(rate: float) -> int:
    """The original's ``rateToBps``: fraction, percent or basis points, clamped to [0, 10000]."""
    if rate <= 1:
        bps = int32(int(rate * 10000 + 0.5))
    elif rate <= 100:
        bps = int32(int(rate * 100 + 0.5))
    else:
        bps = int32(int(rate + 0.5)) if rate < 2**62 else 10000
    return max(0, min(10000, bps))


def score(receipt_id: str, seed: str) -> int:
    """``uint32_be(sha256(receipt_id | seed)[:4]) % 10000``."""
    return _FROM(_sha256(f"{receipt_id}|{seed}".encode()).digest()[:4], "big") % 10000


def selected(receipt_id: str, seed: str, rate_bps: int) -> bool:
    """The decision for one receipt at ``rate_bps``."""
    if rate_bps <= 0:
        return False
    if rate_bps >= 10000:
        return True
    return score(receipt_id, seed) < rate_bps


@dataclass(frozen=True, slots=True)
class SampleParams:
    """The sampling flags, as the original's defaults."""

    epoch: int = -1  # -1: every epoch
    base_rate: float = 0.10
    high_risk_rate: float = 1.0
    risk_window_epochs: int = 3
    seed: str = ""
    auditor: str = "system"


class SampleResult:
    """The selection, in ledger order. The ``audit_sample`` records are built on first use
    (:attr:`samples`): selecting is the hot path, naming and stamping the few selected is not."""

    def __init__(self, rows: list[tuple[Mapping[str, Any], int, str]], p: SampleParams,
                 base_bps: int, high_bps: int, ts: str, new_id: Any) -> None:
        self._rows = rows
        self._p = p
        self._bps = (base_bps, high_bps)
        self._ts = ts
        self._new_id = new_id
        self._samples: tuple[AuditSample, ...] | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def samples(self) -> tuple[AuditSample, ...]:
        if self._samples is None:
            p, (base_bps, high_bps) = self._p, self._bps
            self._samples = tuple(AuditSample(
                sample_id=self._new_id(), receipt_id=_s(ev, "receipt_id"),
                request_id=_s(ev, "request_id"), task_id=_s(ev, "task_id"),
                executor_id=_s(ev, "executor_id"), result_cid=_s(ev, "result_cid"),
                status=_s(ev, "status"), auditor_id=p.auditor, epoch=_epoch(ev), rate_bps=rate,
                base_rate_bps=base_bps, high_risk_rate_bps=high_bps,
                risk_level="high" if reason else "low", risk_reason=reason, seed=p.seed,
                ts=self._ts) for ev, rate, reason in self._rows)
        return self._samples

    @property
    def high_risk_count(self) -> int:
        return sum(1 for _ev, _rate, reason in self._rows if reason)

    def to_json(self) -> dict[str, Any]:
        """The original's output object: count, high_risk_count, samples[]."""
        return {"count": len(self._rows), "high_risk_count": self.high_risk_count,
                "samples": [_sample_json(s) for s in self.samples]}


def _sample_json(s: AuditSample) -> dict[str, Any]:
    ev = s.to_event()
    ev.pop("type")
    return ev


def _epoch(ev: Mapping[str, Any]) -> int:
    return event_int(ev.get("epoch", 0))


def _s(ev: Mapping[str, Any], key: str) -> str:
    v = ev.get(key, "")
    return v if isinstance(v, str) else ""


def _bump(table: dict[str, int], key: str, epoch: int) -> None:
    if key:
        old = table.get(key)
        if old is None or epoch > old:
            table[key] = epoch


def sample(events: Iterable[Mapping[str, Any]], p: SampleParams, *, ts: str,
           new_id: Any) -> SampleResult:
    """Select receipts to audit from ``events`` (the ledger in order).

    ``new_id()`` names each sample (the CLI passes collision-free ids); ``ts`` stamps them.
    Written for speed (the goal is >= 500k receipts/s per core, one SHA-256 per receipt being the
    floor): the scan only keeps the receipts of the epoch and the history; the second pass reads
    a receipt's six fields in one call, hashes only when the rate is neither 0 nor 100%, and
    skips the history checks when the ledger holds no fraud report and no bad receipt.
    """
    base_bps = rate_to_bps(p.base_rate)
    high_bps = rate_to_bps(p.high_risk_rate)
    latest: int | None = None
    bad_by_executor: dict[str, int] = {}
    fraud: dict[str, dict[str, int]] = {"request_id": {}, "receipt_id": {}, "task_id": {},
                                        "executor_id": {}}
    receipts: list[Mapping[str, Any]] = []
    append = receipts.append
    flt = p.epoch
    for ev in events:
        e = ev.get("epoch", 0)
        if type(e) is not int:
            e = _epoch(ev)
        if latest is None or e > latest:
            latest = e
        kind = ev.get("type")
        if kind == "exec_receipt":
            if ev.get("status") != "ok":
                _bump(bad_by_executor, _s(ev, "executor_id"), e)
            if flt < 0 or e == flt:
                append(ev)
        elif kind == "fraud_report":
            for key, table in fraud.items():
                _bump(table, _s(ev, key), e)
    window = p.risk_window_epochs if p.risk_window_epochs > 0 else 3
    window_start = (flt if flt >= 0 else (latest or 0)) - window + 1
    any_history = bool(bad_by_executor) or any(fraud.values())
    f_rec, f_req, f_task, f_ex = (fraud["receipt_id"], fraud["request_id"], fraud["task_id"],
                                  fraud["executor_id"])

    def recent(table: dict[str, int], key: str) -> bool:
        got = table.get(key) if key else None
        return got is not None and got >= window_start

    salt = ("|" + p.seed).encode()
    sha = _sha256
    frm = _FROM
    fields = _RECEIPT_FIELDS
    out: list[tuple[Mapping[str, Any], int, str]] = []
    keep = out.append
    for ev in receipts:
        try:
            # One C call for the six fields (every receipt we or the original wrote has them).
            status, rid, req, task, ex, usage = fields(ev)
        except KeyError:
            status, rid, req, task, ex, usage = (_s(ev, k) for k in _RECEIPT_KEYS)
        if not str is type(rid) is type(req) is type(task) is type(ex) is type(status) \
                is type(usage):
            status, rid, req, task, ex, usage = (_s(ev, k) for k in _RECEIPT_KEYS)
        if status == "ok" and req and task and ex and usage:
            reason = ""
            if any_history:
                if recent(f_rec, rid):
                    reason = "fraud_linked_receipt"
                elif recent(f_req, req):
                    reason = "fraud_linked_request"
                elif recent(f_task, task):
                    reason = "fraud_linked_task"
                elif recent(f_ex, ex):
                    reason = "fraud_linked_executor"
                elif recent(bad_by_executor, ex):
                    reason = "executor_history_bad"
        elif status != "ok":
            reason = "receipt_status_non_ok"
        elif not req:
            reason = "request_missing"
        elif not task:
            reason = "task_missing"
        elif not ex:
            reason = "executor_missing"
        else:
            reason = "usage_missing"
        rate = high_bps if reason else base_bps
        if rate >= 10000 or (rate > 0 and
                             frm(sha(rid.encode() + salt).digest()[:4], "big") % 10000 < rate):
            keep((ev, rate, reason))
    return SampleResult(out, p, base_bps, high_bps, ts, new_id)
