"""The application API (io_backend/io_shim), the IO_* config, and store-repute's two scores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers_storage import IO_VARS, Keys, storage_env

from cheng_build.core.errors import UsageError
from cheng_build.ledger.log import Ledger, iter_events
from cheng_build.storage import api
from cheng_build.storage.config import Mode, resolve
from cheng_build.storage.repute import store_repute
from cheng_build.storage.token import issue, token_json
from cheng_build.storage.writes import LeaseRequiredError


@pytest.fixture(autouse=True)
def _no_io_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in IO_VARS:
        monkeypatch.delenv(var, raising=False)


def test_config_precedence(tmp_path: Path) -> None:
    env = {"IO_ROOT": str(tmp_path / "e"), "IO_MODE": "P2P", "IO_PEERS": "/a/p2p/x, /b/p2p/y",
           "IO_REQUIRE_LEASE": "On", "IO_LISTEN": "/ip4/127.0.0.1/tcp/1"}
    cfg = resolve(env=env)
    assert cfg.root == tmp_path / "e" and cfg.mode is Mode.P2P and cfg.peers == ("/a/p2p/x", "/b/p2p/y")
    assert cfg.enforce_lease and cfg.ledger_path == tmp_path / "e" / "ledger.jsonl"
    cfg = resolve(root=str(tmp_path / "f"), mode="local", ledger=str(tmp_path / "l.jsonl"), env=env)
    assert cfg.root == tmp_path / "f" and not cfg.enforce_lease and cfg.ledger_path == tmp_path / "l.jsonl"
    assert resolve(env={}).root.name == "cheng_storage"
    with pytest.raises(UsageError):
        resolve(mode="cloud", env={})
    for text in ("1", "true", "yes", "ON"):
        assert resolve(env={"IO_REQUIRE_LEASE": text, "IO_MODE": "p2p"}).enforce_lease
    assert not resolve(env={"IO_REQUIRE_LEASE": "0", "IO_MODE": "p2p"}).enforce_lease


def test_api_reads_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = Keys(tmp_path)
    monkeypatch.setenv("IO_ROOT", str(tmp_path / "root"))
    uri = api.write_text("cid://", "hello")
    assert uri == "cid://bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    assert api.read_text(uri) == "hello" and api.read_bytes(uri.replace("cid://", "cid:")) == b"hello"
    assert api.write_text(str(tmp_path / "plain.txt"), "file") == str(tmp_path / "plain.txt")
    assert api.read_text(tmp_path / "plain.txt") == "file"
    monkeypatch.setenv("IO_MODE", "p2p")
    monkeypatch.setenv("IO_REQUIRE_LEASE", "1")
    with pytest.raises(LeaseRequiredError):
        api.write_text("cid://", "unpaid")
    import time

    tok = issue(keys.alice, package_id="pkg://cheng/demo", author_id="node:alice",
                provider_id="node:store-1", nbytes=100, duration_days=1, replicas=1,
                price_per_gb_month=1, royalty_rate=0, treasury_rate=0, now=int(time.time()))
    (tmp_path / "tok.json").write_text(token_json(tok))
    paid = api.write_text("cid://", "paid", lease=tmp_path / "tok.json", registry=keys.registry)
    assert api.read_text(paid) == "paid"
    [ev] = list(iter_events(tmp_path / "root" / "ledger.jsonl"))
    assert ev["lease_id"] == tok.lease_id


def test_api_imports_nothing_heavy() -> None:
    code = ("import sys, cheng_build.storage.api; heavy = [m for m in ('multiformats', 'nacl', 'trio', "
            "'libp2p', 'cheng_build.cas.cid', 'cheng_build.storage.writes') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=storage_env(), check=True)
    assert out.stdout.strip() == "[]"


def test_store_repute_compat_and_beta(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    # the original's lines (no chain) and ours mixed; another provider's proofs do not count
    ledger.write_text('{"type":"storage_proof","proof_id":"proof-80","provider_id":"p1","cid":"c",'
                      '"bytes":5,"status":"ok","proof_hash":"ab","epoch":-1,"ts":"1"}\n')
    led = Ledger(ledger)
    for status in ("ok", "ok", "missing", "ok", "missing", "missing"):
        led.append({"type": "storage_proof", "provider_id": "p1", "status": status})
    led.append({"type": "storage_proof", "provider_id": "p2", "status": "missing"})
    r = store_repute(ledger, "p1", forgetting=0.5)
    assert (r.proof_ok_count, r.proof_missing_count, r.score, r.level) == (4, 3, 4 / 7, "warn")
    a = b = 1.0
    for good in (1, 1, 1, 0, 1, 0, 0):
        a, b = 0.5 * a + good, 0.5 * b + (1 - good)
    assert r.beta_alpha == pytest.approx(a) and r.beta_score == pytest.approx(a / (a + b))
    assert r.beta_score < r.score  # recent failures weigh more than old successes
    assert store_repute(ledger, "nobody").score == 1.0 and store_repute(ledger, "nobody").level == "excellent"
    assert list(r.compat_dict()) == ["provider_id", "proof_ok_count", "proof_missing_count", "score", "level"]
