"""Executor nodes on loopback: requests, signed receipts, refusals, timeouts, disconnects,
open-request claims, and audits that catch a cheating executor (real libp2p hosts, real CIS
engine and sandbox, real CAS)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers_compute import Executor, code_dir, keyfile, ledger_events, put, storage

from cheng_build.compute.records import ExecRequest, Receipt, Usage

pytestmark = [pytest.mark.network]

UPPER = ["sh", "-c", "tr a-z A-Z < input/data.txt > out/upper.txt && wc -c < input/data.txt > out/n"]
# ~0.3 s of CPU: enough for the audit's metering check to judge (its floor is 100 ms).
BUSY = [sys.executable, "-c",
        "s=0\nfor i in range(4*10**6): s+=i\nopen('out/sum','w').write(str(s))"]


@pytest.fixture
def world(tmp_path: Path) -> dict[str, object]:
    root = tmp_path / "root"
    code = code_dir(tmp_path / "code", UPPER)
    busy = code_dir(tmp_path / "busy", BUSY)
    inp = tmp_path / "inp"
    inp.mkdir()
    (inp / "data.txt").write_text("hello compute\n")
    keys = {}
    for name in ("exec-1", "exec-2", "cheat"):
        keys[name] = tmp_path / f"{name}.key"
        keyfile(keys[name], f"node:{name}")
    return {"tmp": tmp_path, "root": root, "code": put(root, code), "busy": put(root, busy),
            "input": put(root, inp), "keys": keys}


def _exec(w: dict[str, object], addr: str, *extra: str, code: str = "code") -> object:
    return storage("exec", f"--peer:{addr}", f"--code:{w[code]}", f"--input:{w['input']}",
                   "--task:job-1", "--requester:node:app", f"--root:{w['root']}", "--wait", *extra)


def test_request_receipt_and_result(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], "--max:1", log=tmp / "ex.log")  # type: ignore[index]
    try:
        out = tmp / "result"
        res = _exec(world, ex.addr, f"--out:{out}", "--format:json")
        assert res.returncode == 0, res.stderr
        assert ex.wait() == 0
    finally:
        ex.stop()
    got = json.loads(res.stdout)
    assert (out / "upper.txt").read_text() == "HELLO COMPUTE\n"
    assert (out / "n").read_text().strip() == "14"
    r = Receipt.from_event(got["receipt"], money_nano=True)
    assert r.status == "ok" and r.executor_id == "node:exec-1"
    # The requester's ledger: request (on acceptance), usage and receipt (after the checks).
    evs = ledger_events(world["root"] / "ledger.jsonl")  # type: ignore[operator]
    assert [e["type"] for e in evs] == ["exec_request", "compute", "exec_receipt"]
    u = Usage.from_event(evs[1])
    assert u.executor_id == "node:exec-1" and u.request_id == evs[0]["request_id"]
    assert u.source.split("+")[0] in ("cgroup2", "rusage") and u.mem_bytes > 0
    # The executor recorded the same usage and receipt in its own ledger.
    ex_evs = ledger_events(tmp / "exroot" / "ledger.jsonl")
    assert [e["receipt_id"] for e in ex_evs if e["type"] == "exec_receipt"] == [r.receipt_id]
    # Reproducible: the result CID is what anyone computes from the same bytes.
    from cheng_build.compute.workspace import tree_cid

    assert tree_cid(out) == r.result_cid


def test_refusals_leave_nothing_recorded(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    bad_dag = code_dir(tmp / "bad", ["true"], extra='bogus_key = 1')
    waits = code_dir(tmp / "waits", ["true"])
    (waits / "cis.toml").write_text((waits / "cis.toml").read_text() + 'level = "Confirmed"\n')
    world["bad"] = put(world["root"], bad_dag)  # type: ignore[arg-type]
    world["waits"] = put(world["root"], waits)  # type: ignore[arg-type]
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], "--max:3", log=tmp / "ex.log")  # type: ignore[index]
    try:
        res = _exec(world, ex.addr, code="input")
        assert res.returncode == 1
        assert res.stderr.splitlines()[0] == \
            f"exec: executor refused the request: code {world['input']} is not a DAG"
        res = _exec(world, ex.addr, code="bad")
        assert res.returncode == 1 and "DAG fails validation" in res.stderr.splitlines()[0]
        res = _exec(world, ex.addr, code="waits")
        assert res.returncode == 1 and "DAG fails validation" in res.stderr.splitlines()[0]
        assert "Traceback" not in res.stderr
        assert ex.wait() == 0
    finally:
        ex.stop()
    assert not (world["root"] / "ledger.jsonl").exists()  # type: ignore[operator]
    assert not [e for e in ledger_events(tmp / "exroot" / "ledger.jsonl")
                if e["type"] == "exec_receipt"]


def test_wrong_executor_and_missing_caps_refused(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], "--max:2", log=tmp / "ex.log")  # type: ignore[index]
    try:
        res = _exec(world, ex.addr, "--executor:node:exec-2")
        assert res.returncode == 1
        assert res.stderr.splitlines()[0] == ("exec: executor refused the request: request names "
                                              "executor node:exec-2, this is node:exec-1")
        res = _exec(world, ex.addr, "--caps:cuda")
        assert res.stderr.splitlines()[0] == \
            "exec: executor refused the request: executor node:exec-1 lacks cuda"
    finally:
        ex.stop()


def _assert_no_stale_cgroups() -> None:
    """A runner killed on timeout cannot remove its own cgroup: the executor sweeps it."""
    import time

    from cheng_build.compute.metering import cgroup2_mount

    mount = cgroup2_mount()
    if mount is None:
        return
    deadline = time.monotonic() + 30
    while True:
        stale = [p.name for p in mount.iterdir() if p.name.startswith("cheng-compute-")
                 and not Path(f"/proc/{p.name.split('-')[2]}").exists()]
        if not stale or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stale == []


def test_timeout_and_disconnect(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    sleepy = put(world["root"], code_dir(tmp / "sleepy", ["sleep", "60"]))  # type: ignore[arg-type]
    world["sleepy"] = sleepy
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], log=tmp / "ex.log")  # type: ignore[index]
    try:
        res = _exec(world, ex.addr, "--timeout:3", code="sleepy")
        assert res.returncode == 1
        assert res.stderr.splitlines()[0].startswith("exec: executor ") and \
            "timed out after 3 s" in res.stderr.splitlines()[0]
        _assert_no_stale_cgroups()
        import subprocess
        import threading

        from helpers_compute import PY, env

        proc = subprocess.Popen([PY, "-m", "cheng_build.cli.storage", "exec", f"--peer:{ex.addr}",
                                 f"--code:{sleepy}", f"--input:{world['input']}", "--task:t",
                                 f"--root:{world['root']}", "--wait"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env())
        # Once the request is accepted (it is in the ledger), the executor goes away.
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(ledger_events(world["root"] / "ledger.jsonl")) < 2:  # type: ignore[operator]
            time.sleep(0.1)
        threading.Timer(0.5, ex.proc.kill).start()
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert err.splitlines()[0] == "exec: the peer closed the stream without an answer", err
        assert "Traceback" not in err
    finally:
        ex.stop()
    # The killed node's runner notices its parent is gone and exits (its tasks die with it), so
    # the cgroup it leaves empties and is swept (by the next node that starts, or here).
    import time

    from cheng_build.compute.cgroups import cgroup2_mount, sweep_stale_cgroups

    mount = cgroup2_mount()
    deadline = time.monotonic() + 20
    left: list[str] = ["?"]
    while mount is not None and left and time.monotonic() < deadline:
        sweep_stale_cgroups()
        left = [p.name for p in mount.iterdir() if p.name.startswith("cheng-compute-")]
        time.sleep(0.2)
    assert mount is None or left == []


def _receipts(path: Path) -> list[Receipt]:
    return [Receipt.from_event(e) for e in ledger_events(path) if e["type"] == "exec_receipt"]


@pytest.mark.parametrize("cheat", ["result", "meter"])
def test_sampling_at_rate_1_catches_every_cheat(world: dict[str, object], cheat: str) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    root: Path = world["root"]  # type: ignore[assignment]
    honest = Executor(tmp / "h", world["keys"]["exec-1"], "--max:2", log=tmp / "h.log")  # type: ignore[index]
    cheater = Executor(tmp / "c", world["keys"]["cheat"], "--max:2", f"--cheat:{cheat}",  # type: ignore[index]
                       log=tmp / "c.log")
    try:
        for ex in (honest, cheater, honest, cheater):
            res = _exec(world, ex.addr, code="busy")
            assert res.returncode == 0, res.stderr
    finally:
        honest.stop()
        cheater.stop()
    res = storage("sample", "--base-rate:1", "--seed:round-1", "--record", f"--root:{root}")
    assert json.loads(res.stdout)["count"] == 4
    verdicts = {}
    for r in _receipts(root / "ledger.jsonl"):
        res = storage("audit", "--recompute", f"--receipt:{r.receipt_id}", "--auditor:node:aud",
                      "--penalty:0.1", f"--root:{root}")
        verdicts[r.receipt_id] = (r.executor_id, res.returncode)
        if r.executor_id == "node:cheat":
            assert res.stderr.splitlines()[0] == \
                f"audit: receipt {r.receipt_id} of node:cheat failed its audit"
    assert sorted(v for v in verdicts.values()) == \
        [("node:cheat", 1), ("node:cheat", 1), ("node:exec-1", 0), ("node:exec-1", 0)]
    evs = ledger_events(root / "ledger.jsonl")
    frauds = [e for e in evs if e["type"] == "fraud_report"]
    assert len(frauds) == 2 and all(f["executor_id"] == "node:cheat" for f in frauds)
    reason = "result-mismatch" if cheat == "result" else "mis-metering"
    assert {f["reason"] for f in frauds} == {reason}
    if cheat == "result":
        assert all(f["result_cid"] != f["expected_cid"] for f in frauds)
    audits = [e for e in evs if e["type"] == "audit"]
    assert sorted((a["executor_id"], a["status"], a["penalty"]) for a in audits) == [
        ("node:cheat", "bad", 100_000_000), ("node:cheat", "bad", 100_000_000),
        ("node:exec-1", "ok", 0), ("node:exec-1", "ok", 0)]
    from cheng_build.ledger.log import verify_ledger

    assert verify_ledger(root / "ledger.jsonl").ok


def test_three_replicas_majority_on_executors(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    root: Path = world["root"]  # type: ignore[assignment]
    cheater = Executor(tmp / "c", world["keys"]["cheat"], "--max:2", "--cheat:result",  # type: ignore[index]
                       log=tmp / "c.log")
    e1 = Executor(tmp / "e1", world["keys"]["exec-1"], "--max:1", log=tmp / "e1.log")  # type: ignore[index]
    e2 = Executor(tmp / "e2", world["keys"]["exec-2"], "--max:1", log=tmp / "e2.log")  # type: ignore[index]
    try:
        assert _exec(world, cheater.addr).returncode == 0
        (r,) = _receipts(root / "ledger.jsonl")
        # Replicas on two honest executors and the cheater itself: two against one.
        res = storage("audit", "--recompute", f"--receipt:{r.receipt_id}", "--replicas:3",
                      f"--peer:{e1.addr}", f"--peer:{cheater.addr}", f"--peer:{e2.addr}",
                      "--auditor:node:aud", f"--root:{root}", "--format:json")
    finally:
        for ex in (cheater, e1, e2):
            ex.stop()
    assert res.returncode == 1, res.stderr
    got = json.loads(res.stdout)
    reps = got["replicas"]
    assert len(reps) == 3 and sum(1 for x in reps if x["result_cid"] == got["audit"]["expected_cid"]) == 2
    assert got["audit"]["status"] == "bad" and got["fraud"]["executor_id"] == "node:cheat"


def test_open_request_claimed_by_a_capable_executor(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    root: Path = world["root"]  # type: ignore[assignment]
    res = storage("exec", f"--code:{world['code']}", f"--input:{world['input']}", "--task:open-1",
                  f"--root:{root}")
    assert res.returncode == 0 and "open" in res.stdout
    gpu = storage("exec", f"--code:{world['code']}", f"--input:{world['input']}", "--task:open-gpu",
                  "--gpu_ms:1000", f"--root:{root}")
    assert gpu.returncode == 0
    ex = Executor(root, world["keys"]["exec-1"], "--claim", "--max:1", log=tmp / "ex.log")  # type: ignore[index]
    try:
        assert ex.wait(180) == 0
    finally:
        ex.stop()
    evs = ledger_events(root / "ledger.jsonl")
    claims = [e for e in evs if e["type"] == "exec_claim"]
    assert len(claims) == 1 and claims[0]["executor_id"] == "node:exec-1"
    (r,) = _receipts(root / "ledger.jsonl")
    req = ExecRequest.from_event(next(e for e in evs if e.get("request_id") == claims[0]["request_id"]
                                      and e["type"] == "exec_request"))
    assert req.task_id == "open-1"  # the GPU request needs cuda: this CPU node left it
    assert r.request_id == req.request_id and r.status == "ok"
    from cheng_build.compute.receipts import check_receipt

    check_receipt(r, request=req)


def test_client_refuses_a_receipt_not_signed_by_the_peer(world: dict[str, object]) -> None:
    """A receipt signed by another key (even validly) or edited in transit is refused."""
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    from cheng_build.compute.client import ExecClient, Outcome
    from cheng_build.compute.node import settle_request
    from cheng_build.compute.runner import ExecResult
    from cheng_build.core.errors import IntegrityError, SignatureError
    from cheng_build.trust.keys import KeyPair

    honest = KeyPair.generate("node:exec-1")
    other = KeyPair.generate("node:exec-1")
    peer = ID.from_pubkey(create_new_key_pair(honest.seed).public_key)
    req = ExecRequest(request_id="req-1", task_id="t", code_cid="c", input_cid="i")
    client = ExecClient(world["tmp"], world["tmp"] / "l.jsonl")  # type: ignore[operator]
    usage, receipt = settle_request(req, ExecResult("ok", "", "bafyresult"), honest)
    client._check({"receipt": receipt.to_event(), "usage": usage.to_event()}, req, peer, Outcome(req))
    u2, r2 = settle_request(req, ExecResult("ok", "", "bafyresult"), other)
    with pytest.raises(IntegrityError, match="not signed by the executor we talked to"):
        client._check({"receipt": r2.to_event(), "usage": u2.to_event()}, req, peer, Outcome(req))
    forged = {**receipt.to_event(), "result_cid": "bafyforged"}
    with pytest.raises(SignatureError):
        client._check({"receipt": forged, "usage": usage.to_event()}, req, peer, Outcome(req))


@pytest.mark.parametrize(("cheat", "first"), [
    ("tamper", "exec: signature of receipt receipt-"),
    ("foreign-key", "exec: receipt receipt-"),
    ("absurd", "exec: usage: cpu_ms is negative (-1000)"),
])
def test_forged_receipts_are_refused_through_the_cli(world: dict[str, object], cheat: str,
                                                     first: str) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], "--max:1", f"--cheat:{cheat}",  # type: ignore[index]
                  log=tmp / "ex.log")
    try:
        res = _exec(world, ex.addr)
    finally:
        ex.stop()
    assert res.returncode == 1
    assert res.stderr.splitlines()[0].startswith(first), res.stderr
    if cheat == "foreign-key":
        assert "is not signed by the executor we talked to" in res.stderr.splitlines()[0]
    assert "Traceback" not in res.stderr
    # The request was accepted (recorded); the forged receipt and usage were not.
    kinds = [e["type"] for e in ledger_events(world["root"] / "ledger.jsonl")]  # type: ignore[operator]
    assert kinds == ["exec_request"]


def test_unregistered_executor_key_is_refused(world: dict[str, object]) -> None:
    """A node whose key the registry binds to nobody (or to another id) is not trusted."""
    from cheng_build.trust.keys import load_key
    from cheng_build.trust.registry_ops import register_namespace

    tmp: Path = world["tmp"]  # type: ignore[assignment]
    reg = tmp / "registry.jsonl"
    register_namespace(reg, load_key(str(world["keys"]["exec-2"])), "pkg://cheng/exec-2")  # type: ignore[index]
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], "--max:1", log=tmp / "ex.log")  # type: ignore[index]
    try:
        res = _exec(world, ex.addr, f"--registry:{reg}")
    finally:
        ex.stop()
    assert res.returncode == 1
    assert res.stderr.splitlines()[0].startswith("exec: key ed25519:") and \
        res.stderr.splitlines()[0].endswith("is not registered to node:exec-1")


def test_oversized_input_is_refused_before_it_fills_the_disk(world: dict[str, object]) -> None:
    tmp: Path = world["tmp"]  # type: ignore[assignment]
    big = tmp / "big"
    big.mkdir()
    (big / "blob").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    world["input"] = put(world["root"], big)  # type: ignore[arg-type]
    ex = Executor(tmp / "exroot", world["keys"]["exec-1"], "--max:1",  # type: ignore[index]
                  "--max-input-bytes:100000", log=tmp / "ex.log")
    try:
        res = _exec(world, ex.addr)
    finally:
        ex.stop()
    assert res.returncode == 1
    assert res.stderr.splitlines()[0] == \
        "exec: executor refused the request: code and input exceed 100000 bytes"
    from cheng_build.cas.blockstore import Blockstore

    stored = Blockstore(tmp / "exroot").stats().block_bytes
    assert stored < 1 << 20  # it stopped fetching; it did not take the whole input
