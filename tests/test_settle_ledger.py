"""Settlement of ledgers our writer chains, and of bad ledgers, through the cheng-storage CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_settle import audit, compute, lease, proof, receipt, request, write_legacy

from cheng_build.cli import storage
from cheng_build.ledger.log import Ledger
from cheng_build.settle.api import Mode, settle

NANO = 1_000_000_000


def _chained(path: Path) -> Path:
    """A ledger written by the project's own ledger writer (seq/prev chain, integer money)."""
    led = Ledger(path)
    led.append_many([
        lease(royalty=120_000_000, treasury=30_000_000, prov=850_000_000, epoch=1,
              price_per_gb_month=250_000_000, royalty_rate=120_000_000, treasury_rate=30_000_000,
              storage_cost=1_000_000_000),
        compute(royalty=392_700_000, treasury=98_175_000, executor_amount=2_781_625_000,
                price_gpu_ms=20_000, price_gpu_mem_gb=150_000_000, price_cpu_ms=0, price_mem_gb=0,
                price_io_gb=0, royalty_rate=120_000_000, treasury_rate=30_000_000,
                total=3_272_500_000),
        audit(status="bad", penalty=100_000_000),
        proof(status="failed", penalty=50_000_000),
        {"type": "gc_sweep", "epoch": 1, "removed": 3},
    ])
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = storage.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_chained_ledger_settles_exactly(tmp_path: Path) -> None:
    s = settle(_chained(tmp_path / "ledger.jsonl"), epoch=1)
    d = json.loads(s.render())
    assert d["storage_total"] == NANO
    assert d["compute_total"] == 3_272_500_000
    # GPU pricing from the chained integer prices: 110000 ms x 20000 nano/ms; 11 GiB x 0.15
    assert d["pricing"]["gpu_core_total"] == 2_200_000_000
    assert d["pricing"]["gpu_mem_total"] == 1_650_000_000
    # the failed audit and the failed storage proof both moved money to the treasury
    assert d["audit_total"] == 150_000_000
    assert d["payouts"]["penalties"] == {"node:exec-1": 100_000_000, "node:store-1": 50_000_000}
    assert d["payouts"]["providers"] == {"node:store-1": 800_000_000}
    paid = sum(sum(d["payouts"][t].values()) for t in ("authors", "providers", "executors"))
    assert paid + d["treasury_total"] == d["storage_total"] + d["compute_total"]
    assert s.scan.chained == 5 and s.scan.legacy == 0
    assert s.totals.unknown_types == {"gc_sweep": 1}
    c = json.loads(settle(tmp_path / "ledger.jsonl", epoch=1, mode=Mode.COMPAT).render())
    assert c["storage_total"] == 1.0 and c["audit_total"] == 0.15000000000000002


def test_cli_formats_out_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    led = _chained(tmp_path / "root" / "ledger.jsonl")
    rc, out, err = run(capsys, "settle", f"--root:{tmp_path / 'root'}", "--epoch:1")
    assert rc == 0 and json.loads(out)["epoch"] == 1
    assert "1 events of unknown types were counted, not settled (gc_sweep: 1)" in err
    rc, out, _ = run(capsys, "settle", "--ledger", str(led), "--epoch=1", "--format:toml",
                     f"--out:{tmp_path / 's.toml'}", f"--reconcile-csv:{tmp_path / 'r.csv'}")
    assert rc == 0 and out.startswith("settle ok: ")
    assert (tmp_path / "s.toml").read_text().startswith("epoch = 1\n")
    assert (tmp_path / "r.csv").read_text().startswith("kind,receipt_id,")
    rc, out, _ = run(capsys, "settle", f"--ledger:{led}", "--format:json", f"--out:{tmp_path / 's.json'}")
    body = (tmp_path / "s.json").read_bytes()
    assert not body.endswith(b"\n")  # the original's --out has no trailing newline
    # the same ledger gives the same bytes, and the same sha the CLI reports
    assert body == settle(led).render("json")
    import hashlib
    assert hashlib.sha256(body).hexdigest() in out
    rc, out, _ = run(capsys, "settle", f"--ledger:{led}", "--format:")
    assert rc == 0 and out.startswith("epoch = -1")  # empty format means toml, as the original
    rc, _, err = run(capsys, "settle", f"--ledger:{led}", "--top:-1")
    assert rc == 2 and err.startswith("settle: --top must be 0 or more")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("attack", ["edited", "duplicated", "reordered", "removed", "torn",
                                    "not_json", "inserted_legacy", "no_type", "blank_in_chain"])
