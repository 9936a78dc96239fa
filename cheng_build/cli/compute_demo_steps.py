"""Task programs of the ``demo-compute-settle`` DAG (:mod:`cheng_build.cis.targets.compute_demo`).

Run as ``python -m cheng_build.cli.compute_demo_steps <step>`` in the demo's work directory. Each
step does one thing of the closed loop and then checks it did something (the original demo passed
on an empty ledger; this one cannot): it prints what it did and exits 0, or says on stderr what
is missing and exits 1.

Steps (work directory layout: ``keys/``, ``registry/registry.jsonl``, ``root/`` the storage root
with ``root/ledger.jsonl``, ``state.json``):

  setup          executor keys (honest node:exec-1, cheating node:exec-cheat), registered in the
                 registry; the job's code (a cis.toml) and input put into the root's CAS
  open-request   ``cheng-storage exec`` without an executor: an open request
  claim          an executor node (--claim) claims and runs it: measured usage, signed receipt
  cheat          a deliberately cheating executor (made-up result CID) serves a request over
                 libp2p; its receipt is signed and registered, so only an audit can tell
  sample         ``sample --base-rate:1 --record`` seeded with the ledger's head hash
  audit          ``audit --recompute`` of every sample: the honest receipt passes, the cheat fails
                 with a fraud report naming both results
  repute         the cheater's reputation fell below the honest node's
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cheng_build.cli.step_program import StepFailed, StepProgram

ROOT = Path("root")
LEDGER = ROOT / "ledger.jsonl"
REGISTRY = Path("registry/registry.jsonl")
STATE = Path("state.json")
HONEST, CHEAT = "node:exec-1", "node:exec-cheat"
JOB = ('name = "wordcount"\npolicy = "AllSuccess"\n\n[[tasks]]\nidx = 0\nname = "count"\n'
       'exec = { cmd = ["sh", "-c", "wc -w < input/words.txt > out/count && '
       'tr a-z A-Z < input/words.txt > out/upper.txt"], timeout = 60 }\n')


def _storage(*argv: str) -> str:
    import contextlib
    import io

    from cheng_build.cli.storage import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main([*argv, f"--root:{ROOT}"])
    out = buf.getvalue()
    sys.stdout.write(out)
    if rc != 0:
        raise StepFailed(f"cheng-storage {argv[0]} exited {rc}")
    return out


def _events(kind: str) -> list[dict[str, Any]]:
    from cheng_build.ledger.log import iter_events

    return [e for e in iter_events(LEDGER) if e.get("type") == kind]


def _state() -> dict[str, Any]:
    return dict(json.loads(STATE.read_text()))


def setup() -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import import_path
    from cheng_build.compute.identity import KeyBook
    from cheng_build.trust.keys import KeyPair, write_keyfile
    from cheng_build.trust.registry_ops import register_namespace

    Path("keys").mkdir(exist_ok=True)
    for node, name in ((HONEST, "exec-1"), (CHEAT, "exec-cheat")):
        key = KeyPair.generate(node)
        write_keyfile(key, f"keys/{name}.key", force=True)
        register_namespace(REGISTRY, key, f"pkg://cheng/{name}")
    code, inp = Path("job/code"), Path("job/input")
    code.mkdir(parents=True, exist_ok=True)
    inp.mkdir(parents=True, exist_ok=True)
    (code / "cis.toml").write_text(JOB)
    (inp / "words.txt").write_text("the quick brown fox jumps over the lazy dog\n")
    store = Blockstore(ROOT)
    state = {"code": cid_str(import_path(store, code, pin=True).root),
             "input": cid_str(import_path(store, inp, pin=True).root)}
    STATE.write_text(json.dumps(state))
    book = KeyBook.from_registry(REGISTRY)
    if not (book.keys.get(HONEST) and book.keys.get(CHEAT)):
        raise StepFailed("the registry does not bind both executor keys")
    print(f"setup: code {state['code']}, input {state['input']}, keys registered for "
          f"{HONEST} and {CHEAT}")


def open_request() -> None:
    s = _state()
    _storage("exec", "--task:demo-wordcount", "--package:pkg://cheng/demo", "--author:node:alice",
             "--requester:node:app-1", f"--code:{s['code']}", f"--input:{s['input']}",
             "--cpu_ms:60000", "--price_cpu:0.000001", "--price_mem:0.10", "--price_io:0.05",
             "--epoch:1")
    reqs = _events("exec_request")
    if not reqs or reqs[-1].get("executor_id"):
        raise StepFailed("no open request in the ledger")


def claim() -> None:
    from cheng_build.compute.identity import KeyBook
    from cheng_build.compute.node import ExecutorConfig, run_executor
    from cheng_build.compute.receipts import check_receipt
    from cheng_build.compute.records import ExecRequest, Receipt, Usage
    from cheng_build.trust.keys import load_key

    key = load_key("keys/exec-1.key")
    served = run_executor(ExecutorConfig(root=ROOT.resolve(), ledger=LEDGER.resolve(), key=key,
                                         listen="/ip4/127.0.0.1/tcp/0", claim=True,
                                         max_requests=1))
    claims = [c for c in _events("exec_claim") if c.get("executor_id") == HONEST]
    if served != 1 or not claims:
        raise StepFailed("the executor claimed nothing")
    req = next(ExecRequest.from_event(e) for e in _events("exec_request")
               if e["request_id"] == claims[-1]["request_id"])
    r = next(Receipt.from_event(e) for e in _events("exec_receipt")
             if e["request_id"] == req.request_id)
    u = next(Usage.from_event(e) for e in _events("compute") if e["usage_id"] == r.usage_id)
    check_receipt(r, request=req, usage=u, keys=KeyBook.from_registry(REGISTRY))
    if r.status != "ok" or not r.result_cid:
        raise StepFailed(f"the claimed run failed: {r.error}")
    print(f"claim: {HONEST} ran {req.request_id}: result {r.result_cid}, usage cpu_ms={u.cpu_ms} "
          f"mem_bytes={u.mem_bytes} io_bytes={u.io_bytes} ({u.source}), cost {u.total} nano; "
          f"receipt {r.receipt_id} signed by its registered key")


def cheat() -> None:
    s = _state()
    env = dict(os.environ)
    log = open("cheat-executor.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.storage", "executor",
                             "--listen:/ip4/127.0.0.1/tcp/0", "--priv:keys/exec-cheat.key",
                             "--root:cheat-root", "--max:1", "--cheat:result"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        addr = ""
        deadline = time.monotonic() + 60
        while not addr and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            for line in Path("cheat-executor.log").read_text(errors="replace").splitlines():
                if line.startswith("executor listening: "):
                    addr = line.split(": ", 1)[1]
        if not addr:
            raise StepFailed("the cheating executor did not start")
        _storage("exec", f"--peer:{addr}", "--task:demo-wordcount-2", "--package:pkg://cheng/demo",
                 "--author:node:alice", "--requester:node:app-1", f"--code:{s['code']}",
                 f"--input:{s['input']}", "--cpu_ms:60000", "--price_cpu:0.000001", "--epoch:1",
                 "--wait", f"--registry:{REGISTRY}", "--timeout:120")
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    if not [r for r in _events("exec_receipt") if r.get("executor_id") == CHEAT]:
        raise StepFailed("no receipt from the cheating executor")


def sample() -> None:
    from cheng_build.ledger.log import verify_ledger

    head = verify_ledger(LEDGER).head  # a seed fixed by what is already recorded
    _storage("sample", "--base-rate:1", "--high-risk-rate:1", f"--seed:{head}", "--record",
             "--auditor:node:auditor-1", "--epoch:1")
    if len(_events("audit_sample")) < 2:
        raise StepFailed("fewer than two receipts were sampled")


def audit() -> None:
    from cheng_build.compute.audit import recompute_audit

    for s in _events("audit_sample"):
        out = recompute_audit(ROOT, LEDGER, str(s["receipt_id"]), auditor="node:auditor-1",
                              peers=[], penalty=100_000_000, epoch=1)
        print(f"audit: {s['executor_id']} {s['receipt_id']}: {out.audit.status}"
              + (f" ({'; '.join(out.reasons)})" if out.reasons else ""))
    audits = {(a["executor_id"], a["status"]) for a in _events("audit")}
    frauds = [f for f in _events("fraud_report") if f.get("executor_id") == CHEAT]
    if (HONEST, "ok") not in audits or (CHEAT, "bad") not in audits or not frauds:
        raise StepFailed(f"the audits did not separate the honest node from the cheater: {audits}")


def repute() -> None:
    from cheng_build.compute.ledgerio import events
    from cheng_build.compute.standing import repute as rep

    honest, cheater = rep(events(LEDGER), HONEST), rep(events(LEDGER), CHEAT)
    print(f"repute: {HONEST} {honest.score:.3f} ({honest.level}), {CHEAT} {cheater.score:.3f} "
          f"({cheater.level})")
    if not cheater.score < honest.score:
        raise StepFailed("the cheater's reputation did not fall")


STEPS = {"setup": setup, "open-request": open_request, "claim": claim, "cheat": cheat,
         "sample": sample, "audit": audit, "repute": repute}


def main(argv: list[str] | None = None) -> int:
    return StepProgram(prog="compute_demo_steps", label="compute_demo_steps").main_checked(STEPS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
