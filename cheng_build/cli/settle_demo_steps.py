"""Settlement steps of the ``demo-compute-settle`` DAG (:mod:`cheng_build.cis.targets.compute_demo`).

Run as ``python -m cheng_build.cli.settle_demo_steps <step>`` in the demo's work directory, after
the compute steps wrote epoch 1 of ``root/ledger.jsonl``. Each step runs the real command, then
checks that it did something (the original demo's verifier only grepped key names, so it passed
on an empty ledger):

  settle    ``cheng-storage settle --epoch:1 --format:toml --top:5 --reconcile-csv``: compute was
            settled, the cheat's penalty moved to the treasury, the money balances
  export    ``cheng-rwad-bridge export`` of a signed v2 batch (a settler key is made here): it
            pins the ledger's current head
  rwad      the stand-in RWAD tool settles the batch: status finalized, the sha echoed
  apply     ``cheng-rwad-bridge apply --require-status:finalized --require-signer``: the ack
            names the batch and its sha
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cheng_build.cli.step_program import StepFailed, StepProgram

EPOCH = 1
ROOT = Path("root")
LEDGER = ROOT / "ledger.jsonl"
KEY = Path("keys/settler.key")
SETTLEMENT = ROOT / f"settlement-epoch-{EPOCH}.toml"
CSV = ROOT / f"reconcile-epoch-{EPOCH}.csv"
BATCH = ROOT / f"rwad-batch-epoch-{EPOCH}.json"
RESULT = ROOT / f"rwad-result-epoch-{EPOCH}.json"
STATE = ROOT / "rwad-state.json"
ACK = ROOT / f"rwad-ack-epoch-{EPOCH}.json"
BATCH_ID = f"cheng-epoch-{EPOCH}"
CHEAT = "node:exec-cheat"


def _tool(main: Callable[[list[str]], int], *argv: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(list(argv))
    out = buf.getvalue()
    sys.stdout.write(out)
    if rc != 0:
        raise StepFailed(f"{argv[0]} exited {rc}")
    return out


def settle() -> None:
    from cheng_build.cli.storage import main

    _tool(main, "settle", f"--epoch:{EPOCH}", f"--root:{ROOT}", "--format:toml", "--top:5",
          f"--out:{SETTLEMENT}", f"--reconcile-csv:{CSV}")
    s: dict[str, Any] = tomllib.loads(SETTLEMENT.read_text())
    if s["counts"]["compute"] < 1 or s["compute_total"] <= 0:
        raise StepFailed("the settlement holds no compute")
    if s["counts"]["exec_receipt"] < 2 or s["counts"]["audit"] < 2:
        raise StepFailed("the settlement misses the receipts or audits of the compute steps")
    if s["payouts"]["penalties"].get(CHEAT, 0) <= 0 or s["audit_total"] <= 0:
        raise StepFailed(f"the cheat's penalty was not moved from {CHEAT} to the treasury")
    paid = sum(sum(s["payouts"][t].values()) for t in ("authors", "providers", "executors"))
    if paid + s["treasury_total"] != s["storage_total"] + s["compute_total"]:
        raise StepFailed("payouts + treasury do not equal the totals")
    if not CSV.read_text().startswith("kind,receipt_id,request_id,usage_id,ref_id,"):
        raise StepFailed("no reconcile CSV")
    print(f"settled epoch {EPOCH}: compute_total {s['compute_total']} nano, penalties "
          f"{s['payouts']['penalties']}, reconcile CSV {CSV}")


def export() -> None:
    from cheng_build.cli.registry import main as registry
    from cheng_build.cli.rwad_bridge import main
    from cheng_build.ledger.log import verify_ledger

    if not KEY.exists():
        _tool(registry, "keygen", f"--out:{KEY}", "--author:node:settler")
    _tool(main, "export", f"--epoch:{EPOCH}", f"--root:{ROOT}", f"--batch-id:{BATCH_ID}",
          "--schema:cheng-rwad-settlement/v2", f"--priv:{KEY}", f"--out:{BATCH}")
    batch = json.loads(BATCH.read_text())
    head = verify_ledger(LEDGER).head
    if batch["ledger"]["head"] != head:
        raise StepFailed(f"the batch pins head {batch['ledger']['head']}, the ledger's is {head}")
    if batch["settlement"]["counts"]["compute"] < 1:
        raise StepFailed("the batch settles no compute")
    print(f"batch {BATCH_ID}: sha256 {batch['settlement_sha256']}, ledger head {head}")


def rwad() -> None:
    p = subprocess.run([sys.executable, "-m", "cheng_build.settle.rwad.standin",
                        f"--batchFile:{BATCH}", "--budget:2.0", f"--stateOut:{STATE}",
                        f"--out:{RESULT}"], capture_output=True, text=True, timeout=120,
                       check=False)
    if p.returncode != 0:
        raise StepFailed(f"the stand-in RWAD tool failed: {p.stderr.strip()}")
    res = json.loads(RESULT.read_text())
    if res.get("status") != "finalized" or res.get("batch_id") != BATCH_ID:
        raise StepFailed(f"RWAD answered status {res.get('status')} for {res.get('batch_id')}")
    print(f"RWAD (stand-in): {res['status']}, points {res['totals']['points_total']}")


def apply() -> None:
    from cheng_build.cli.rwad_bridge import main

    _tool(main, "apply", f"--result:{RESULT}", f"--batch:{BATCH}", f"--batch-id:{BATCH_ID}",
          "--require-status:finalized", f"--require-signer:{KEY}", f"--out:{ACK}")
    ack = json.loads(ACK.read_text())
    batch = json.loads(BATCH.read_text())
    if not ack.get("ok") or ack["settlement_sha256"] != batch["settlement_sha256"]:
        raise StepFailed("the ack does not name the batch's settlement")
    print(f"ack {ACK}: {ack['schema_version']} {ack['status']}")


STEPS: dict[str, Callable[[], None]] = {"settle": settle, "export": export, "rwad": rwad,
                                        "apply": apply}


def main(argv: Sequence[str] | None = None) -> int:
    return StepProgram(prog="settle_demo_steps", label="settle_demo_steps").main_checked(STEPS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
