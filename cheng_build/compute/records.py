"""The compute events of ``ledger.jsonl``: one frozen dataclass per event type.

Each record reads every line the original tooling wrote (reference sections 1.4-1.7): its reader
is as forgiving as the original's (a missing key takes its default, an int field given a float is
truncated, a float field accepts an int, ``epoch`` defaults to 0), and keys it does not know are
ignored. Money fields (prices, rates, totals, penalty) are held as integer nano units, as the
ledger stores them in default mode (:mod:`cheng_build.ledger.money`); the original's float lines
are converted on read, and :meth:`Record.to_compat_event` writes floats again. ``to_event``
writes the original's keys in the original's order, then our additions, so a compat reader of
the original sees what it expects.

Key order per type (``?`` = written only when non-empty; ``+`` = our additions, after them):

``exec_request``  type, mode?, request_id, task_id, package_id, author_id, requester_id,
    executor_id?, input_cid, code_cid, args_cid, max_cpu_ms, max_mem_bytes, max_io_bytes,
    max_gpu_ms, max_gpu_mem_bytes, max_gpu_count, gpu_type?, workload_kind?, price_cpu_ms,
    price_mem_gb, price_io_gb, price_gpu_ms, price_gpu_mem_gb, expected_cost_nano,
    selected_fraud_score, selected_bandwidth_out_bytes, selection_source?, epoch, ts, signature;
    + caps?, timeout_s? (an ``executor_id`` left empty makes it an open request)
``compute``  type, mode?, usage_id, task_id, package_id, author_id, executor_id, cpu_ms,
    mem_bytes, io_bytes, gpu_ms, gpu_mem_bytes, gpu_count, gpu_type?, workload_kind?,
    price_cpu_ms, price_mem_gb, price_io_gb, price_gpu_ms, price_gpu_mem_gb, royalty_rate,
    treasury_rate, epoch, start_ts, total, royalty, treasury, executor;
    + request_id?, source? (how it was measured: cgroup2, rusage, python, declared)
``exec_receipt``  type, mode?, receipt_id, request_id, task_id, executor_id, result_cid,
    usage_id, status, error, proof_cid, epoch, ts, signature; + pub_key?, request_digest?,
    usage_digest?
``audit``  type, audit_id, task_id, executor_id, auditor_id, result_cid, status, penalty, epoch,
    note, ts; + receipt_id?, request_id?, expected_cid?
``audit_sample``  type, sample_id, receipt_id, request_id, task_id, executor_id, result_cid,
    status, auditor_id, epoch, rate_bps, base_rate_bps, high_risk_rate_bps, risk_level,
    risk_reason, seed, ts
``fraud_report``  type, report_id, task_id, request_id, receipt_id, executor_id, reporter_id,
    reason, evidence_cid, severity, epoch, ts; + result_cid?, expected_cid?

The six event records share one lenient reader and one writer (:class:`Record`); each record
lists its fields once, in key order, and :func:`record` derives the reader/writer table from them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from cheng_build.ledger.money import NANO, MoneyError, to_nano

# field kinds: how the original's forgiving getters read a value
_STR, _INT, _FLOAT, _MONEY = "str", "int", "float", "money"
_OPT = "?"  # written only when non-empty / non-zero
_EXTRA = "+"  # our addition (written after the original's keys, only when non-empty)
_KIND, _FLAGS = "kind", "flags"  # field metadata keys

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A line is not an event of the expected type."""


def _get_str(obj: Mapping[str, Any], key: str) -> str:
    v = obj.get(key)
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return ""
    if isinstance(v, int | float):
        return str(v)  # a number where text was expected: its text (forgiving, like the original)
    return ""


def _get_int(obj: Mapping[str, Any], key: str, default: int = 0) -> int:
    v = obj.get(key)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return int(v)  # getIntField truncates a float
    return default


def _get_money(obj: Mapping[str, Any], key: str, nano: bool) -> int:
    """Money in nano units: a chained line (it has ``prev``) holds an int already; the original's
    lines hold floats in whole units (a value that is no number reads as 0, as the original's
    forgiving getter)."""
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return 0
    if nano:
        return v if isinstance(v, int) else (int(v) if math.isfinite(v) else 0)
    try:
        return to_nano(v, what=key)
    except MoneyError:
        return 0


def _get_float(obj: Mapping[str, Any], key: str) -> float:
    v = obj.get(key)
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) else 0.0
    return 0.0


def money() -> Any:
    """A money field: integer nano units in the record, read from the original's float units."""
    return field(default=0, metadata={_KIND: _MONEY})


def optional(default: str | int) -> Any:
    """A field of the original's written only when non-empty (``?`` in the table above)."""
    return field(default=default, metadata={_FLAGS: _OPT})


def extra(default: str | int) -> Any:
    """Our addition: written after the original's keys, only when non-empty (``+``)."""
    return field(default=default, metadata={_FLAGS: _EXTRA})


