"""From an audit's fraud record to a quarantine proposal the operator can sign.

The compute and storage audits record fraud as JSON events (``type = "fraud_report"``). When such
a record names the package snapshot whose execution was fraudulent — ``package_id`` and ``cid``
(or ``code_cid``) — ``cheng-registry propose-quarantine --fraud:<record.json>`` turns it into a
proposal::

    {"format": "cheng-quarantine-proposal/1", "package_id": "...", "cid": "...",
     "reason": "fraud report <report_id>: <what>", "source": "fraud_report:<report_id>"}

A fraud record of the compute ledger (:mod:`cheng_build.ledger`) names the execution, not the
package: ``propose-quarantine --ledger:<ledger.jsonl> --report:<report_id>`` follows its
``request_id`` (or its ``receipt_id``'s request) to the ``exec_request``, whose ``package_id`` and
``code_cid`` are the snapshot that ran (:func:`propose_from_ledger`).

A proposal changes nothing by itself: a person (the operator) reviews it and signs it with
``cheng-registry quarantine --proposal:<file> --priv:<operator key>``, which records ``source``
in the signed ``quarantine`` line. This is the seed's A1.9 "needs a person's confirmation".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cheng_build.core.errors import InputError

PROPOSAL_FORMAT = "cheng-quarantine-proposal/1"
_MAX_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed quarantine of one snapshot."""

    package_id: str
    cid: str
    reason: str
    source: str | None

    def as_dict(self) -> dict[str, Any]:
        """The proposal document."""
        out: dict[str, Any] = {"format": PROPOSAL_FORMAT, "package_id": self.package_id,
                               "cid": self.cid, "reason": self.reason}
        if self.source:
            out["source"] = self.source
        return out


def _read_json(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data = fh.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise InputError(f"{what} {path} is larger than {_MAX_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{what} {path} is not JSON", why=str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return doc


def _text(doc: dict[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = doc.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def propose_from_fraud(path: str | os.PathLike[str]) -> Proposal:
    """The quarantine proposal of a fraud record.

    Raises:
        InputError: not a fraud record, or it names no package snapshot.
    """
    doc = _read_json(path, "fraud record")
    if doc.get("type", "fraud_report") != "fraud_report":
        raise InputError(f"{path} is not a fraud record",
                         why=f"its type is {str(doc.get('type'))[:40]!r}, not fraud_report")
    package = _text(doc, "package_id")
    cid = _text(doc, "cid", "code_cid")
    if package is None or cid is None:
        raise InputError(f"fraud record {path} names no package snapshot",
                         why="it needs package_id and cid (or code_cid) of the code that ran",
                         how="quarantine by hand with cheng-registry quarantine --package: --cid:")
    report = _text(doc, "report_id") or "(no id)"
    what = _text(doc, "reason", "detail", "kind") or "fraud recorded by an audit"
    return Proposal(package, cid, f"fraud report {report}: {what}"[:1000],
                    f"fraud_report:{report}"[:1000])


def propose_from_ledger(ledger: str | os.PathLike[str], report_id: str) -> Proposal:
    """The quarantine proposal of fraud report ``report_id`` in a compute ledger.

    Raises:
        InputError: no such report, or its execution names no package snapshot.
        LedgerError: the ledger has a malformed line.
    """
    from pathlib import Path

    from cheng_build.ledger.log import iter_events

    path = Path(ledger)
    if not path.is_file():
        raise InputError(f"ledger {path} not found", how="pass --ledger:<ledger.jsonl>")
    fraud: dict[str, Any] | None = None
    requests: dict[str, dict[str, Any]] = {}
    receipts: dict[str, str] = {}
    for ev in iter_events(path):
        kind = ev.get("type")
        if kind == "fraud_report" and ev.get("report_id") == report_id:
            fraud = dict(ev)
        elif kind == "exec_request" and isinstance(ev.get("request_id"), str):
            requests[str(ev["request_id"])] = dict(ev)
        elif kind == "exec_receipt" and isinstance(ev.get("receipt_id"), str):
            receipts[str(ev["receipt_id"])] = str(ev.get("request_id") or "")
    if fraud is None:
        raise InputError(f"no fraud report {report_id} in {path}",
                         how="list them with cheng-storage's ledger tools; pass its report_id")
    req_id = fraud.get("request_id") or receipts.get(str(fraud.get("receipt_id") or ""))
    req = requests.get(str(req_id)) if req_id else None
    package = _text(req, "package_id") if req else None
    cid = _text(req, "code_cid") if req else None
    if package is None or cid is None:
        raise InputError(f"fraud report {report_id} names no package snapshot",
                         why="its execution request (" + (str(req_id) if req_id else "none") +
                             ") carries no package_id and code_cid",
                         how="quarantine by hand with cheng-registry quarantine --package: --cid:")
    what = _text(fraud, "reason") or "fraud recorded by an audit"
    return Proposal(package, cid, f"fraud report {report_id}: {what}"[:1000],
                    f"fraud_report:{report_id}"[:1000])


def load_proposal(path: str | os.PathLike[str]) -> Proposal:
    """Read a proposal written by :func:`propose_from_fraud`.

    Raises:
        InputError: not such a proposal.
    """
    doc = _read_json(path, "proposal")
    if doc.get("format") != PROPOSAL_FORMAT:
        raise InputError(f"{path} is not a quarantine proposal",
                         why=f"format is not {PROPOSAL_FORMAT}")
    package, cid, reason = _text(doc, "package_id"), _text(doc, "cid"), _text(doc, "reason")
    if package is None or cid is None or reason is None:
        raise InputError(f"proposal {path} lacks package_id, cid or reason")
    return Proposal(package, cid, reason, _text(doc, "source"))


__all__ = ["PROPOSAL_FORMAT", "Proposal", "load_proposal", "propose_from_fraud",
           "propose_from_ledger"]
