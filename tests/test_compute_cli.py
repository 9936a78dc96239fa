"""``cheng-storage`` compute subcommands that need no network: recording, checks, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_compute import keyfile

from cheng_build.cli.storage import main
from cheng_build.compute.records import Receipt, Usage
from cheng_build.ledger.log import iter_events, verify_ledger


@pytest.fixture(autouse=True)
def _no_io_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IO_MODE", "IO_ROOT", "IO_LEDGER", "IO_LISTEN", "IO_PEERS", "IO_REQUIRE_LEASE"):
        monkeypatch.delenv(var, raising=False)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


GPU_METER = ("meter", "--task:job-gpu-2", "--package:pkg://cheng/fs", "--author:node:alice",
             "--executor:node:exec-1", "--gpu_ms:110000", "--gpu_mem_bytes:11811160064",
             "--gpu_count:1", "--gpu_type:A10G", "--workload:infer", "--price_gpu:0.00002",
             "--price_gpu_mem:0.15", "--royalty:0.12", "--treasury:0.03", "--epoch:1")


def test_meter_golden_split_default_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, *GPU_METER, f"--root:{tmp_path}")
    assert rc == 0 and out.startswith("meter ok: usage-")
    (ev,) = list(iter_events(tmp_path / "ledger.jsonl"))
    assert (ev["total"], ev["royalty"], ev["treasury"], ev["executor"]) == \
        (3_272_500_000, 392_700_000, 98_175_000, 2_781_625_000)
    assert ev["seq"] == 0 and verify_ledger(tmp_path / "ledger.jsonl").ok


def test_meter_compat_writes_the_original_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, *GPU_METER, f"--root:{tmp_path}", "--compat")
    assert rc == 0 and out.startswith("meter ok: usage-")
    line = (tmp_path / "ledger.jsonl").read_text().splitlines()[0]
    ev = json.loads(line)
    assert "prev" not in ev and ev["total"] == pytest.approx(3.2725)
    payload = ("job-gpu-2|pkg://cheng/fs|node:alice|node:exec-1|0|0|0|110000|-1073741824|1|A10G|"
               f"infer|1|{ev['start_ts']}")  # reference 1.1: the id is the payload's length
    assert ev["usage_id"] == f"usage-{len(payload)}"


@pytest.mark.parametrize(("flags", "first"), [
    (("--cpu_ms:-5",), "meter: usage: cpu_ms is negative (-5)"),
    (("--cpu_ms:1", "--mem_bytes:99999999999999999999"),
     "meter: usage: mem_bytes 99999999999999999999 is absurd"),
    (("--gpu_count:100000", "--gpu_ms:1"), "meter: usage: gpu_count 100000 is absurd"),
])
def test_meter_refuses_negative_or_absurd(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          flags: tuple[str, ...], first: str) -> None:
    rc, out, err = cli(capsys, "meter", "--task:t", "--package:p", "--author:a", "--executor:e",
                       *flags, f"--root:{tmp_path}")
    assert rc == 1 and out == ""
    assert err.splitlines()[0].startswith(first)
    assert "Traceback" not in err and not (tmp_path / "ledger.jsonl").exists()


@pytest.mark.parametrize(("argv", "first", "code"), [
    (("meter", "--task:t"), "meter: missing --package", 2),
    (("meter", "--task:t", "--package:p", "--author:a", "--executor:e"),
     "meter: missing --cpu_ms or --gpu_ms", 2),
    (("meter", "--task:t", "--package:p", "--author:a", "--executor:e", "--cpu_ms:1",
      "--price_cpu:abc"), "meter: --price_cpu 'abc' is not a decimal number", 2),
    (("meter", "--task:t", "--package:p", "--author:a", "--executor:e", "--cpu_ms:1",
      "--royalty:1.5"), "meter: --royalty 1.5 is above 1", 2),
    (("sample", "--rate:1"), "sample: --rate has been removed, use --base-rate and --high-risk-rate", 2),
    (("fraud", "--task:t", "--executor:e", "--reporter:r"), "fraud: missing --request or --receipt", 1),
    (("fraud", "--task:t", "--executor:e", "--reporter:r", "--receipt:receipt-x"),
     "fraud: receipt not found in ledger", 1),
    (("fraud", "--task:t", "--executor:e", "--reporter:r", "--receipt:x", "--severity:HIGH"),
     "fraud: invalid --severity (expected low|medium|high)", 2),
    (("audit", "--recompute", "--receipt:receipt-nope"),
     "audit: receipt receipt-nope not found in ledger", 1),
    (("audit", "--task:t", "--executor:e", "--auditor:a", "--status:ok", "--receipt:receipt-nope"),
     "audit: receipt receipt-nope not found in ledger", 1),
    (("exec", "--task:t", "--wait"), "exec: --wait needs --peer:<executor multiaddr>", 2),
    (("exec", "--task:t", "--cpu_ms:-1"), "exec: request: cpu_ms is negative (-1)", 1),
    (("receipt", "--request:req-x", "--task:t", "--executor:e", "--status:ok"),
     "receipt: missing --priv", 2),
    (("ratelimit",), "ratelimit: missing --requester or --executor", 2),
    (("executor", "--priv:/nonexistent.key", "--listen:/ip4/127.0.0.1/tcp/0"),
     "executor: key file /nonexistent.key not found", 2),
])
def test_bad_input_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   argv: tuple[str, ...], first: str, code: int) -> None:
    rc, _out, err = cli(capsys, *argv, f"--root:{tmp_path}")
    assert rc == code, err
    assert err.splitlines()[0] == first or err.splitlines()[0].startswith(first)
    assert "Traceback" not in err
    assert not (tmp_path / "ledger.jsonl").exists()  # nothing half-recorded


def test_open_request_then_fraud_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "exec", "--task:job-1", "--package:pkg://cheng/fs", "--author:node:alice",
                     "--requester:node:app-1", "--input:cid://input", "--code:cid://artifact",
                     "--cpu_ms:2000", "--price_cpu:0.000001", "--epoch:1", f"--root:{tmp_path}")
    assert rc == 0 and "(open: any capable executor may claim it)" in out
    req_id = out.split()[2]
    (ev,) = list(iter_events(tmp_path / "ledger.jsonl"))
    assert ev["request_id"] == req_id and "executor_id" not in ev and ev["price_cpu_ms"] == 1000
    rc, _, err = cli(capsys, "fraud", "--task:job-9", "--executor:e", "--reporter:r",
                     f"--request:{req_id}", f"--root:{tmp_path}")
    assert rc == 1 and err.splitlines()[0] == "fraud: request/task mismatch"
    rc, out, _ = cli(capsys, "fraud", "--task:job-1", "--executor:e", "--reporter:r",
                     f"--request:{req_id}", "--severity:low", f"--root:{tmp_path}")
    assert rc == 0 and out.strip().endswith("severity_weight=0.1")
    fr = list(iter_events(tmp_path / "ledger.jsonl"))[-1]
    assert fr["type"] == "fraud_report" and fr["epoch"] == 1  # the ledger's current epoch


def test_signed_receipt_via_cli_and_sample_record(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "exec.key"
    keyfile(key, "node:exec-1")
    root = f"--root:{tmp_path / 'r'}"
    rc, out, _ = cli(capsys, "exec", "--task:job-1", "--executor:node:exec-1", "--epoch:2", root)
    req_id = out.split()[2]
    rc, out, _ = cli(capsys, "meter", "--task:job-1", "--package:p", "--author:a",
                     "--executor:node:exec-1", "--cpu_ms:1200", f"--request:{req_id}", root)
    usage_id = out.split()[2]
    rc, out, err = cli(capsys, "receipt", f"--request:{req_id}", "--task:job-1",
                       "--executor:node:exec-1", "--status:ok", "--result:cid://bafyresult",
                       f"--usage:{usage_id}", f"--priv:{key}", root)
    assert rc == 0, err
    evs = list(iter_events(tmp_path / "r" / "ledger.jsonl"))
    from cheng_build.compute.receipts import check_receipt
    from cheng_build.compute.records import ExecRequest

    r = Receipt.from_event(evs[-1])
    check_receipt(r, request=ExecRequest.from_event(evs[0]), usage=Usage.from_event(evs[1]))
    assert r.result_cid == "bafyresult" and r.epoch == 2
    rc, out, _ = cli(capsys, "sample", "--base-rate:1", "--seed:round-1", "--record", root)
    sel = json.loads(out)
    assert sel["count"] == 1 and sel["samples"][0]["receipt_id"] == r.receipt_id
    assert list(iter_events(tmp_path / "r" / "ledger.jsonl"))[-1]["type"] == "audit_sample"
    rc, out, _ = cli(capsys, "repute", "--executor:node:exec-1", "--format:json", root)
    assert json.loads(out)["ok_receipt_count"] == 1
    rc, out, _ = cli(capsys, "ratelimit", "--executor:node:exec-1", "--max-receipts:1", root)
    assert "allow_receipt: false" in out
    other = tmp_path / "other.key"
    keyfile(other, "node:someone")
    rc, _, err = cli(capsys, "receipt", f"--request:{req_id}", "--task:job-1",
                     "--executor:node:exec-1", "--status:ok", f"--priv:{other}", root)
    assert rc == 2 and err.startswith("receipt: --priv is the key of node:someone")


def test_orderbook_match_exactly_as_the_original(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from cheng_build.compute.orderbook import fraud_scores, match

    now = 1_000_000
    cards = [
        {"peer_id": "node:b", "ask_price_cpu_nano": 10, "bandwidth_out_bytes": 5},
        {"peer_id": "node:a", "ask_price_cpu_nano": 10, "resource": {"bandwidth_out_bytes": 5}},
        {"peer_id": "node:c", "ask_price_cpu_nano": 10, "bandwidth_out_bytes": 9},
        {"peer_id": "node:cheap-expired", "ask_price_cpu_nano": 1, "ts_ms": 10, "ttl_ms": 5},
        {"peer_id": "node:cheap-train-only", "ask_price_cpu_nano": 1, "ask_workload_mask": 1},
        {"peer_id": "", "ask_price_cpu_nano": 0},
        {"peer_id": "node:dear", "ask_price_cpu_nano": 11, "ask_price_io_nano": 1},
    ]
    scores = fraud_scores([{"type": "fraud_report", "executor_id": "node:c", "severity": "low",
                            "epoch": 5}, {"type": "exec_request", "epoch": 5}], 0, 3)
    assert scores == {"node:c": 0.1}
    m = match(cards, workload="infer", max_cpu_ms=100, max_gpu_ms=0, max_io_bytes=1025,
              now_ms=now, scores=scores)
    # cost ties at 1000 for a/b/c; c has a fraud score; a and b tie on bandwidth: lowest peer id
    assert (m.peer_id, m.expected_cost_nano, m.bandwidth_out_bytes) == ("node:a", 1000, 5)
    assert match(cards, workload="train", max_cpu_ms=100, max_gpu_ms=0, max_io_bytes=0,
                 now_ms=now, scores={}).peer_id == "node:cheap-train-only"
    (tmp_path / "orderbook.json").write_text(json.dumps({"cards": cards}))
    rc, _out, err = cli(capsys, "exec", "--task:t", "--cpu_ms:100", "--workload:infer",
                       f"--root:{tmp_path}")
    assert rc == 0, err
    (ev,) = list(iter_events(tmp_path / "ledger.jsonl"))
    # no fraud in this ledger: the cost tie goes to the highest bandwidth
    assert (ev["executor_id"], ev["selection_source"], ev["expected_cost_nano"]) == \
        ("node:c", "orderbook", 1000)
    rc, _, err = cli(capsys, "exec", "--task:t", "--orderbook:/nonexistent.json", f"--root:{tmp_path}")
    assert rc == 2 and err.splitlines()[0].startswith(
        "exec: orderbook match failed: orderbook file not found")
    (tmp_path / "empty.json").write_text("[]")
    rc, _, err = cli(capsys, "exec", "--task:t", f"--orderbook:{tmp_path / 'empty.json'}",
                     f"--root:{tmp_path}")
    assert rc == 1 and err.splitlines()[0] == "exec: orderbook match failed: no eligible card"