@dataclass(frozen=True, slots=True)
class Record:
    """Base of every event record: one lenient reader and one writer for all six, driven by
    ``SPEC``, which :func:`record` derives from the subclass's fields (their order is the key
    order). ``mode`` is kept apart: only some types write it, always first."""

    TYPE: ClassVar[str] = ""
    ID: ClassVar[str] = ""
    # (key, kind, flags) in the original's order; flags: "" always written, "?" when non-empty,
    # "+" our addition written when non-empty.
    SPEC: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    mode: str = field(default="", kw_only=True)

    @classmethod
    def from_event(cls: type[R], obj: Mapping[str, Any], *, money_nano: bool | None = None) -> R:
        """Read an event the way the original's reader does (never fails on a value).

        Money is read as nano units when ``money_nano`` is true, or (default) when the line is
        chained (has ``prev``, the ledger's default mode); else as the original's whole units.

        Raises:
            RecordError: ``obj`` is not a mapping of this record's ``type``.
        """
        if not isinstance(obj, Mapping) or obj.get("type") != cls.TYPE:
            got = obj.get("type") if isinstance(obj, Mapping) else type(obj).__name__
            raise RecordError(f"not a {cls.TYPE} event (type {str(got)[:40]!r})")
        values: dict[str, Any] = {}
        nano = ("prev" in obj) if money_nano is None else money_nano
        for key, kind, _flags in cls.SPEC:
            if kind == _STR:
                values[key] = _get_str(obj, key)
            elif kind == _INT:
                values[key] = _get_int(obj, key)
            elif kind == _MONEY:
                values[key] = _get_money(obj, key, nano)
            else:
                values[key] = _get_float(obj, key)
        values["mode"] = _get_str(obj, "mode")
        return cls(**values)

    def to_event(self) -> dict[str, Any]:
        """The ledger line's object, keys in the original's order, our additions after."""
        out: dict[str, Any] = {"type": self.TYPE}
        mode = str(getattr(self, "mode", ""))
        if self.has_mode() and mode:
            out["mode"] = mode
        for key, _kind, flags in self.SPEC:
            value = getattr(self, key)
            if flags and value in ("", 0, 0.0):
                continue
            out[key] = value
        return out

    def to_compat_event(self) -> dict[str, Any]:
        """As :meth:`to_event` with money as the original's floats (whole units)."""
        out = self.to_event()
        for key, kind, _flags in self.SPEC:
            if kind == _MONEY and key in out:
                out[key] = out[key] / NANO
        return out

    @classmethod
    def has_mode(cls) -> bool:
        return cls.TYPE in ("exec_request", "compute", "exec_receipt")

    @property
    def id(self) -> str:
        """The record's id (``request_id``, ``usage_id``, ...)."""
        return str(getattr(self, self.ID))

    def replace(self: R, **changes: Any) -> R:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of :meth:`to_event` (what a receipt binds)."""
        text = json.dumps(self.to_event(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_KINDS = {"str": _STR, "int": _INT, "float": _FLOAT}


def record(cls: type[R]) -> type[R]:
    """Derive ``cls.SPEC`` from its dataclass fields: the kind from the type (or ``money()``),
    the flags from ``optional()`` / ``extra()``; ``mode`` is not part of it."""
    cls.SPEC = tuple((f.name, f.metadata.get(_KIND, _KINDS[str(f.type)]), f.metadata.get(_FLAGS, ""))
                     for f in fields(cls) if f.name != "mode")
    return cls


@record
@dataclass(frozen=True, slots=True)
class ExecRequest(Record):
    """``exec_request``: what to run (code and input CIDs), limits, prices, and for whom."""

    TYPE: ClassVar[str] = "exec_request"
    ID: ClassVar[str] = "request_id"

    request_id: str = ""
    task_id: str = ""
    package_id: str = ""
    author_id: str = ""
    requester_id: str = ""
    executor_id: str = optional("")
    input_cid: str = ""
    code_cid: str = ""
    args_cid: str = ""
    max_cpu_ms: int = 0
    max_mem_bytes: int = 0
    max_io_bytes: int = 0
    max_gpu_ms: int = 0
    max_gpu_mem_bytes: int = 0
    max_gpu_count: int = 0
    gpu_type: str = optional("")
    workload_kind: str = optional("")
    price_cpu_ms: int = money()
    price_mem_gb: int = money()
    price_io_gb: int = money()
    price_gpu_ms: int = money()
    price_gpu_mem_gb: int = money()
    expected_cost_nano: int = 0
    selected_fraud_score: float = 0.0
    selected_bandwidth_out_bytes: int = 0
    selection_source: str = optional("")
    epoch: int = 0
    ts: str = ""
    signature: str = ""
    caps: str = extra("")
    timeout_s: int = extra(0)

    @property
    def is_open(self) -> bool:
        """No executor named: any capable executor may claim it."""
        return not self.executor_id

    def needed_caps(self) -> set[str]:
        """Capabilities an executor must have (``cpu`` always; ``cuda`` for GPU work)."""
        caps = {c.strip() for c in self.caps.split(",") if c.strip()}
        if self.max_gpu_ms > 0 or self.max_gpu_count > 0:
            caps.add("cuda")
        return caps or {"cpu"}


@record
@dataclass(frozen=True, slots=True)
class Usage(Record):
    """``compute``: measured usage of one task and its price split."""

    TYPE: ClassVar[str] = "compute"
    ID: ClassVar[str] = "usage_id"

    usage_id: str = ""
    task_id: str = ""
    package_id: str = ""
    author_id: str = ""
    executor_id: str = ""
    cpu_ms: int = 0
    mem_bytes: int = 0
    io_bytes: int = 0
    gpu_ms: int = 0
    gpu_mem_bytes: int = 0
    gpu_count: int = 0
    gpu_type: str = optional("")
    workload_kind: str = optional("")
    price_cpu_ms: int = money()
    price_mem_gb: int = money()
    price_io_gb: int = money()
    price_gpu_ms: int = money()
    price_gpu_mem_gb: int = money()
    royalty_rate: int = money()
    treasury_rate: int = money()
    epoch: int = 0
    start_ts: str = ""
    total: int = money()
    royalty: int = money()
    treasury: int = money()
    executor: int = money()
    request_id: str = extra("")
    source: str = extra("")


@record
@dataclass(frozen=True, slots=True)
class Receipt(Record):
    """``exec_receipt``: the executor's signed statement of what a request produced."""

    TYPE: ClassVar[str] = "exec_receipt"
    ID: ClassVar[str] = "receipt_id"

    receipt_id: str = ""
    request_id: str = ""
    task_id: str = ""
    executor_id: str = ""
    result_cid: str = ""
    usage_id: str = ""
    status: str = ""
    error: str = ""
    proof_cid: str = ""
    epoch: int = 0
    ts: str = ""
    signature: str = ""
    pub_key: str = extra("")
    request_digest: str = extra("")
    usage_digest: str = extra("")


