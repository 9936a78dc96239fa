"""Settlement bytes: compact JSON, TOML and YAML, the same bytes for the same ledger everywhere.

JSON is the original's shape: compact, keys in document order, no trailing newline (the CLI adds
one on stdout only). Numbers: integers in decimal; floats as Python's shortest round-trip
``repr`` (the original's float digits are unknowable from its source, §1.1), which is the same on
every IEEE-754 machine. TOML and YAML follow the original's section order (§1.9: audit_total
before treasury_total; ``pricing`` lists alpha_map_bps after the totals in TOML, first in YAML).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cheng_build.settle.document import PAYOUT_TABLES, Doc

# Characters YAML forbids raw even inside double quotes (and DEL, which TOML forbids): written
# as \uXXXX; JSON's own escaping already covers U+0000-U+001F.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def quote(s: str) -> str:
    """A double-quoted string valid in JSON, TOML and YAML alike."""
    q = json.dumps(s, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", q)


def number(v: Any, *, yaml: bool = False) -> str:
    """Decimal integer, or the float's shortest repr (YAML 1.1 needs a dot before an exponent)."""
    if type(v) is float:
        r = repr(v)
        if yaml and "e" in r and "." not in r:
            r = r.replace("e", ".0e", 1)
        return r
    return str(int(v))


def _json(v: Any, out: list[str]) -> None:
    t = type(v)
    if t is dict:
        out.append("{")
        first = True
        for k, x in v.items():
            if not first:
                out.append(",")
            first = False
            out.append(quote(k))
            out.append(":")
            _json(x, out)
        out.append("}")
    elif t is list:
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _json(x, out)
        out.append("]")
    elif t is str:
        out.append(quote(v))
    else:
        out.append(number(v))


def to_json(doc: Doc) -> bytes:
    """Compact JSON of ``doc`` in its key order, no trailing newline."""
    out: list[str] = []
    _json(doc, out)
    return "".join(out).encode("utf-8")


_HEAD = ("epoch", "storage_total", "compute_total", "audit_total", "treasury_total")
_PRICING = ("gpu_core_total", "gpu_mem_total", "gpu_alpha_weighted_total")
_TRUST_COUNTS = ("audit_sample_count", "fraud_report_count", "storage_proof_count",
                 "storage_proof_missing_count")
_TRUST_TABLES = ("fraud_by_executor", "storage_ok_by_provider", "storage_missing_by_provider")
_RECON_COUNTS = ("limit", "missing_receipt_count", "orphan_receipt_count", "missing_usage_count",
                 "unreferenced_usage_count", "bad_receipt_count", "request_epoch_mismatch_count",
                 "usage_epoch_mismatch_count")
_RECON_ROWS = ("orphan_receipt", "missing_usage", "bad_receipt", "request_epoch_mismatch",
               "usage_epoch_mismatch")


def _scalar(v: Any, *, yaml: bool = False) -> str:
    return quote(v) if type(v) is str else number(v, yaml=yaml)


