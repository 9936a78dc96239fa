"""Compat writing: the original's length ids and float money (``--compat``).

The original's ids are ``<prefix>-<len(payload)>`` over the fields below (reference section 1.1);
they collide routinely, which is why default mode never writes them. Floats print as Python's
shortest repr, since the original's float text is unknowable from its source.
"""

from __future__ import annotations

from cheng_build.compute.records import (
    Audit,
    AuditSample,
    ExecRequest,
    FraudReport,
    Receipt,
    Record,
    Usage,
)
from cheng_build.ledger.ids import int32, legacy_length_id
from cheng_build.ledger.money import NANO


def _f(nano: int) -> str:
    return repr(nano / NANO)


def legacy_id(r: Record) -> str:
    """The id the original would have given ``r``."""
    if isinstance(r, Usage):
        parts: list[object] = [r.task_id, r.package_id, r.author_id, r.executor_id, int32(r.cpu_ms),
                               int32(r.mem_bytes), int32(r.io_bytes), int32(r.gpu_ms),
                               int32(r.gpu_mem_bytes), r.gpu_count, r.gpu_type, r.workload_kind,
                               r.epoch, r.start_ts]
        return legacy_length_id("usage", parts)
    if isinstance(r, ExecRequest):
        parts = [r.task_id, r.package_id, r.author_id, r.requester_id, r.executor_id, r.input_cid,
                 r.code_cid, r.args_cid, int32(r.max_cpu_ms), int32(r.max_mem_bytes),
                 int32(r.max_io_bytes), int32(r.max_gpu_ms), int32(r.max_gpu_mem_bytes),
                 r.max_gpu_count, r.gpu_type, r.workload_kind, _f(r.price_cpu_ms),
                 _f(r.price_mem_gb), _f(r.price_io_gb), _f(r.price_gpu_ms), _f(r.price_gpu_mem_gb),
                 int32(r.expected_cost_nano), repr(r.selected_fraud_score),
                 int32(r.selected_bandwidth_out_bytes), r.selection_source, r.epoch, r.ts]
        return legacy_length_id("req", parts)
    if isinstance(r, Receipt):
        return legacy_length_id("receipt", [r.request_id, r.task_id, r.executor_id, r.result_cid,
                                            r.usage_id, r.status, r.epoch, r.ts])
    if isinstance(r, Audit):
        return legacy_length_id("audit", [r.task_id, r.executor_id, r.auditor_id, r.result_cid,
                                          r.status, r.epoch, r.ts])
    if isinstance(r, AuditSample):
        return legacy_length_id("sample", [r.receipt_id, r.request_id, r.task_id, r.executor_id,
                                           r.auditor_id, r.epoch, r.ts])
    if isinstance(r, FraudReport):
        return legacy_length_id("fraud", [r.task_id, r.request_id, r.receipt_id, r.executor_id,
                                          r.reporter_id, r.reason, r.severity, r.epoch, r.ts])
    raise TypeError(f"no legacy id for {type(r).__name__}")
