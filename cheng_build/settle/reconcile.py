"""Reconcile requests, receipts and usage of one settlement (reference §1.9 "Reconcile").

- ``missing_receipt``: request ids that no receipt names;
- ``orphan_receipt`` ``{id, ref}``: receipts whose request is not known (an empty request id too);
- ``missing_usage`` ``{id, ref}``: receipts naming a usage id no ``compute`` event has;
- ``unreferenced_usage``: usage ids no receipt names;
- ``bad_receipt``: receipts whose status is not ``ok``;
- ``request_epoch_mismatch`` / ``usage_epoch_mismatch``: a receipt in another epoch than the
  request or usage it names (only visible when settling all epochs).

Lists are sorted (strings byte-wise, pairs by (id, ref), bad receipts by (receipt, request,
status), mismatches by (receipt, ref)); counts are taken before the ``--top`` cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReconcileState:
    """What the streaming pass keeps per request, receipt and usage of the settled epoch(s)."""

    requests: dict[str, int] = field(default_factory=dict)  # request_id -> epoch
    receipts: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> (req, usage, epoch)
    usages: dict[str, int] = field(default_factory=dict)  # usage_id -> epoch
    bad: list[tuple[str, str, str, str]] = field(default_factory=list)  # (rec, req, status, error)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A receipt whose epoch differs from the epoch of what it names."""

    receipt_id: str
    ref_id: str
    receipt_epoch: int
    ref_epoch: int


@dataclass(frozen=True, slots=True)
class Reconcile:
    """The full (uncut) reconcile lists, sorted."""

    missing_receipt: list[str]
    orphan_receipt: list[tuple[str, str]]
    missing_usage: list[tuple[str, str]]
    unreferenced_usage: list[str]
    bad_receipt: list[tuple[str, str, str, str]]
    request_epoch_mismatch: list[Mismatch]
    usage_epoch_mismatch: list[Mismatch]


def build(state: ReconcileState) -> Reconcile:
    """Cross-check the tables of one pass."""
    requested: set[str] = set()
    used: set[str] = set()
    orphan: list[tuple[str, str]] = []
    missing_usage: list[tuple[str, str]] = []
    req_mm: list[Mismatch] = []
    use_mm: list[Mismatch] = []
    for rec, (req, usage, epoch) in state.receipts.items():
        requested.add(req)
        req_epoch = state.requests.get(req) if req else None
        if req_epoch is None:
            orphan.append((rec, req))
        elif req_epoch != epoch:
            req_mm.append(Mismatch(rec, req, epoch, req_epoch))
        if usage:
            used.add(usage)
            use_epoch = state.usages.get(usage)
            if use_epoch is None:
                missing_usage.append((rec, usage))
            elif use_epoch != epoch:
                use_mm.append(Mismatch(rec, usage, epoch, use_epoch))

    def mm_key(m: Mismatch) -> tuple[str, str]:
        return (m.receipt_id, m.ref_id)

    return Reconcile(
        missing_receipt=sorted(r for r in state.requests if r not in requested),
        orphan_receipt=sorted(orphan),
        missing_usage=sorted(missing_usage),
        unreferenced_usage=sorted(u for u in state.usages if u not in used),
        bad_receipt=sorted(state.bad, key=lambda b: (b[0], b[1], b[2])),
        request_epoch_mismatch=sorted(req_mm, key=mm_key),
        usage_epoch_mismatch=sorted(use_mm, key=mm_key),
    )


__all__ = ["Mismatch", "Reconcile", "ReconcileState", "build"]
