"""``cheng-storage`` dispatch and ``verify-ledger`` end to end through the real dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cheng_build.cli.storage import COMMANDS, main
from cheng_build.ledger.log import Ledger


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(autouse=True)
def _no_io_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("IO_MODE", "IO_ROOT", "IO_LEDGER", "IO_LISTEN", "IO_PEERS", "IO_REQUIRE_LEASE"):
        monkeypatch.delenv(var, raising=False)


def test_help_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "--help")
    assert rc == 0
    for name in ("put", "leasegen", "proof", "gc", "verify-ledger", "exec", "settle"):
        assert f"  {name}" in out


def test_missing_group_module_is_reported(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.cli import app

    monkeypatch.setitem(COMMANDS, "exec", app.Subcommand("cheng_build.cli.no_such_module", "x"))
    rc, out, err = cli(capsys, "exec", "--task:t")
    assert rc == 2 and out == ""
    assert err.splitlines()[0] == "cheng-storage: exec: not available in this build"


def test_verify_ledger_ok_and_tampered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    led = Ledger(root / "ledger.jsonl")
    for i in range(3):
        led.append({"type": "lease", "bytes": i})
    rc, out, err = cli(capsys, "verify-ledger", f"--root:{root}")
    assert rc == 0 and out.startswith("ledger ok: 3 events (3 chained, 0 legacy)"), err
    rc, out, _ = cli(capsys, "verify-ledger", "--root", str(root), "--format=json")
    assert rc == 0 and json.loads(out)["chained"] == 3
    path = root / "ledger.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"bytes":1', b'"bytes":7'))
    rc, out, err = cli(capsys, "verify-ledger", f"--ledger:{path}")
    assert rc == 1 and out == ""
    assert err.splitlines()[0].startswith(f"verify-ledger: {path}: line 3: chain broken")
    assert "Traceback" not in err


def test_verify_ledger_repairs_a_torn_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    Ledger(path).append({"type": "lease"})
    with open(path, "ab") as fh:
        fh.write(b'{"type":"le')
    rc, _, err = cli(capsys, "verify-ledger", f"--ledger:{path}")
    assert rc == 1 and "torn last line" in err.splitlines()[0]
    rc, out, _ = cli(capsys, "verify-ledger", f"--ledger:{path}", "--repair")
    assert rc == 0 and out.startswith("repaired: cut 11 bytes")


def test_bad_mode_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IO_MODE", "cloud")
    rc, _, err = cli(capsys, "verify-ledger", f"--root:{tmp_path}")
    assert rc == 2 and err.splitlines()[0] == "verify-ledger: unknown mode 'cloud'"
