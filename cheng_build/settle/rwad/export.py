"""``export``: a settlement batch for RWAD (reference §1.10).

v1 (``cheng-rwad-settlement/v1``) is the original envelope byte for byte::

    {"schema_version":"<schema>","source":"cheng-lang/cheng_rwad_bridge.sh","batch_id":"<id>",
     "epoch":<n>,"ledger_path":"<absolute path>","settlement_sha256":"<hex>","settlement":<S>}\\n

where ``<S>`` is the settle JSON bytes verbatim and ``settlement_sha256`` is the sha256 of exactly
those bytes, so a verifier rechecks the hash on the substring between ``"settlement":`` and the
final ``}\\n`` (re-serialising would break it). The original escaped only ``\\`` and ``"`` in
``batch_id`` and ``ledger_path``; so do we, and refuse control characters it would have written
raw (invalid JSON).

v2 (``cheng-rwad-settlement/v2``; the seed names it, the original never wrote it) is one JCS
object (RFC 8785, :mod:`.jcs`) that adds what the chain needs to trust a batch on its own::

    {"batch_id", "epoch", "ledger": {"head", "lines", "chained", "legacy", "event_counts"},
     "money_unit": "nano" | "float", "schema_version", "settlement": {...},
     "settlement_sha256": sha256(JCS(settlement)), "signer": {"id", "pub_key"},
     "source": "cheng-build/cheng-rwad-bridge", "signature": "ed25519:..."}

``signature`` signs ``b"cheng-rwad-settlement/v2\\n" + JCS(the object without "signature")``.
No absolute path leaves the machine in v2. Either version holds only ids, CIDs, counts, totals and
hashes (seed 000 §A0): never package bodies or source.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from cheng_build.core.errors import UsageError
from cheng_build.settle.accumulate import Mode
from cheng_build.settle.api import Settlement
from cheng_build.settle.rwad import jcs
from cheng_build.settle.rwad.schemas import BATCH_V1, BATCH_V2, SIGN_DOMAIN_V2, SOURCE_V1, SOURCE_V2
from cheng_build.trust.keys import KeyPair

_CONTROL = re.compile(r"[\x00-\x1f]")


def chain_safe(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the only free text a settlement can hold, a bad receipt's ``error`` (written
    by an executor), replaced by its sha256: a batch carries ids, CIDs, counts, totals and hashes.

    With ``--top:0`` (the export default) the lists are empty and nothing changes.
    """
    bad = doc["reconcile"]["bad_receipt"]
    if not any(row["error"] for row in bad):
        return doc
    out = dict(doc)
    out["reconcile"] = {**doc["reconcile"], "bad_receipt": [
        {**row, "error": hashlib.sha256(row["error"].encode("utf-8", "surrogateescape")).hexdigest()
         if row["error"] else ""} for row in bad]}
    return out


def default_batch_id(epoch: int) -> str:
    """``cheng-epoch-<n>``, or ``cheng-epoch-all`` for every epoch (-1), as the original."""
    return "cheng-epoch-all" if epoch < 0 else f"cheng-epoch-{epoch}"


def _v1_escape(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise UsageError(f"{what} holds a control character",
                         why="a v1 batch copies it into JSON unescaped, as the original did")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def envelope_v1(settlement_json: bytes, *, batch_id: str, epoch: int, ledger_path: str) -> bytes:
    """The v1 batch bytes around ``settlement_json`` (the settle JSON, no trailing newline)."""
    sha = hashlib.sha256(settlement_json).hexdigest()
    prefix = (f'{{"schema_version":"{BATCH_V1}","source":"{SOURCE_V1}",'
              f'"batch_id":"{_v1_escape(batch_id, "batch id")}","epoch":{epoch},'
              f'"ledger_path":"{_v1_escape(ledger_path, "ledger path")}",'
              f'"settlement_sha256":"{sha}","settlement":')
    return prefix.encode("utf-8") + settlement_json + b"}\n"


_MARK = b',"settlement":'


def split_v1(data: bytes) -> bytes | None:
    """The settlement bytes of a v1 batch (between ``"settlement":`` and the closing ``}``).

    ``None`` when the bytes are not shaped like a v1 envelope. The first ``,"settlement":`` is
    the envelope's own key: the string fields before it cannot hold an unescaped quote.
    """
    i = data.find(_MARK)
    body = data[:-1] if data.endswith(b"\n") else data
    if i < 0 or not body.endswith(b"}"):
        return None
    return body[i + len(_MARK):-1]


def v2_unsigned(s: Settlement, *, batch_id: str, signer: KeyPair) -> dict[str, Any]:
    """The v2 batch object before its signature."""
    doc = chain_safe(s.doc)
    return {
        "schema_version": BATCH_V2,
        "source": SOURCE_V2,
        "batch_id": batch_id,
        "epoch": s.totals.epoch,
        "ledger": {"head": s.scan.head, "lines": s.scan.lines, "chained": s.scan.chained,
                   "legacy": s.scan.legacy, "event_counts": dict(s.totals.event_counts)},
        "money_unit": "float" if s.totals.mode is Mode.COMPAT else "nano",
        "settlement_sha256": hashlib.sha256(jcs.canonical(doc)).hexdigest(),
        "settlement": doc,
        "signer": {"id": signer.author_id, "pub_key": signer.pub_key},
    }


def envelope_v2(s: Settlement, *, batch_id: str, signer: KeyPair) -> bytes:
    """The signed v2 batch bytes (JCS, one line)."""
    body = v2_unsigned(s, batch_id=batch_id, signer=signer)
    body["signature"] = signer.sign(SIGN_DOMAIN_V2 + jcs.canonical(body))
    return jcs.canonical(body) + b"\n"


__all__ = ["default_batch_id", "envelope_v1", "envelope_v2", "split_v1", "v2_unsigned"]
