"""Audits by re-execution: run a receipt's request again and compare what it claimed.

Builds are reproducible (same inputs, same Merkle root), so an honest result is a CID anyone can
recompute. ``recompute_audit``:

1. finds the receipt and its request in the ledger (an audit of a receipt that does not exist is
   an error, nothing is written), and checks the receipt's signature when it has one;
2. runs the request ``replicas`` times: on the given executors (each a fresh, signed request
   sent over libp2p, recorded like any other) or here, in a metered child process;
3. the majority result CID decides (BOINC-style quorum; with one replica, that replica): no
   majority is ``inconclusive`` and accuses nobody;
4. compares the claimed ``result_cid`` with it, and the claimed usage with the recomputed one
   (CPU time and memory): a claim below half of what the recompute measured, or above twice
   it, is mis-metering (metering noise is far below a factor of two; small figures, under
   :data:`CPU_FLOOR_MS` and :data:`MEM_FLOOR_BYTES`, are never judged);
5. records an ``audit`` (``ok`` / ``bad`` / ``inconclusive``) and, when bad, a ``fraud_report``
   naming both results, in one atomic append.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cheng_build.compute.ids import new_id
from cheng_build.compute.ledgerio import ComputeIndex
from cheng_build.compute.records import Audit, ExecRequest, FraudReport, Receipt, Usage
from cheng_build.core.errors import ChengError, NotFoundError

CPU_FLOOR_MS = 100
MEM_FLOOR_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Replica:
    """One recomputation."""

    where: str  # "local" or the executor's address
    status: str
    result_cid: str
    cpu_ms: int = 0
    mem_bytes: int = 0
    error: str = ""


@dataclass(slots=True)
class AuditOutcome:
    """The audit written, the fraud report (when bad), and the replicas behind them."""

    audit: Audit
    fraud: FraudReport | None = None
    replicas: list[Replica] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"audit": self.audit.to_event(),
                "fraud": self.fraud.to_event() if self.fraud else None,
                "replicas": [{k: getattr(r, k) for k in r.__dataclass_fields__}
                             for r in self.replicas],
                "reasons": self.reasons}


def majority(results: list[str], replicas: int) -> str | None:
    """The result CID more than half of ``replicas`` agree on, or None."""
    if not results:
        return None
    cid, votes = Counter(results).most_common(1)[0]
    return cid if votes * 2 > replicas else None


def metering_problems(claimed: Usage | None, cpu_ms: int, mem_bytes: int) -> list[str]:
    """How a claimed usage disagrees with a recomputed measurement (empty: it agrees)."""
    if claimed is None:
        return []
    out = []
    for name, have, got, floor in (("cpu_ms", claimed.cpu_ms, cpu_ms, CPU_FLOOR_MS),
                                   ("mem_bytes", claimed.mem_bytes, mem_bytes, MEM_FLOOR_BYTES)):
        if got >= floor and have * 2 < got:
            out.append(f"under-metering: {name} claimed {have}, recomputed {got}")
        elif have >= floor and have > 2 * got + floor:
            out.append(f"over-metering: {name} claimed {have}, recomputed {got}")
    return out


def _recompute(root: Path, ledger: Path, req: ExecRequest, where: str, auditor: str,
               timeout: float) -> Replica:
    if where == "local":
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.cas.cid import parse_cid
        from cheng_build.compute.node import run_local

        store = Blockstore(root)
        for what, cid in (("code", req.code_cid), ("input", req.input_cid)):
            if not store.has(parse_cid(cid)):
                raise NotFoundError(f"{what} {cid} is not in {root}",
                                    how="recompute on an executor (--peer:<multiaddr>), or put "
                                        "the code and input in this root first")
        res = run_local(root, req, timeout=timeout)
        return Replica("local", res.status, res.result_cid, res.measured.cpu_ms,
                       res.measured.mem_bytes, res.error)
    from cheng_build.compute.client import ExecClient

    again = replace(req, request_id=new_id("req"), requester_id=auditor, executor_id="",
                    ts=str(int(time.time())), signature="", timeout_s=int(timeout))
    try:
        outcome = ExecClient(root, ledger).submit(where, again, wait=True, timeout=timeout)
    except ChengError as exc:
        return Replica(where, "err", "", error=exc.what)
    r, u = outcome.receipt, outcome.usage
    if r is None or u is None:
        return Replica(where, "err", "", error="no receipt")
    return Replica(where, r.status, r.result_cid, u.cpu_ms, u.mem_bytes, r.error)


def recompute_audit(root: Path, ledger: Path, receipt_id: str, *, auditor: str,
                    peers: list[str], replicas: int = 1, penalty: int = 0,
                    epoch: int | None = None, timeout: float = 300) -> AuditOutcome:
    """Audit ``receipt_id`` by recomputing it (see the module doc).

    Raises:
        NotFoundError: the receipt or its request is not in the ledger; code or input missing
            for a local recompute.
    """
    from cheng_build.compute.receipts import check_receipt
    from cheng_build.ledger.log import Ledger

    idx = ComputeIndex.load(ledger)
    receipt: Receipt = idx.receipt(receipt_id)
    req = idx.requests.get(receipt.request_id)
    if req is None:
        raise NotFoundError(f"request {receipt.request_id} of receipt {receipt_id} not found in "
                            "ledger", why="without the request there is nothing to recompute")
    usage = idx.usages.get(receipt.usage_id)
    reasons: list[str] = []
    if receipt.signature.startswith("ed25519:"):
        try:
            check_receipt(receipt, request=req, usage=usage)
        except ChengError as exc:
            reasons.append(f"bad receipt: {exc.what}")
    wheres = [peers[i % len(peers)] for i in range(replicas)] if peers else ["local"] * replicas
    reps = [_recompute(root, ledger, req, w, auditor, timeout) for w in wheres]
    ok_results = [r.result_cid for r in reps if r.status == "ok"]
    expected = majority(ok_results, replicas)
    if expected is None and all(r.status != "ok" for r in reps) and receipt.status != "ok":
        expected = ""  # every recompute failed as the receipt says: the failure is honest
    if expected is None:
        status = "inconclusive"
        reasons.append(f"no majority among {replicas} replica(s): "
                       + ", ".join(r.result_cid or f"{r.status}:{r.error}" for r in reps))
    else:
        if receipt.status == "ok" and receipt.result_cid != expected:
            reasons.append(f"result mismatch: claimed {receipt.result_cid or '(none)'}, "
                           f"recomputed {expected or '(failure)'}")
        agreeing = [r for r in reps if r.result_cid == expected and r.status == "ok"]
        if agreeing and receipt.status == "ok":
            cpu = sorted(r.cpu_ms for r in agreeing)[len(agreeing) // 2]
            mem = sorted(r.mem_bytes for r in agreeing)[len(agreeing) // 2]
            reasons.extend(metering_problems(usage, cpu, mem))
        status = "bad" if reasons else "ok"
    now = str(int(time.time()))
    if epoch is None:
        epoch = receipt.epoch
    audit = Audit(audit_id=new_id("audit"), task_id=receipt.task_id,
                  executor_id=receipt.executor_id, auditor_id=auditor,
                  result_cid=receipt.result_cid, status=status,
                  penalty=penalty if status == "bad" else 0, epoch=epoch,
                  note="; ".join(reasons)[:1000] or f"recomputed {replicas}x: match",
                  ts=now, receipt_id=receipt.receipt_id, request_id=receipt.request_id,
                  expected_cid=expected or "")
    fraud = None
    events = [audit.to_event()]
    if status == "bad":
        reason = "result-mismatch" if any(r.startswith("result mismatch") for r in reasons) else \
            "mis-metering" if any("metering" in r for r in reasons) else "bad-receipt"
        fraud = FraudReport(report_id=new_id("fraud"), task_id=receipt.task_id,
                            request_id=receipt.request_id, receipt_id=receipt.receipt_id,
                            executor_id=receipt.executor_id, reporter_id=auditor, reason=reason,
                            evidence_cid=expected or "", severity="high", epoch=epoch, ts=now,
                            result_cid=receipt.result_cid, expected_cid=expected or "")
        events.append(fraud.to_event())
    Ledger(ledger).append_many(events)
    return AuditOutcome(audit, fraud, reps, reasons)
