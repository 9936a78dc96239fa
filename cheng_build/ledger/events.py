"""Event types of the ledger, the key order each is written in, and which field is its id.

The key orders are the original tool's (reference §1.3-§1.8), so a line we write reads like one it
wrote, key for key. Our writer adds fields the original lacked (``epoch`` on leases, ``cid`` and
``expires_ts`` from a v2 token, a proof's ``challenges``...) *after* the original's keys, and the
chain fields ``seq`` and ``prev`` last of all: a reader of the original format sees its keys in
its order and can ignore the rest.

Money: in an event with a ``prev`` key (written by this ledger in default mode) every field named
in :data:`MONEY_FIELDS` is an integer count of nano-units (1e-9 of a unit, see
:mod:`cheng_build.ledger.money`); in a line without one (the original's, or compat mode) it is the
original's float. Read money with :func:`cheng_build.ledger.money.read_money`, never directly.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every event type the original tool wrote; ours writes the same names."""

    LEASE = "lease"
    COMPUTE = "compute"
    EXEC_REQUEST = "exec_request"
    EXEC_RECEIPT = "exec_receipt"
    AUDIT = "audit"
    AUDIT_SAMPLE = "audit_sample"
    FRAUD_REPORT = "fraud_report"
    STORAGE_PROOF = "storage_proof"


# Keys in the original's order, ``type`` first (reference §1.3-§1.7). ``mode`` is written only when
# non-empty; keys marked optional there are simply omitted when absent from the event.
EVENT_KEYS: dict[str, tuple[str, ...]] = {
    "lease": (
        "type", "mode", "lease_id", "package_id", "author_id", "provider_id", "bytes",
        "duration_days", "replicas", "price_per_gb_month", "royalty_rate", "treasury_rate",
        "start_ts", "storage_cost", "royalty", "treasury", "provider",
    ),
    "compute": (
        "type", "mode", "usage_id", "task_id", "package_id", "author_id", "executor_id", "cpu_ms",
        "mem_bytes", "io_bytes", "gpu_ms", "gpu_mem_bytes", "gpu_count", "gpu_type",
        "workload_kind", "price_cpu_ms", "price_mem_gb", "price_io_gb", "price_gpu_ms",
        "price_gpu_mem_gb", "royalty_rate", "treasury_rate", "epoch", "start_ts", "total",
        "royalty", "treasury", "executor",
    ),
    "exec_request": (
        "type", "mode", "request_id", "task_id", "package_id", "author_id", "requester_id",
        "executor_id", "input_cid", "code_cid", "args_cid", "max_cpu_ms", "max_mem_bytes",
        "max_io_bytes", "max_gpu_ms", "max_gpu_mem_bytes", "max_gpu_count", "gpu_type",
        "workload_kind", "price_cpu_ms", "price_mem_gb", "price_io_gb", "price_gpu_ms",
        "price_gpu_mem_gb", "expected_cost_nano", "selected_fraud_score",
        "selected_bandwidth_out_bytes", "selection_source", "epoch", "ts", "signature",
    ),
    "exec_receipt": (
        "type", "mode", "receipt_id", "request_id", "task_id", "executor_id", "result_cid",
        "usage_id", "status", "error", "proof_cid", "epoch", "ts", "signature",
    ),
    "audit": (
        "type", "audit_id", "task_id", "executor_id", "auditor_id", "result_cid", "status",
        "penalty", "epoch", "note", "ts",
    ),
    "audit_sample": (
        "type", "sample_id", "receipt_id", "request_id", "task_id", "executor_id", "result_cid",
        "status", "auditor_id", "epoch", "rate_bps", "base_rate_bps", "high_risk_rate_bps",
        "risk_level", "risk_reason", "seed", "ts",
    ),
    "fraud_report": (
        "type", "report_id", "task_id", "request_id", "receipt_id", "executor_id", "reporter_id",
        "reason", "evidence_cid", "severity", "epoch", "ts",
    ),
    "storage_proof": (
        "type", "proof_id", "provider_id", "package_id", "cid", "bytes", "status", "proof_hash",
        "epoch", "note", "ts",
    ),
}

# The id field of each type and the prefix of its ids (reference §1.1 table). A type we do not
# know gets a plain ``id`` field whose prefix is the type name.
ID_FIELDS: dict[str, tuple[str, str]] = {
    "lease": ("lease_id", "lease"),
    "compute": ("usage_id", "usage"),
    "exec_request": ("request_id", "req"),
    "exec_receipt": ("receipt_id", "receipt"),
    "audit": ("audit_id", "audit"),
    "audit_sample": ("sample_id", "sample"),
    "fraud_report": ("report_id", "fraud"),
    "storage_proof": ("proof_id", "proof"),
    "exec_claim": ("claim_id", "claim"),  # ours: an executor's claim of an open request
}

# Fields that hold money (or a rate applied to money): integer nano-units in default mode, floats in
# the original's lines. Scores (fraud, reputation) are not money and stay floats.
MONEY_FIELDS: dict[str, frozenset[str]] = {
    "lease": frozenset({"price_per_gb_month", "royalty_rate", "treasury_rate", "storage_cost",
                        "royalty", "treasury", "provider"}),
    "compute": frozenset({"price_cpu_ms", "price_mem_gb", "price_io_gb", "price_gpu_ms",
                          "price_gpu_mem_gb", "royalty_rate", "treasury_rate", "total", "royalty",
                          "treasury", "executor"}),
    "exec_request": frozenset({"price_cpu_ms", "price_mem_gb", "price_io_gb", "price_gpu_ms",
                               "price_gpu_mem_gb"}),
    "audit": frozenset({"penalty"}),
    "storage_proof": frozenset({"penalty"}),
}

# Chain fields our writer adds at the end of every default-mode line.
CHAIN_KEYS: tuple[str, ...] = ("seq", "prev")


def id_field(event_type: str) -> tuple[str, str]:
    """``(id key, id prefix)`` for an event type; unknown types use ``("id", <type>)``."""
    return ID_FIELDS.get(event_type, ("id", event_type))


def ordered(event: dict[str, object]) -> dict[str, object]:
    """The event with its keys in the written order: the original's, then new ones, chain last.

    An empty ``mode`` is dropped, as the original omits it.
    """
    known = EVENT_KEYS.get(str(event.get("type", "")), ("type",))
    out: dict[str, object] = {}
    for key in known:
        if key in event and not (key == "mode" and event[key] in ("", None)):
            out[key] = event[key]
    for key, value in event.items():
        if key not in out and key not in CHAIN_KEYS and not (key == "mode" and value in ("", None)):
            out[key] = value
    for key in CHAIN_KEYS:
        if key in event:
            out[key] = event[key]
    return out