def to_toml(doc: Doc) -> bytes:
    """The TOML layout of the original (headers printed even for empty tables)."""
    o: list[str] = [f"{k} = {_scalar(doc[k])}" for k in _HEAD]

    def section(header: str, items: dict[str, Any], *, quoted: bool = False) -> None:
        o.append("")
        o.append(f"[{header}]")
        o.extend(f"{quote(k) if quoted else k} = {_scalar(v)}" for k, v in items.items())

    def rows(header: str, items: list[dict[str, Any]]) -> None:
        for row in items:
            o.append("")
            o.append(f"[[{header}]]")
            # bad_receipt writes error only when there is one, as the original did
            o.extend(f"{k} = {_scalar(v)}" for k, v in row.items() if not (k == "error" and v == ""))

    section("counts", doc["counts"])
    for name in PAYOUT_TABLES:
        section(f"payouts.{name}", doc["payouts"][name], quoted=True)
    section("pricing", {k: doc["pricing"][k] for k in _PRICING})
    section("pricing.alpha_map_bps", doc["pricing"]["alpha_map_bps"])
    section("sampling", doc["sampling"])
    section("trust", {k: doc["trust"][k] for k in _TRUST_COUNTS})
    for name in _TRUST_TABLES:
        section(f"trust.{name}", doc["trust"][name], quoted=True)
    rec = doc["reconcile"]
    section("reconcile", {k: rec[k] for k in _RECON_COUNTS})
    for name in ("missing_receipt", "unreferenced_usage"):
        o.append(f"{name} = [{', '.join(quote(s) for s in rec[name])}]")
    for name in _RECON_ROWS:
        rows(f"reconcile.{name}", rec[name])
    if "preview" in doc:
        pv = doc["preview"]
        section("preview", {"limit": pv["limit"]})
        for name in PAYOUT_TABLES:
            rows(f"preview.{name}", pv[name])
    return ("\n".join(o) + "\n").encode("utf-8")


def to_yaml(doc: Doc) -> bytes:
    """The YAML layout of the original: two-space indent, ``{}``/``[]`` for empty ones."""
    o: list[str] = [f"{k}: {_scalar(doc[k], yaml=True)}" for k in _HEAD]

    def mapping(name: str, items: dict[str, Any], indent: int, *, quoted: bool = False) -> None:
        pad = " " * indent
        if not items:
            o.append(f"{pad}{name}: {{}}")
            return
        o.append(f"{pad}{name}:")
        o.extend(f"{pad}  {quote(k) if quoted else k}: {_scalar(v, yaml=True)}"
                 for k, v in items.items())

    def seq(name: str, items: list[Any], indent: int) -> None:
        pad = " " * indent
        if not items:
            o.append(f"{pad}{name}: []")
            return
        o.append(f"{pad}{name}:")
        for item in items:
            if type(item) is dict:
                first = True
                for k, v in item.items():
                    o.append(f"{pad}  {'- ' if first else '  '}{k}: {_scalar(v, yaml=True)}")
                    first = False
            else:
                o.append(f"{pad}  - {_scalar(item, yaml=True)}")

    mapping("counts", doc["counts"], 0)
    o.append("payouts:")
    for name in PAYOUT_TABLES:
        mapping(name, doc["payouts"][name], 2, quoted=True)
    o.append("pricing:")
    mapping("alpha_map_bps", doc["pricing"]["alpha_map_bps"], 2)
    o.extend(f"  {k}: {_scalar(doc['pricing'][k], yaml=True)}" for k in _PRICING)
    mapping("sampling", doc["sampling"], 0)
    o.append("trust:")
    o.extend(f"  {k}: {_scalar(doc['trust'][k], yaml=True)}" for k in _TRUST_COUNTS)
    for name in _TRUST_TABLES:
        mapping(name, doc["trust"][name], 2, quoted=True)
    rec = doc["reconcile"]
    o.append("reconcile:")
    o.extend(f"  {k}: {_scalar(rec[k], yaml=True)}" for k in _RECON_COUNTS)
    for name in ("missing_receipt", "unreferenced_usage", *_RECON_ROWS):
        seq(name, rec[name], 2)
    if "preview" in doc:
        pv = doc["preview"]
        o.append("preview:")
        o.append(f"  limit: {pv['limit']}")
        for name in PAYOUT_TABLES:
            seq(name, pv[name], 2)
    return ("\n".join(o) + "\n").encode("utf-8")


FORMATS = {"json": to_json, "toml": to_toml, "yaml": to_yaml}


def render(doc: Doc, fmt: str) -> bytes:
    """``doc`` as ``json``, ``toml`` or ``yaml`` (``yml`` is ``yaml``)."""
    return FORMATS["yaml" if fmt == "yml" else fmt](doc)


__all__ = ["FORMATS", "number", "quote", "render", "to_json", "to_toml", "to_yaml"]
