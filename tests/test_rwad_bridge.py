"""cheng-rwad-bridge end to end: export, the stand-in RWAD tool, apply, ack, and every attack."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_settle import audit, compute, fraud, lease, proof, receipt, request

from cheng_build.cli import registry, rwad_bridge, storage
from cheng_build.ledger.log import Ledger
from cheng_build.settle.rwad.jcs import canonical

REPO = Path(__file__).resolve().parents[1]
SECRET = "fn Secret(): int = 0x5ec2e7  # package body: never leaves for RWAD"


def run(capsys: pytest.CaptureFixture[str], tool: Any, *argv: str) -> tuple[int, str, str]:
    rc = tool.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    Ledger(r / "ledger.jsonl").append_many([
        lease(royalty=120_000_000, treasury=30_000_000, prov=850_000_000, epoch=1,
              price_per_gb_month=250_000_000, royalty_rate=120_000_000, treasury_rate=30_000_000,
              storage_cost=1_000_000_000, note=SECRET),
        request("", epoch=1, price_cpu_ms=1000, price_mem_gb=0, price_io_gb=0, price_gpu_ms=0,
                price_gpu_mem_gb=0),
        compute(royalty=392_700_000, treasury=98_175_000, executor_amount=2_781_625_000,
                price_gpu_ms=20_000, price_gpu_mem_gb=150_000_000, price_cpu_ms=0, price_mem_gb=0,
                price_io_gb=0, royalty_rate=120_000_000, treasury_rate=30_000_000,
                total=3_272_500_000),
        receipt("", "req-unknown", "", status="bad", error=SECRET),
        audit(status="bad", penalty=100_000_000), fraud(), proof(status="missing"),
        compute(epoch=2, royalty=1, treasury=1, executor_amount=1, price_gpu_ms=0,
                price_gpu_mem_gb=0, price_cpu_ms=0, price_mem_gb=0, price_io_gb=0,
                royalty_rate=0, treasury_rate=0, total=3),
    ])
    return r


def _standin(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cheng_build.settle.rwad.standin", *argv],
                          capture_output=True, check=False, timeout=120, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_v1_export_is_the_original_envelope(root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}",
                     f"--out:{tmp_path / 'b.json'}")
    assert rc == 0, err
    data = (tmp_path / "b.json").read_bytes()
    rc, settle_out, _ = run(capsys, storage, "settle", "--epoch:1", f"--root:{root}",
                            "--format:json", "--top:0")
    settlement = settle_out.rstrip("\n").encode()
    sha = hashlib.sha256(settlement).hexdigest()
    ledger = str((root / "ledger.jsonl").absolute())
    assert data == (b'{"schema_version":"cheng-rwad-settlement/v1",'
                    b'"source":"cheng-lang/cheng_rwad_bridge.sh","batch_id":"cheng-epoch-1",'
                    b'"epoch":1,"ledger_path":"' + ledger.encode() + b'",'
                    b'"settlement_sha256":"' + sha.encode() + b'","settlement":' + settlement
                    + b"}\n")
    assert json.loads(data)["settlement"]["epoch"] == 1
    rc, out, _ = run(capsys, rwad_bridge, "export", f"--root:{root}")
    assert rc == 0 and json.loads(out)["batch_id"] == "cheng-epoch-all"


def _strings(value: Any, keys: bool = True) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in ([k] if keys else []) + _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _numbers(value: Any) -> list[int | float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


_ALLOWED = re.compile(
    r"^(?:[a-z_0-9]+"  # keys and schema words
    r"|(?:cheng|rwad)-[a-z-]+/v[12]|cheng-(?:lang|build)/[a-z_-]+(?:\.sh)?"  # schemas, sources
    r"|cheng-epoch-(?:\d+|all)"  # batch ids
    r"|(?:node|pkg):[A-Za-z0-9:/._-]+"  # party ids
    r"|(?:lease|usage|req|receipt|audit|sample|fraud|proof)-[a-z0-9]+"  # event ids
    r"|[0-9a-f]{64}"  # hashes
    r"|baf[a-z2-7]+"  # CIDs
    r"|ed25519:[A-Za-z0-9+/=]+)$")  # signer key and signature


@pytest.mark.parametrize("schema", ["cheng-rwad-settlement/v1", "cheng-rwad-settlement/v2"])
@pytest.mark.parametrize("top", ["0", "10"])
def test_a_batch_holds_only_ids_cids_counts_totals_and_hashes(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], schema: str,
        top: str) -> None:
    # seed 000 §A0: only pointers and settlements go on chain, never package bodies or source.
    # The ledger holds free text (a lease note, a receipt's error) that must not leave.
    run(capsys, registry, "keygen", f"--out:{tmp_path / 'node.key'}", "--author:node:exec-1")
    rc, _, err = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}", f"--top:{top}",
                     f"--schema:{schema}", f"--out:{tmp_path / 'b.json'}",
                     *([f"--priv:{tmp_path / 'node.key'}"] if schema.endswith("v2") else []))
    assert rc == 0, err
    data = (tmp_path / "b.json").read_bytes()
    assert SECRET.encode() not in data and b"Secret" not in data
    env = json.loads(data)
    env.pop("ledger_path", None)  # v1 only: where the ledger lives on the exporting machine
    bad = [s for s in _strings(env) if not _ALLOWED.match(s)]
    assert bad == []
    rows = env["settlement"]["reconcile"]["bad_receipt"]
    assert len(rows) == (1 if top == "10" else 0)
    assert all(r["error"] == hashlib.sha256(SECRET.encode()).hexdigest() for r in rows)
    # The numbers themselves (a signature's base64 may hold "e+" by chance: it is no number).
    numbers = " ".join(json.dumps(n) for n in _numbers(env))
    assert "e+" not in numbers and "NaN" not in numbers and "Infinity" not in numbers


def test_v2_is_signed_canonical_and_pins_the_ledger_head(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "node.key"
    run(capsys, registry, "keygen", f"--out:{key}", "--author:node:exec-1")
    rc, _, err = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}",
                     "--schema:cheng-rwad-settlement/v2", f"--priv:{key}",
                     f"--out:{tmp_path / 'b.json'}", "--batch-id:cheng-epoch-1")
    assert rc == 0, err
    data = (tmp_path / "b.json").read_bytes()
    env = json.loads(data)
    assert data == canonical(env) + b"\n"
    assert env["ledger"]["head"] == hashlib.sha256(
        (root / "ledger.jsonl").read_bytes().splitlines()[-1]).hexdigest()
    assert env["ledger"]["event_counts"]["compute"] == 1 and env["money_unit"] == "nano"
    assert env["settlement_sha256"] == hashlib.sha256(canonical(env["settlement"])).hexdigest()
    pub = json.loads(key.read_text())["pub_key"]
    assert env["signer"] == {"id": "node:exec-1", "pub_key": pub}
    # the stand-in accepts it; apply checks the signature and, when asked, the signer
    assert _standin(f"--batchFile:{tmp_path / 'b.json'}", "--budget:2",
                    f"--stateOut:{tmp_path / 's.json'}", f"--out:{tmp_path / 'r.json'}").returncode == 0
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r.json'}",
                     f"--batch:{tmp_path / 'b.json'}", "--require-status:finalized",
                     f"--require-signer:{key}", f"--out:{tmp_path / 'ack.json'}")
    assert rc == 0, err
    ack = json.loads((tmp_path / "ack.json").read_text())
    assert ack["request_schema"] == "cheng-rwad-settlement/v2"
    # attacks on the v2 batch: an edited amount; a re-signature by another key
    edited = data.replace(b'"storage_total":1000000000', b'"storage_total":9000000000')
    assert edited != data
    (tmp_path / "e.json").write_bytes(edited)
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r.json'}",
                     f"--batch:{tmp_path / 'e.json'}", f"--out:{tmp_path / 'ack2.json'}")
    assert rc == 1 and err.splitlines()[0] == "apply: batch signature does not verify"
    other = tmp_path / "other.key"
    run(capsys, registry, "keygen", f"--out:{other}", "--author:node:mallory")
    rc, _, _ = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}",
                   "--schema:cheng-rwad-settlement/v2", f"--priv:{other}",
                   f"--out:{tmp_path / 'm.json'}", "--batch-id:cheng-epoch-1")
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r.json'}",
                     f"--batch:{tmp_path / 'm.json'}", f"--require-signer:{key}",
                     f"--out:{tmp_path / 'ack3.json'}")
    assert rc == 1 and err.splitlines()[0].startswith("apply: batch signer mismatch: got=ed25519:")
    assert not (tmp_path / "ack2.json").exists() and not (tmp_path / "ack3.json").exists()
    rc, _, err = run(capsys, rwad_bridge, "export", "--schema:cheng-rwad-settlement/v2",
                     f"--root:{root}")
    assert rc == 2 and "--priv is missing" in err


def _loop(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
          env: dict[str, str] | None = None) -> tuple[Path, Path]:
    batch, result = tmp_path / "batch.json", tmp_path / "result.json"
    rc, _, err = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}",
                     "--batch-id:cheng-epoch-1", f"--out:{batch}")
    assert rc == 0, err
    p = _standin(f"--batchFile:{batch}", "--budget:2.0", f"--stateOut:{tmp_path / 'state.json'}",
                 f"--out:{result}", env=env)
    assert p.returncode == 0, p.stderr
    return batch, result


def test_round_trip_export_standin_apply_ack(root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    batch, result = _loop(root, tmp_path, capsys)
    ack = tmp_path / "ack.json"
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{result}", f"--batch:{batch}",
                     "--batch-id:cheng-epoch-1", "--require-status:finalized", f"--out:{ack}")
    assert rc == 0, err
    a = json.loads(ack.read_text())
    b = json.loads(batch.read_text())
    assert list(a) == ["ok", "schema_version", "applied_from", "request_schema", "batch_id",
                       "status", "epoch", "settlement_sha256", "totals", "result_file"]
    assert a["schema_version"] == "cheng-rwad-ack/v1" and a["status"] == "finalized"
    assert a["settlement_sha256"] == b["settlement_sha256"] and a["epoch"] == 1
    assert a["totals"]["budget"] == 2.0 and ack.read_bytes().endswith(b"}\n")
    # the stand-in's result has a nested "status" before the top-level one (the grep quirk)
    text = result.read_text()
    assert text.index('"status":"rolled"') < text.index('"status":"finalized"')
    # replaying the batch: the chain's state already settled it
    p = _standin(f"--batchFile:{batch}", f"--stateIn:{tmp_path / 'state.json'}",
                 f"--stateOut:{tmp_path / 'state2.json'}", f"--out:{tmp_path / 'r2.json'}")
    assert p.returncode == 0
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r2.json'}",
                     f"--batch:{batch}", "--require-status:finalized",
                     f"--out:{tmp_path / 'ack2.json'}")
    assert rc == 1 and err.splitlines()[0] == "apply: status mismatch: got=rejected expect=finalized"


_OK = {"schema_version": "rwad-cheng-settlement-result/v1",
       "request_schema": "cheng-rwad-settlement/v1", "batch_id": "cheng-epoch-1", "epoch": 1,
       "status": "finalized", "settlement_sha256": "", "totals": {"points_total": 2.0}}


@pytest.mark.parametrize(("change", "first_line"), [
    ({"status": "pending"}, "apply: status mismatch: got=pending expect=finalized"),
    ({"status": None}, "apply: status mismatch: got=(missing) expect=finalized"),
    ({"batch_id": "cheng-epoch-2"}, "apply: batch id mismatch: got=cheng-epoch-2 expect=cheng-epoch-1"),
    ({"settlement_sha256": "0" * 64},
     "apply: settlement_sha256 mismatch between result and batch: result=" + "0" * 64 + " batch="),
    ({"schema_version": "rwad-cheng-settlement-result/v9"},
     "apply: result schema mismatch: got=rwad-cheng-settlement-result/v9 "
     "expect=rwad-cheng-settlement-result/v1"),
    ({"request_schema": "cheng-rwad-settlement/v2"},
     "apply: request schema mismatch: got=cheng-rwad-settlement/v2 expect=cheng-rwad-settlement/v1"),
    ({"totals": [1, 2]}, "apply: missing totals"),
    ({"settlement_sha256": None}, "apply: missing settlement_sha256"),
    ({"epoch": 7}, "apply: epoch mismatch between result and batch: result=7 batch=1"),
    ({"status": {"x": 1}}, "apply: result status is not a string"),
])
def test_apply_refuses_each_mismatch_and_writes_no_ack(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any],
        first_line: str) -> None:
    batch, _ = _loop(root, tmp_path, capsys)
    res = {**_OK, "settlement_sha256": json.loads(batch.read_text())["settlement_sha256"], **change}
    res = {k: v for k, v in res.items() if v is not None}
    (tmp_path / "r.json").write_text(json.dumps(res))
    ack = tmp_path / "ack.json"
    argv = [f"--result:{tmp_path / 'r.json'}", "--batch-id:cheng-epoch-1",
            "--require-status:finalized", f"--out:{ack}"]
    if "batch_id" not in change:
        argv.append(f"--batch:{batch}")
    rc, out, err = run(capsys, rwad_bridge, "apply", *argv)
    assert rc == 1, err
    assert err.splitlines()[0].startswith(first_line), err
    assert not ack.exists() and out == ""


def test_apply_against_the_other_batch(root: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    batch, result = _loop(root, tmp_path, capsys)
    rc, _, _ = run(capsys, rwad_bridge, "export", "--epoch:2", f"--root:{root}",
                   f"--out:{tmp_path / 'b2.json'}")
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{result}",
                     f"--batch:{tmp_path / 'b2.json'}", f"--out:{tmp_path / 'ack.json'}")
    assert rc == 1
    assert err.splitlines()[0] == ("apply: batch id mismatch between result and batch: "
                                   "result=cheng-epoch-1 batch=cheng-epoch-2")
    # an edited v1 batch: its sha is rechecked on the exact settlement bytes
    data = batch.read_bytes().replace(b'"storage_total":1000000000', b'"storage_total":1000000001')
    (tmp_path / "e.json").write_bytes(data)
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{result}",
                     f"--batch:{tmp_path / 'e.json'}", f"--out:{tmp_path / 'ack.json'}")
    assert rc == 1 and err.splitlines()[0].startswith(
        "apply: batch settlement_sha256 does not match its settlement: recorded=")
    assert not (tmp_path / "ack.json").exists()


@pytest.mark.parametrize(("content", "first_line"), [
    (b"not json at all", "apply: result file is not JSON"),
    (b'["a list"]', "apply: result file is not a JSON object"),
    (b"\xff\xfe", "apply: result file is not UTF-8 text"),
    (b"", "apply: result file is not JSON"),
])
def test_apply_refuses_a_result_that_is_not_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, first_line: str) -> None:
    (tmp_path / "r.json").write_bytes(content)
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r.json'}",
                     f"--out:{tmp_path / 'ack.json'}")
    assert rc == 1 and err.splitlines()[0] == first_line
    assert not (tmp_path / "ack.json").exists() and "Traceback" not in err


def test_nested_status_compat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the original's grep took the FIRST "status" anywhere: here the nested "pending"
    text = ('{"schema_version":"rwad-cheng-settlement-result/v1","request_schema":'
            '"cheng-rwad-settlement/v1","batch_id":"cheng-epoch-9","epoch":9,'
            '"queue":{"status":"pending","depth":3},"status":"finalized",'
            '"settlement_sha256":"abc","totals":{"points_total":3.0}}')
    (tmp_path / "r.json").write_text(text)
    rc, out, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r.json'}",
                       "--batch-id:cheng-epoch-9", "--require-status:finalized")
    assert rc == 0, err
    assert json.loads(out)["status"] == "finalized"


def test_an_original_v1_batch_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # built the way cheng_rwad_bridge.sh did: settle bytes, shasum, printf of the envelope
    settlement = (b'{"epoch":3,"storage_total":0.25,"compute_total":0.0,"treasury_total":0.0075,'
                  b'"audit_total":0.0,"counts":{"lease":1},"payouts":{"authors":{"node:alice":0.03}}}')
    sha = hashlib.sha256(settlement).hexdigest().encode()
    batch = (b'{"schema_version":"cheng-rwad-settlement/v1","source":"cheng-lang/cheng_rwad_bridge.sh",'
             b'"batch_id":"cheng-epoch-3","epoch":3,"ledger_path":"/Users/x/build/cheng_storage/'
             b'ledger.jsonl","settlement_sha256":"' + sha + b'","settlement":' + settlement + b"}\n")
    (tmp_path / "b.json").write_bytes(batch)
    p = _standin(f"--batchFile:{tmp_path / 'b.json'}", "--budget:1",
                 f"--stateOut:{tmp_path / 's.json'}", f"--out:{tmp_path / 'r.json'}")
    assert p.returncode == 0, p.stderr
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r.json'}",
                     f"--batch:{tmp_path / 'b.json'}", "--require-status:finalized",
                     "--batch-id:cheng-epoch-3", f"--out:{tmp_path / 'ack.json'}")
    assert rc == 0, err
    # the stand-in refuses an edited batch as a real chain would
    (tmp_path / "e.json").write_bytes(batch.replace(b"0.03", b"0.93"))
    p = _standin(f"--batchFile:{tmp_path / 'e.json'}", f"--stateOut:{tmp_path / 's2.json'}",
                 f"--out:{tmp_path / 'r2.json'}")
    assert p.returncode == 1 and b"does not match its settlement" in p.stderr


def test_verify_contract_against_the_standin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = run(capsys, rwad_bridge, "verify-contract", "--rwad-tool:standin",
                       f"--root:{tmp_path / 'v'}")
    assert rc == 0, err
    assert out.splitlines()[-1] == "verify contract ok"
    assert json.loads((tmp_path / "v" / "rwad_ack.json").read_text())["batch_id"] == "cheng-epoch-9"
    # an RWAD checkout layout, the way a user points at the real tool
    monkeypatch.setenv("PYTHON", sys.executable)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    rc, out, err = run(capsys, rwad_bridge, "verify-contract",
                       f"--rwad-root:{REPO / 'examples' / 'rwad-standin'}",
                       f"--root:{tmp_path / 'w'}", "--batch-id:cheng-epoch-4", "--epoch:4")
    assert rc == 0, err
    assert json.loads((tmp_path / "w" / "rwad_result.json").read_text())["epoch"] == 4
    # a tool that answers for another batch breaks the contract
    monkeypatch.setenv("RWAD_STANDIN_BATCH_ID", "cheng-epoch-8")
    rc, _, err = run(capsys, rwad_bridge, "verify-contract", "--rwad-tool:standin",
                     f"--root:{tmp_path / 'x'}")
    assert rc == 1 and err.splitlines()[0] == (
        "verify-contract: result batch_id mismatch: got=cheng-epoch-8 expect=cheng-epoch-9")
    assert not (tmp_path / "x" / "rwad_ack.json").exists()


def test_verify_contract_without_a_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RWAD_CHAIN_ROOT", raising=False)
    rc, _, err = run(capsys, rwad_bridge, "verify-contract", f"--rwad-root:{tmp_path}")
    assert rc == 1 and err.splitlines()[0] == (
        f"verify-contract: missing RWAD tool: {tmp_path}/tools/rwad_cheng_points_settle.sh")
    rc, _, err = run(capsys, rwad_bridge, "verify-contract", "--rwad-tool:/nonexistent/rwad")
    assert rc == 1 and err.splitlines()[0].startswith("verify-contract: missing RWAD tool:")
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\necho 'rwad: budget exhausted' >&2\nexit 3\n")
    failing.chmod(0o755)
    rc, _, err = run(capsys, rwad_bridge, "verify-contract", f"--rwad-tool:{failing}",
                     f"--root:{tmp_path / 'v'}")
    assert rc == 1 and err.splitlines()[:2] == ["verify-contract: RWAD tool failed (exit 3)",
                                                "  why: rwad: budget exhausted"]


def test_rwad_bridge_console_script_is_declared() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cheng-rwad-bridge"] == "cheng_build.cli.rwad_bridge:main"


def test_apply_batch_payload_and_schema_errors(root: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    batch, result = _loop(root, tmp_path, capsys)
    (tmp_path / "bad.json").write_text('{"schema_version":"cheng-rwad-settlement/v1"}')
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{result}",
                     f"--batch:{tmp_path / 'bad.json'}")
    assert rc == 1 and err.splitlines()[0] == "apply: invalid batch file payload"
    # the result claims v2 and apply is told to expect v2, but the batch is v1
    res = json.loads(result.read_text())
    res["request_schema"] = "cheng-rwad-settlement/v2"
    (tmp_path / "r2.json").write_text(json.dumps(res))
    rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r2.json'}",
                     f"--batch:{batch}", "--require-request-schema:cheng-rwad-settlement/v2")
    assert rc == 1 and err.splitlines()[0] == (
        "apply: batch schema mismatch: got=cheng-rwad-settlement/v1 "
        "expect=cheng-rwad-settlement/v2")
    # empty --require-* values turn a check off, as in the original
    res["schema_version"] = "rwad-something-else/v7"
    (tmp_path / "r3.json").write_text(json.dumps(res))
    rc, out, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r3.json'}",
                       "--require-result-schema=", "--require-request-schema", "")
    assert rc == 0, err
    assert json.loads(out)["applied_from"] == "rwad-something-else/v7"
    for key in ("schema_version", "request_schema", "batch_id"):
        (tmp_path / "r4.json").write_text(json.dumps({k: v for k, v in res.items() if k != key}))
        rc, _, err = run(capsys, rwad_bridge, "apply", f"--result:{tmp_path / 'r4.json'}")
        assert rc == 1 and err.splitlines()[0] == f"apply: missing {key}"


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, rwad_bridge, "--help")
    assert rc == 0 and "export" in out and "verify-contract" in out
    for sub in ("export", "apply", "verify-contract"):
        with pytest.raises(SystemExit) as exc:
            rwad_bridge.main([sub, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_export_escapes_like_the_original_and_writes_nothing_on_a_bad_ledger(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}",
                       '--batch-id:b"q\\x')
    assert rc == 0, err
    assert '"batch_id":"b\\"q\\\\x"' in out and json.loads(out)["batch_id"] == 'b"q\\x'
    rc, _, err = run(capsys, rwad_bridge, "export", f"--root:{root}", "--batch-id:a\x01b")
    assert rc == 2 and err.splitlines()[0] == "export: batch id holds a control character"
    rc, _, err = run(capsys, rwad_bridge, "export", f"--root:{root}", "--epoch:-2")
    assert rc == 2
    with (root / "ledger.jsonl").open("ab") as fh:
        fh.write(b'{"type":"lease","royal')  # a torn write
    out_file = tmp_path / "batch.json"
    rc, _, err = run(capsys, rwad_bridge, "export", "--epoch:1", f"--root:{root}",
                     f"--out:{out_file}")
    assert rc == 1 and err.splitlines()[0].startswith("export: ledger line 9: torn")
    assert not out_file.exists()
