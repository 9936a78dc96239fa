"""The reconcile lists as CSV, the original's columns and row order (reference §1.9).

Header ``kind,receipt_id,request_id,usage_id,ref_id,receipt_epoch,ref_epoch,status,error``; rows
grouped missing_receipt, orphan_receipt, missing_usage, unreferenced_usage, bad_receipt,
request_epoch_mismatch, usage_epoch_mismatch, each cut to ``--top``. Epoch -1 is an empty cell. A
cell is quoted only when it holds ``,`` ``"`` CR or LF (quotes doubled); rows end with LF; no BOM.
"""

from __future__ import annotations

from cheng_build.settle.reconcile import Mismatch, Reconcile

HEADER = "kind,receipt_id,request_id,usage_id,ref_id,receipt_epoch,ref_epoch,status,error"


def _cell(s: str) -> str:
    if any(c in s for c in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


def _epoch(e: int | None) -> str:
    return "" if e is None or e == -1 else str(e)


def _row(kind: str, rec: str = "", req: str = "", usage: str = "", ref: str = "",
         rec_epoch: int | None = None, ref_epoch: int | None = None, status: str = "",
         error: str = "") -> str:
    return ",".join([kind, _cell(rec), _cell(req), _cell(usage), _cell(ref), _epoch(rec_epoch),
                     _epoch(ref_epoch), _cell(status), _cell(error)])


def to_csv(rec: Reconcile, top: int) -> bytes:
    """CSV bytes of the reconcile lists (each list cut to ``top``)."""
    rows = [HEADER]
    rows += [_row("missing_receipt", req=r, ref=r) for r in rec.missing_receipt[:top]]
    rows += [_row("orphan_receipt", rec=i, req=r, ref=r) for i, r in rec.orphan_receipt[:top]]
    rows += [_row("missing_usage", rec=i, usage=u, ref=u) for i, u in rec.missing_usage[:top]]
    rows += [_row("unreferenced_usage", usage=u, ref=u) for u in rec.unreferenced_usage[:top]]
    rows += [_row("bad_receipt", rec=a, req=b, ref=b, status=c, error=d)
             for a, b, c, d in rec.bad_receipt[:top]]

    def mm(kind: str, items: list[Mismatch], *, usage: bool) -> list[str]:
        return [_row(kind, rec=m.receipt_id, req="" if usage else m.ref_id,
                     usage=m.ref_id if usage else "", ref=m.ref_id, rec_epoch=m.receipt_epoch,
                     ref_epoch=m.ref_epoch) for m in items[:top]]

    rows += mm("request_epoch_mismatch", rec.request_epoch_mismatch, usage=False)
    rows += mm("usage_epoch_mismatch", rec.usage_epoch_mismatch, usage=True)
    return ("\n".join(rows) + "\n").encode("utf-8")


__all__ = ["HEADER", "to_csv"]