@record
@dataclass(frozen=True, slots=True)
class Audit(Record):
    """``audit``: an auditor's verdict on a task's result, with a penalty when it is bad."""

    TYPE: ClassVar[str] = "audit"
    ID: ClassVar[str] = "audit_id"

    audit_id: str = ""
    task_id: str = ""
    executor_id: str = ""
    auditor_id: str = ""
    result_cid: str = ""
    status: str = ""
    penalty: int = money()
    epoch: int = 0
    note: str = ""
    ts: str = ""
    receipt_id: str = extra("")
    request_id: str = extra("")
    expected_cid: str = extra("")


@record
@dataclass(frozen=True, slots=True)
class AuditSample(Record):
    """``audit_sample``: a receipt the sampling formula selected for audit."""

    TYPE: ClassVar[str] = "audit_sample"
    ID: ClassVar[str] = "sample_id"

    sample_id: str = ""
    receipt_id: str = ""
    request_id: str = ""
    task_id: str = ""
    executor_id: str = ""
    result_cid: str = ""
    status: str = ""
    auditor_id: str = ""
    epoch: int = 0
    rate_bps: int = 0
    base_rate_bps: int = 0
    high_risk_rate_bps: int = 0
    risk_level: str = ""
    risk_reason: str = ""
    seed: str = ""
    ts: str = ""


@record
@dataclass(frozen=True, slots=True)
class FraudReport(Record):
    """``fraud_report``: a claim that an executor cheated, tied to a request or receipt."""

    TYPE: ClassVar[str] = "fraud_report"
    ID: ClassVar[str] = "report_id"

    report_id: str = ""
    task_id: str = ""
    request_id: str = ""
    receipt_id: str = ""
    executor_id: str = ""
    reporter_id: str = ""
    reason: str = ""
    evidence_cid: str = ""
    severity: str = ""
    epoch: int = 0
    ts: str = ""
    result_cid: str = extra("")
    expected_cid: str = extra("")


RECORDS: dict[str, type[Record]] = {r.TYPE: r for r in (ExecRequest, Usage, Receipt, Audit,
                                                         AuditSample, FraudReport)}


def parse_event(obj: Mapping[str, Any], *, money_nano: bool | None = None) -> Record | None:
    """The record of a compute event, or None for another event type (lease, proof, ...)."""
    cls = RECORDS.get(obj.get("type")) if isinstance(obj, Mapping) else None  # type: ignore[arg-type]
    return cls.from_event(obj, money_nano=money_nano) if cls is not None else None


def field_names(cls: type[Record]) -> list[str]:
    """The dataclass fields of ``cls`` (for tests and the CLI)."""
    return [f.name for f in fields(cls)]
