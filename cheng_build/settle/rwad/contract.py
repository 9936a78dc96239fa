"""The original's interface contract check (``verify_rwad_interface_contract``), runnable here.

It never touches the ledger. It writes a fixture v1 batch (the original's fixture settlement,
which shows the keys RWAD consumes: totals, ``counts.exec_*``, ``payouts.*`` and
``trust.*_by_*``), runs the RWAD tool on it with ``--budget:3.0``, applies the result with
``--require-status:finalized`` and checks the result and the ack. One difference: the original's
fixture carried ``"settlement_sha256":"fixture-sha256"``; ours carries the real hash of the fixture
settlement, because our ``apply`` rechecks it (and a real RWAD should too).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cheng_build.core.atomic import atomic_write_bytes
from cheng_build.settle.errors import BridgeError
from cheng_build.settle.rwad.apply import ApplyRequest, apply_result, parse_json_object
from cheng_build.settle.rwad.export import envelope_v1
from cheng_build.settle.rwad.schemas import ACK_V1, BATCH_V1, FINALIZED, RESULT_V1, RWAD_TOOL_REL

FIXTURE_SETTLEMENT = (
    b'{"epoch":9,"storage_total":1.2,"compute_total":4.5,"treasury_total":0.2,"audit_total":0.1,'
    b'"counts":{"exec_request":3,"exec_receipt":3},"payouts":{"authors":{"node:alice":2.1,'
    b'"node:bob":0.6},"providers":{"node:storage-1":1.4},"executors":{"node:exec-1":1.9},'
    b'"penalties":{"node:exec-1":0.3}},"trust":{"fraud_by_executor":{"node:exec-1":0.0},'
    b'"storage_ok_by_provider":{"node:storage-1":1.0},'
    b'"storage_missing_by_provider":{"node:storage-2":0.0}}}')
STANDIN = "standin"  # --rwad-tool:standin runs the stand-in that ships with cheng-build
TOOL_TIMEOUT_S = 120.0


def tool_command(rwad_tool: str | None, rwad_root: str | None) -> list[str]:
    """The RWAD tool's argv: ``--rwad-tool`` (a command line), else ``<rwad-root>/tools/...``.

    Raises:
        BridgeError: neither given, or the tool is not an executable file.
    """
    if rwad_tool == STANDIN:
        return [sys.executable, "-m", "cheng_build.settle.rwad.standin"]
    if rwad_tool:
        argv = shlex.split(rwad_tool)
        exe = argv[0] if argv else ""
        found = shutil.which(exe) if exe else None
        if not found:
            raise BridgeError(f"missing RWAD tool: {exe or rwad_tool!r}",
                              why="it is not an executable file or a command on PATH")
        return [found, *argv[1:]]
    root = rwad_root or os.environ.get("RWAD_CHAIN_ROOT")
    if not root:
        raise BridgeError("missing RWAD tool: give --rwad-tool:<command> or --rwad-root:<dir>",
                          how="--rwad-tool:standin runs the stand-in that ships with cheng-build")
    tool = Path(root) / RWAD_TOOL_REL
    if not (tool.is_file() and os.access(tool, os.X_OK)):
        raise BridgeError(f"missing RWAD tool: {tool}", why="it is not an executable file")
    return [str(tool)]


@dataclass(frozen=True, slots=True)
class ContractRun:
    """Where a contract check left its files."""

    batch: Path
    result: Path
    ack: Path


def verify_contract(command: list[str], root: Path, *, batch_id: str = "cheng-epoch-9",
                    epoch: int = 9, budget: str = "3.0") -> ContractRun:
    """Run the contract check in ``root``.

    Raises:
        BridgeError: the tool failed or timed out, or its result or the ack breaks the contract.
        OSError: ``root`` cannot be written.
    """
    root.mkdir(parents=True, exist_ok=True)
    batch = root / "rwad_batch.json"
    result = root / "rwad_result.json"
    state = root / "rwad_state.json"
    ack = root / "rwad_ack.json"
    for stale in (result, state, ack):
        stale.unlink(missing_ok=True)
    atomic_write_bytes(batch, envelope_v1(FIXTURE_SETTLEMENT, batch_id=batch_id, epoch=epoch,
                                          ledger_path=str((root / "ledger.jsonl").absolute())))
    argv = [*command, f"--batchFile:{batch}", f"--budget:{budget}", f"--stateOut:{state}",
            f"--out:{result}"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise BridgeError(f"RWAD tool timed out after {TOOL_TIMEOUT_S:.0f} s",
                          why=shlex.join(argv)) from None
    except OSError as exc:
        raise BridgeError(f"RWAD tool could not start: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise BridgeError(f"RWAD tool failed (exit {proc.returncode})",
                          why="\n".join(tail) or shlex.join(argv))
    if not result.is_file():
        raise BridgeError(f"RWAD tool wrote no result at {result}")
    res_bytes = result.read_bytes()
    res = parse_json_object(res_bytes, "result file")
    want = {"schema_version": RESULT_V1, "request_schema": BATCH_V1, "batch_id": batch_id}
    for key, value in want.items():
        if res.get(key) != value:
            raise BridgeError(f"result {key} mismatch: got={res.get(key)} expect={value}")
    if type(res.get("settlement_sha256")) is not str:
        raise BridgeError("result has no settlement_sha256")
    ack_bytes = apply_result(res_bytes, batch.read_bytes(),
                             ApplyRequest(result_path=str(result), batch_id=batch_id,
                                          require_status=FINALIZED))
    atomic_write_bytes(ack, ack_bytes)
    got = parse_json_object(ack_bytes, "ack")
    for key, value in {"schema_version": ACK_V1, "request_schema": BATCH_V1,
                       "batch_id": batch_id}.items():
        if got.get(key) != value:  # pragma: no cover - apply builds the ack from checked values
            raise BridgeError(f"ack {key} mismatch: got={got.get(key)} expect={value}")
    return ContractRun(batch=batch, result=result, ack=ack)


__all__ = ["FIXTURE_SETTLEMENT", "STANDIN", "ContractRun", "tool_command", "verify_contract"]
