"""``cis run demo-compute-settle``: the closed loop runs and every step did something."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers_compute import PY, env, ledger_events

pytestmark = [pytest.mark.network]


def test_demo_compute_settle_runs_the_whole_loop(tmp_path: Path) -> None:
    wd = tmp_path / "demo"
    res = subprocess.run([PY, "-m", "cheng_build.cli.cis", "run", "demo-compute-settle",
                          f"--workdir:{wd}"], capture_output=True, text=True, env=env(),
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Succeeded" in res.stdout + res.stderr
    evs = ledger_events(wd / "root" / "ledger.jsonl")
    kinds = [e["type"] for e in evs]
    for kind in ("exec_request", "exec_claim", "compute", "exec_receipt", "audit_sample",
                 "audit", "fraud_report"):
        assert kind in kinds, kind
    audits = {(a["executor_id"], a["status"]) for a in evs if a["type"] == "audit"}
    assert audits == {("node:exec-1", "ok"), ("node:exec-cheat", "bad")}
    from cheng_build.ledger.log import verify_ledger

    report = verify_ledger(wd / "root" / "ledger.jsonl")
    assert report.ok
    # settlement (cheng_build/cli/settle_demo_steps.py): settle, signed v2 batch, RWAD, ack
    import json
    import tomllib

    settled = tomllib.loads((wd / "root" / "settlement-epoch-1.toml").read_text())
    assert settled["payouts"]["penalties"]["node:exec-cheat"] > 0
    batch = json.loads((wd / "root" / "rwad-batch-epoch-1.json").read_text())
    assert batch["ledger"]["head"] == report.head and batch["schema_version"].endswith("/v2")
    ack = json.loads((wd / "root" / "rwad-ack-epoch-1.json").read_text())
    assert ack["ok"] and ack["status"] == "finalized"
    assert ack["settlement_sha256"] == batch["settlement_sha256"]


def test_demo_refuses_a_foreign_workdir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("mine")
    res = subprocess.run([PY, "-m", "cheng_build.cli.cis", "run", "demo-compute-settle",
                          f"--workdir:{tmp_path}"], capture_output=True, text=True, env=env(),
                         timeout=120)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0].endswith("is not empty")
    assert (tmp_path / "precious.txt").read_text() == "mine"
