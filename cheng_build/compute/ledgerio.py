"""The compute events of a ledger: look-ups by id, and the checks that need the whole ledger.

Reading goes through :func:`cheng_build.ledger.log.iter_events` (streaming, every line the original
wrote). The checks here run where the data is used: a fraud report must name a request or receipt
that exists and agrees (reference section 1.6), an audit must name a receipt that exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheng_build.compute.records import ExecRequest, Receipt, Usage
from cheng_build.core.errors import NotFoundError, PolicyError
from cheng_build.ledger.log import iter_events

SEVERITY_WEIGHT = {"low": 0.1, "medium": 0.5, "high": 1.0}


def events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event of the ledger at ``path`` (a missing file is an empty ledger)."""
    yield from iter_events(path)


@dataclass(slots=True)
class ComputeIndex:
    """Requests, receipts and usages of a ledger by id (one pass)."""

    requests: dict[str, ExecRequest] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    usages: dict[str, Usage] = field(default_factory=dict)
    receipts_by_request: dict[str, list[Receipt]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ComputeIndex:
        idx = cls()
        for ev in events(path):
            t = ev.get("type")
            if t == "exec_request":
                q = ExecRequest.from_event(ev)
                idx.requests[q.request_id] = q
            elif t == "exec_receipt":
                r = Receipt.from_event(ev)
                idx.receipts[r.receipt_id] = r
                idx.receipts_by_request.setdefault(r.request_id, []).append(r)
            elif t == "compute":
                u = Usage.from_event(ev)
                idx.usages[u.usage_id] = u
        return idx

    def receipt(self, receipt_id: str) -> Receipt:
        """Raises: NotFoundError: no such receipt in the ledger."""
        r = self.receipts.get(receipt_id)
        if r is None:
            raise NotFoundError(f"receipt {receipt_id} not found in ledger",
                                how="list receipts with: grep exec_receipt <root>/ledger.jsonl")
        return r

    def request(self, request_id: str) -> ExecRequest:
        """Raises: NotFoundError: no such request in the ledger."""
        q = self.requests.get(request_id)
        if q is None:
            raise NotFoundError(f"request {request_id} not found in ledger")
        return q


def check_fraud_target(idx: ComputeIndex, *, task: str, executor: str, request_id: str,
                       receipt_id: str) -> str:
    """The original's fraud validation (reference 1.6); returns the request id to record.

    Raises:
        UsageError-like PolicyError: neither given; NotFoundError: not in the ledger;
        PolicyError: the task or executor does not match.
    """
    if not request_id and not receipt_id:
        raise PolicyError("missing --request or --receipt",
                          why="a fraud report must name the request or receipt it is about",
                          how="pass --receipt:<receipt id> (or --request:<request id>)")
    if receipt_id:
        r = idx.receipts.get(receipt_id)
        if r is None:
            raise NotFoundError("receipt not found in ledger", why=f"no exec_receipt {receipt_id}")
        if request_id and request_id != r.request_id:
            raise PolicyError("request/receipt mismatch",
                              why=f"receipt {receipt_id} is for {r.request_id}, not {request_id}")
        request_id = r.request_id
        if r.task_id != task:
            raise PolicyError("task/receipt mismatch", why=f"the receipt's task is {r.task_id}")
        if r.executor_id != executor:
            raise PolicyError("executor/receipt mismatch",
                              why=f"the receipt's executor is {r.executor_id}")
        return request_id
    q = idx.requests.get(request_id)
    if q is None:
        raise NotFoundError("request not found in ledger", why=f"no exec_request {request_id}")
    if q.task_id != task:
        raise PolicyError("request/task mismatch", why=f"the request's task is {q.task_id}")
    recs = idx.receipts_by_request.get(request_id, [])
    if recs and not any(r.executor_id == executor for r in recs):
        raise PolicyError("request/executor mismatch",
                          why=f"no receipt of {request_id} is from {executor}")
    return request_id
