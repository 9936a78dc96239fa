"""``cis run demo-io-lease`` end to end, as a user runs it: a real process, real sandboxed tasks,
libp2p on loopback, a real expiry and gc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_storage import storage_env

from cheng_build.cis.targets import demo_io_lease
from cheng_build.ledger.log import iter_events, verify_ledger

pytestmark = pytest.mark.network


def _cis(tmp: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    cwd = tmp / "elsewhere"
    cwd.mkdir(exist_ok=True)
    env = {k: v for k, v in storage_env().items() if not k.startswith(("CIS_", "CHENG"))}
    env.update(CIS_HOME=str(tmp / "cishome"), HOME=str(tmp / "home"))
    return subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=400)


def test_demo_io_lease_succeeds(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    r = _cis(tmp_path, "run", "demo-io-lease", f"--workdir:{wd}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Succeeded (12 completed)" in r.stdout
    store = list(iter_events(wd / "store" / "ledger.jsonl"))
    assert [e["type"] for e in store] == ["lease", "lease"]
    reader = list(iter_events(wd / "reader" / "ledger.jsonl"))
    assert [(e["type"], e["status"]) for e in reader] == [("storage_proof", "ok")]
    assert verify_ledger(wd / "store" / "ledger.jsonl").ok
    assert (wd / "out" / "hello.txt").read_text() == "hello lease"
    statuses = sorted(json.loads(p.read_text())["status"] for p in (wd / "store" / "leases").iterdir())
    assert statuses == ["expired", "pinned"]
    # the work directory is reusable, a foreign one is refused
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("mine")
    r = _cis(tmp_path, "run", "demo-io-lease", f"--workdir:{tmp_path / 'foreign'}")
    assert r.returncode == 2 and "is not empty" in r.stderr
    assert (wd / demo_io_lease.MARKER).is_file()
