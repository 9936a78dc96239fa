"""A stand-in for RWAD's ``rwad_cheng_points_settle.sh`` (the real tool is private).

    python -m cheng_build.settle.rwad.standin --batchFile:<f> --budget:<float>
        [--stateIn:<f>] --stateOut:<f> --out:<f>

It does what the contract needs RWAD to do, and nothing of RWAD's economics: it checks the
batch's own integrity (v1 sha on the exact settlement bytes; v2 sha and signature), refuses a batch
id its state has already settled (status ``rejected``), splits ``--budget`` into points in
proportion to each party's payout, and writes a compact ``rwad-cheng-settlement-result/v1`` that
echoes the batch id, epoch and sha, with a nested ``state`` object that has its own ``status`` key
*before* the top-level one (the case the original's first-occurrence grep read wrongly).

Test knobs (environment): ``RWAD_STANDIN_STATUS`` forces the status (``pending``...),
``RWAD_STANDIN_BATCH_ID`` / ``RWAD_STANDIN_SHA`` / ``RWAD_STANDIN_EPOCH`` replace what the result
echoes, so tests can play a misbehaving chain end to end.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cheng_build.core.atomic import atomic_write_bytes

_FLAGS = ("batchFile", "budget", "stateIn", "stateOut", "out")


_ARG = re.compile(r"^--([A-Za-z]+)[:=](.*)$", re.DOTALL)


def _parse(argv: Sequence[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for arg in argv:
        m = _ARG.match(arg)
        if m is None or m.group(1) not in _FLAGS:
            raise ValueError(f"unknown argument {arg!r}")
        opts[m.group(1)] = m.group(2)
    for key in ("batchFile", "stateOut", "out"):
        if not opts.get(key):
            raise ValueError(f"missing --{key}")
    return opts


def _points(settlement: dict[str, Any], budget: float) -> dict[str, dict[str, float]]:
    payouts = settlement.get("payouts") or {}
    parts = {g: {k: float(v) for k, v in (payouts.get(g) or {}).items() if float(v) > 0}
             for g in ("authors", "providers", "executors")}
    total = sum(sum(t.values()) for t in parts.values())
    return {g: {k: (budget * v / total if total else 0.0) for k, v in sorted(t.items())}
            for g, t in parts.items()}


def run(argv: Sequence[str]) -> int:
    from cheng_build.settle.rwad.apply import check_batch, parse_json_object
    from cheng_build.settle.rwad.schemas import RESULT_V1

    opts = _parse(argv)
    budget = float(opts.get("budget") or "2.0")
    data = Path(opts["batchFile"]).read_bytes()
    batch = check_batch(data)
    env = parse_json_object(data, "batch file")
    state: dict[str, Any] = {"seq": 0, "settled": [], "points": {}}
    if opts.get("stateIn") and Path(opts["stateIn"]).exists():
        state = parse_json_object(Path(opts["stateIn"]).read_bytes(), "state file")
    replay = batch.batch_id in state.get("settled", [])
    points = _points(env.get("settlement") or {}, budget) if not replay else {}
    balances: dict[str, float] = dict(state.get("points", {}))
    for table in points.values():
        for who, p in table.items():
            balances[who] = balances.get(who, 0.0) + p
    new_state = {"seq": int(state.get("seq", 0)) + (0 if replay else 1),
                 "settled": [*state.get("settled", []), *([] if replay else [batch.batch_id])],
                 "points": dict(sorted(balances.items()))}
    settlement = env.get("settlement") or {}
    result = {
        "schema_version": RESULT_V1,
        "request_schema": batch.schema,
        "batch_id": os.environ.get("RWAD_STANDIN_BATCH_ID", batch.batch_id),
        "epoch": int(os.environ.get("RWAD_STANDIN_EPOCH", batch.epoch)),
        "state": {"status": "rolled" if not replay else "unchanged", "seq": new_state["seq"]},
        "status": os.environ.get("RWAD_STANDIN_STATUS", "rejected" if replay else "finalized"),
        "settlement_sha256": os.environ.get("RWAD_STANDIN_SHA", batch.settlement_sha256),
        "totals": {"budget": budget,
                   "points_total": sum(sum(t.values()) for t in points.values()),
                   **{k: settlement.get(k, 0) for k in ("storage_total", "compute_total",
                                                          "treasury_total", "audit_total")}},
        "points": points,
    }
    atomic_write_bytes(opts["stateOut"], json.dumps(new_state, separators=(",", ":")).encode() + b"\n")
    atomic_write_bytes(opts["out"], json.dumps(result, separators=(",", ":")).encode() + b"\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from cheng_build.core.errors import ChengError

    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except ValueError as exc:
        print(f"rwad-standin: {exc}", file=sys.stderr)
        return 2
    except ChengError as exc:
        print(f"rwad-standin: {exc.what}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"rwad-standin: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