def test_bad_ledgers_stop_settle_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], attack: str) -> None:
    led = _chained(tmp_path / "ledger.jsonl")
    lines = _lines(led)
    if attack == "edited":
        lines[1] = lines[1].replace(b'"royalty":392700000', b'"royalty":992700000')
    elif attack == "duplicated":
        lines.insert(2, lines[1])
    elif attack == "reordered":
        lines[1], lines[2] = lines[2], lines[1]
    elif attack == "removed":
        del lines[1]
    elif attack == "torn":
        lines[-1] = lines[-1][:20]
    elif attack == "not_json":
        lines[2] = b'{"type":"audit",,}\n'
    elif attack == "inserted_legacy":
        lines.insert(3, json.dumps(audit("audit-x", penalty=5.0)).encode() + b"\n")
    elif attack == "no_type":
        lines.insert(0, b'{"epoch":1}\n')
    elif attack == "blank_in_chain":
        lines.insert(2, b"\n")
    led.write_bytes(b"".join(lines))
    out = tmp_path / "out.json"
    csv = tmp_path / "r.csv"
    rc, stdout, err = run(capsys, "settle", f"--ledger:{led}", f"--out:{out}",
                          f"--reconcile-csv:{csv}")
    assert rc == 1, err
    first = err.splitlines()[0]
    assert first.startswith("settle: ledger line "), first
    assert not out.exists() and not csv.exists() and stdout == ""
    assert "Traceback" not in err


def test_the_edited_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    led = _chained(tmp_path / "ledger.jsonl")
    lines = _lines(led)
    lines[1] = lines[1].replace(b'"executor_id":"node:exec-1"', b'"executor_id":"node:evil"')
    led.write_bytes(b"".join(lines))
    rc, _, err = run(capsys, "settle", f"--ledger:{led}")
    assert rc == 1
    assert err.splitlines()[0] == "settle: ledger line 3: chain broken: prev does not match line 2"


def test_legacy_ids_collide_default_refuses_compat_merges(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the original's ids are payload lengths: two different receipts, one id
    led = write_legacy(tmp_path / "ledger.jsonl", [
        request("req-60"), receipt("receipt-61", "req-60", status="ok"),
        receipt("receipt-61", "req-60", status="bad", error="timeout"),
    ])
    rc, _, err = run(capsys, "settle", f"--ledger:{led}")
    assert rc == 1
    assert err.splitlines()[0] == "settle: ledger line 3: receipt_id receipt-61 appears twice"
    assert "--compat" in err
    rc, out, err = run(capsys, "settle", f"--ledger:{led}", "--compat")
    assert rc == 0
    assert "settle: warning: repeated ids merged as the original did (receipt_id: 1)" in err
    d = json.loads(out)
    assert d["counts"]["exec_receipt"] == 2 and d["reconcile"]["bad_receipt_count"] == 1


def test_bad_money_is_an_error_naming_the_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for bad, what in ((-1.5, "royalty is negative"), ("12", "royalty is not a number"),
                      (True, "royalty is not a number")):
        led = write_legacy(tmp_path / "ledger.jsonl", [lease(), lease(royalty=bad)])
        rc, _, err = run(capsys, "settle", f"--ledger:{led}")
        assert rc == 1, err
        assert err.splitlines()[0].startswith(f"settle: ledger line 2: {what}"), err
    led = write_legacy(tmp_path / "ledger.jsonl", [lease(royalty=1e308, prov=1e308)])
    rc, _, err = run(capsys, "settle", f"--ledger:{led}", "--compat")
    assert rc == 1 and "overflows" in err.splitlines()[0]


def test_missing_ledger_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "settle", f"--root:{tmp_path / 'fresh'}")
    assert rc == 2 and err.splitlines()[0].startswith("settle: no ledger at ")


def test_original_quirks_tolerated(tmp_path: Path) -> None:
    # raw control characters and non-UTF-8 bytes inside strings (the original wrote them), blank
    # lines, floats where ints belong: read as the original did
    led = tmp_path / "ledger.jsonl"
    good = json.dumps(lease()).encode()
    raw = good.replace(b'"pkg://demo/text"', b'"pkg://demo/\tt\xffext"')
    led.write_bytes(raw + b"\n\n" + json.dumps(compute("usage-1", epoch=1.0)).encode() + b"\n")
    d = json.loads(settle(led, mode=Mode.COMPAT).render())
    assert d["counts"] == {"lease": 1, "compute": 1, "audit": 0, "exec_request": 0,
                           "exec_receipt": 0}
    assert json.loads(settle(led, epoch=1).render())["counts"]["compute"] == 1


@pytest.mark.parametrize(("argv", "first"), [
    (["settle", "--ledger:fifo"], "settle: --ledger: /*fifo is a FIFO (named pipe)"),
    (["settle", "--ledger:adir"], "settle: --ledger: /*adir is a directory"),
    (["settle", "--ledger:ledger.jsonl", "--out:adir"], "settle: --out: adir is a directory"),
    (["settle", "--ledger:ledger.jsonl", "--reconcile-csv:adir"],
     "settle: --reconcile-csv: adir is a directory"),
    (["settle", "--ledger:ledger.jsonl", "--format:xml"], "settle: argument --format: invalid choice"),
    (["settle", "--ledger:ledger.jsonl", "--epoch:-3"], "settle: --epoch must be -1 (all)"),
])
def test_bad_paths_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str], argv: list[str], first: str) -> None:
    import os

    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    (tmp_path / "adir").mkdir()
    write_legacy(tmp_path / "ledger.jsonl", [lease()])
    rc, out, err = run(capsys, *argv)
    import re

    # the ledger path is shown absolute (as the storage config resolves it)
    pattern = re.escape(first).replace(re.escape("/*"), ".*")
    assert rc == 2 and re.match(pattern, err.splitlines()[0]), err
    assert out == ""
