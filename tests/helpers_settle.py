"""Ledger events for the settlement tests, in the original's key order (reference §1.3-§1.7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def lease(author: str = "node:alice", provider: str = "node:store-1", *, royalty: Any = 2.9296875e-05,
          treasury: Any = 7.32421875e-06, prov: Any = 0.00020751953125, lease_id: str = "",
          epoch: int | None = None, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "lease", "mode": "local", "lease_id": lease_id, "package_id": "pkg://demo/text",
        "author_id": author, "provider_id": provider, "bytes": 1048576, "duration_days": 30,
        "replicas": 1, "price_per_gb_month": 0.25, "royalty_rate": 0.12, "treasury_rate": 0.03,
        "start_ts": "1773912345", "storage_cost": 0.000244140625, "royalty": royalty,
        "treasury": treasury, "provider": prov}
    if epoch is not None:
        ev["epoch"] = epoch
    ev.update(extra)
    return ev


def compute(usage_id: str = "", *, author: str = "node:alice", executor: str = "node:exec-1",
            epoch: int = 1, royalty: Any = 0.3927, treasury: Any = 0.098175, executor_amount: Any = 2.781625,
            gpu_ms: int = 110000, gpu_mem_bytes: int = 11811160064, workload: str = "infer",
            price_gpu_ms: Any = 2e-05, price_gpu_mem_gb: Any = 0.15, **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "compute", "mode": "local", "usage_id": usage_id, "task_id": "job-gpu-2",
        "package_id": "pkg://cheng/fs", "author_id": author, "executor_id": executor, "cpu_ms": 0,
        "mem_bytes": 0, "io_bytes": 0, "gpu_ms": gpu_ms, "gpu_mem_bytes": gpu_mem_bytes,
        "gpu_count": 1, "gpu_type": "A10G", "workload_kind": workload, "price_cpu_ms": 0.0,
        "price_mem_gb": 0.0, "price_io_gb": 0.0, "price_gpu_ms": price_gpu_ms,
        "price_gpu_mem_gb": price_gpu_mem_gb, "royalty_rate": 0.12, "treasury_rate": 0.03,
        "epoch": epoch, "start_ts": "1773912345", "total": 3.2725, "royalty": royalty,
        "treasury": treasury, "executor": executor_amount}
    ev.update(extra)
    return ev


def request(request_id: str, *, epoch: int = 1, task: str = "job-1", **extra: Any) -> dict[str, Any]:
    return {**{"type": "exec_request", "mode": "local", "request_id": request_id, "task_id": task,
            "package_id": "pkg://cheng/fs", "author_id": "node:alice", "requester_id": "node:app-1",
            "executor_id": "node:exec-1", "input_cid": "cid://input", "code_cid": "cid://code",
            "args_cid": "cid://args", "max_cpu_ms": 2000, "max_mem_bytes": 0, "max_io_bytes": 0,
            "max_gpu_ms": 0, "max_gpu_mem_bytes": 0, "max_gpu_count": 0, "price_cpu_ms": 1e-06,
            "price_mem_gb": 0.1, "price_io_gb": 0.05, "price_gpu_ms": 0.0, "price_gpu_mem_gb": 0.0,
            "expected_cost_nano": 0, "selected_fraud_score": 0.0,
            "selected_bandwidth_out_bytes": 0, "selection_source": "explicit", "epoch": epoch,
            "ts": "1773912345", "signature": ""}, **extra}


def receipt(receipt_id: str, request_id: str, usage_id: str = "", *, status: str = "ok",
            error: str = "", epoch: int = 1) -> dict[str, Any]:
    return {"type": "exec_receipt", "mode": "local", "receipt_id": receipt_id,
            "request_id": request_id, "task_id": "job-1", "executor_id": "node:exec-1",
            "result_cid": "cid://result", "usage_id": usage_id, "status": status, "error": error,
            "proof_cid": "", "epoch": epoch, "ts": "1773912345", "signature": ""}


def audit(audit_id: str = "", *, status: str = "bad", penalty: Any = 0.1, executor: str = "node:exec-1",
          epoch: int = 1) -> dict[str, Any]:
    return {"type": "audit", "audit_id": audit_id, "task_id": "job-1", "executor_id": executor,
            "auditor_id": "node:auditor-1", "result_cid": "cid://result", "status": status,
            "penalty": penalty, "epoch": epoch, "note": "", "ts": "1773912345"}


def sample(sample_id: str = "", *, risk: str = "high", epoch: int = 1, base: int = 1000,
           high: int = 10000) -> dict[str, Any]:
    return {"type": "audit_sample", "sample_id": sample_id, "receipt_id": "receipt-1",
            "request_id": "req-1", "task_id": "job-1", "executor_id": "node:exec-1",
            "result_cid": "cid://result", "status": "ok", "auditor_id": "system", "epoch": epoch,
            "rate_bps": high if risk == "high" else base, "base_rate_bps": base,
            "high_risk_rate_bps": high, "risk_level": risk, "risk_reason": "", "seed": "round-1",
            "ts": "1773912345"}


def fraud(report_id: str = "", *, severity: str = "high", executor: str = "node:exec-1",
          epoch: int = 1) -> dict[str, Any]:
    return {"type": "fraud_report", "report_id": report_id, "task_id": "job-1",
            "request_id": "req-1", "receipt_id": "", "executor_id": executor,
            "reporter_id": "node:auditor-1", "reason": "bad-output", "evidence_cid": "",
            "severity": severity, "epoch": epoch, "ts": "1773912345"}


def proof(proof_id: str = "", *, status: str = "ok", provider: str = "node:store-1", epoch: int = 1,
          **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "storage_proof", "proof_id": proof_id, "provider_id": provider,
        "package_id": "pkg://demo/text", "cid": "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
        "bytes": 5 if status == "ok" else 0, "status": status, "epoch": epoch, "ts": "1773912345"}
    ev.update(extra)
    return ev


def write_legacy(path: Path, events: list[dict[str, Any]]) -> Path:
    """Lines as the original wrote them: compact JSON, no chain."""
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    return path
