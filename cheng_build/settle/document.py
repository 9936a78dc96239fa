"""The settlement as an ordered document: the original's keys in the original's order (§1.9).

``epoch, storage_total, compute_total, treasury_total, audit_total, counts, payouts{authors,
providers, executors, penalties}, pricing{alpha_map_bps, gpu_core_total, gpu_mem_total,
gpu_alpha_weighted_total}, sampling, trust, reconcile, preview`` (preview only with top > 0).

Table keys (payouts, trust.*_by_*) are sorted in default mode; compat mode emits them in the
original's hash-table slot order so its JSON bytes can match the original's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cheng_build.settle import reconcile as R
from cheng_build.settle.accumulate import Mode, Totals
from cheng_build.settle.errors import LedgerLineError as LedgerError
from cheng_build.settle.fields import ALPHA_MAP_BPS, Num
from cheng_build.settle.hashorder import table_order

Doc = dict[str, Any]
PAYOUT_TABLES = ("authors", "providers", "executors", "penalties")


def _check(value: Num, what: str) -> Num:
    if type(value) is float and not math.isfinite(value):
        raise LedgerError(f"{what} overflows ({value})",
                          why="the amounts in the ledger are too large to add as floats")
    return value


def _table(table: Mapping[str, Num], mode: Mode, what: str, scale: Any = None) -> dict[str, Num]:
    keys = table_order(table) if mode is Mode.COMPAT else sorted(table)
    out: dict[str, Num] = {}
    for k in keys:
        v = table[k]
        out[k] = _check(scale(v) if scale is not None else v, what)
    return out


def _preview(table: dict[str, Num], top: int) -> list[dict[str, Any]]:
    rows = sorted(((k, v) for k, v in table.items() if k and v != 0), key=lambda kv: (-kv[1], kv[0]))
    return [{"id": k, "amount": v} for k, v in rows[:top]]


def _mm(items: list[R.Mismatch], top: int) -> list[dict[str, Any]]:
    return [{"receipt_id": m.receipt_id, "ref_id": m.ref_id, "receipt_epoch": m.receipt_epoch,
             "ref_epoch": m.ref_epoch} for m in items[:top]]


def build(t: Totals, rec: R.Reconcile, top: int) -> Doc:
    """The settlement document of one pass, lists cut to ``top`` (counts taken before the cut)."""
    compat = t.mode is Mode.COMPAT
    count: Any = float if compat else int  # the original's counters-by-key were float tables
    fraud: Any = None if compat else (lambda tenths: tenths / 10)
    payouts = {name: _table(getattr(t, name), t.mode, f"payouts.{name}") for name in PAYOUT_TABLES}
    doc: Doc = {
        "epoch": t.epoch,
        "storage_total": _check(t.storage_total, "storage_total"),
        "compute_total": _check(t.compute_total, "compute_total"),
        "treasury_total": _check(t.treasury_total, "treasury_total"),
        "audit_total": _check(t.audit_total, "audit_total"),
        "counts": dict(t.counts),
        "payouts": payouts,
        "pricing": {
            "alpha_map_bps": dict(ALPHA_MAP_BPS),
            "gpu_core_total": _check(t.gpu_core_total, "gpu_core_total"),
            "gpu_mem_total": _check(t.gpu_mem_total, "gpu_mem_total"),
            "gpu_alpha_weighted_total": _check(t.gpu_alpha_weighted_total, "gpu_alpha_weighted_total"),
        },
        "sampling": {
            "base_rate_bps": t.base_rate_bps,
            "high_risk_rate_bps": t.high_risk_rate_bps,
            "selected_count": t.selected_count,
            "high_risk_selected_count": t.high_risk_selected_count,
        },
        "trust": {
            "audit_sample_count": t.audit_sample_count,
            "fraud_report_count": t.fraud_report_count,
            "storage_proof_count": t.storage_proof_count,
            "storage_proof_missing_count": t.storage_proof_missing_count,
            "fraud_by_executor": _table(t.fraud_by_executor, t.mode, "fraud_by_executor", fraud),
            "storage_ok_by_provider": _table(t.storage_ok_by_provider, t.mode, "trust", count),
            "storage_missing_by_provider": _table(t.storage_missing_by_provider, t.mode, "trust",
                                                  count),
        },
        "reconcile": {
            "limit": top,
            "missing_receipt_count": len(rec.missing_receipt),
            "orphan_receipt_count": len(rec.orphan_receipt),
            "missing_usage_count": len(rec.missing_usage),
            "unreferenced_usage_count": len(rec.unreferenced_usage),
            "bad_receipt_count": len(rec.bad_receipt),
            "request_epoch_mismatch_count": len(rec.request_epoch_mismatch),
            "usage_epoch_mismatch_count": len(rec.usage_epoch_mismatch),
            "missing_receipt": rec.missing_receipt[:top],
            "orphan_receipt": [{"id": i, "ref": r} for i, r in rec.orphan_receipt[:top]],
            "missing_usage": [{"id": i, "ref": r} for i, r in rec.missing_usage[:top]],
            "unreferenced_usage": rec.unreferenced_usage[:top],
            "bad_receipt": [{"receipt_id": a, "request_id": b, "status": c, "error": d}
                            for a, b, c, d in rec.bad_receipt[:top]],
            "request_epoch_mismatch": _mm(rec.request_epoch_mismatch, top),
            "usage_epoch_mismatch": _mm(rec.usage_epoch_mismatch, top),
        },
    }
    if top > 0:
        doc["preview"] = {"limit": top,
                          **{name: _preview(payouts[name], top) for name in PAYOUT_TABLES}}
    return doc


__all__ = ["PAYOUT_TABLES", "Doc", "build"]
