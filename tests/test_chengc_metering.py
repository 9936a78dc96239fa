"""Metered builds: ``chengc --ledger`` records the compile's measured usage, and settlement pays the
royalty to the authors of the packages the build used, with the books still balanced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_chengc import Runner, write_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.ledger.pricing import royalty_shares

AUTHORS = ("node:alice", "node:bob", "node:alice")  # alice wrote two of the three packages


def _project(tmp: Path) -> None:
    """Three locked packages by two authors, laid out in the cache as the fetcher leaves them."""
    from cheng_build.pkg.lock import dump_lock
    from cheng_build.pkg.manifest import load_manifest
    from cheng_build.pkg.publish import publish
    from cheng_build.pkg.resolve import resolve_manifest
    from cheng_build.trust.keys import KeyPair
    from cheng_build.trust.registry_log import RegistryLog

    keys = {a: KeyPair.generate(a) for a in set(AUTHORS)}
    for i, author in enumerate(AUTHORS):
        src = tmp / "src" / f"dep{i}"
        write_tree(src, {"cheng-package.toml": f'package_id = "pkg://cheng/dep{i}"\nversion = "1.0.0"\n',
                         "src/api.cheng": f"fn Api{i}(): int32 = {i}\n"})
        e = publish(registry=tmp / "registry.jsonl", key=keys[author], package_id=f"pkg://cheng/dep{i}",
                    channel="stable", epoch=1, src=src, store=None, now=1730000000)
        shutil.copytree(src, tmp / "chengcache" / "packages" / str(e.cid))
    write_tree(tmp, {
        "cheng-package.toml": 'package_id = "pkg://cheng/app"\n' + "".join(
            f'[[dependencies]]\npackage_id = "pkg://cheng/dep{i}"\nchannel = "stable"\n' for i in range(3)),
        "app.cheng": "".join(f"import cheng/dep{i}/api\n" for i in range(3)) + "fn main(): int32 = 0\n",
    })

    def read(pid: str, cid: str, fmt: str) -> tuple[bytes, str]:
        return (tmp / "src" / pid.rsplit("/", 1)[1] / "cheng-package.toml").read_bytes(), "cheng-package.toml"

    registry = RegistryLog.load(tmp / "registry.jsonl")
    lock = resolve_manifest(load_manifest(tmp / "cheng-package.toml"), registry, None,
                            read_manifest=read, created_ts="1731111111")
    dump_lock(lock, tmp / "cheng.lock.toml", "toml")


@pytest.fixture
def cc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Runner:
    r = Runner(tmp_path, monkeypatch, capfd)
    monkeypatch.delenv("PKG_ROOTS")
    for k in ("PKG_LEVEL", "PKG_REGISTRY", "CHENG_EPOCH", "CHENGC_EXECUTOR_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CHENGC_EXECUTOR_ID", "node:builder")
    _project(tmp_path)
    return r


def _storage(tmp: Path, *argv: str) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "cheng_build.cli.storage", *argv], cwd=tmp,
                       env=dict(os.environ), capture_output=True, text=True, check=False, timeout=120)
    return p.returncode, p.stdout, p.stderr


BUILD = ("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl", "--ledger:ledger.jsonl")


def test_a_metered_build_records_measured_usage_and_pays_the_authors(cc: Runner) -> None:
    (cc.tmp / "cheng-pkg-config.toml").write_text('[metering]\nprice_cpu = "0.001"\nprice_mem = "1"\n'
                                                  'royalty = "0.3"\ntreasury = "0.1"\n')
    rc, _out, err = cc(*BUILD)
    assert rc == 0, err
    events = [json.loads(line) for line in (cc.tmp / "ledger.jsonl").read_text().splitlines()]
    assert len(events) == 1
    ev = events[0]
    assert ev["type"] == "compute" and ev["task_id"].startswith("chengc:bafybei")
    assert ev["package_id"] == "pkg://cheng/app" and ev["executor_id"] == "node:builder"
    # Measured, not declared: the test-double compiler is a Python process (tens of MB of RSS).
    assert ev["mem_bytes"] > 1 << 20 and ev["source"] == "rusage"
    assert [p["author_id"] for p in ev["packages"]] == list(AUTHORS)
    assert ev["royalty"] > 0 and ev["total"] == ev["royalty"] + ev["treasury"] + ev["executor"]
    # A hit runs no compiler and records nothing.
    rc, _out, err = cc(*BUILD)
    assert rc == 0, err
    assert len((cc.tmp / "ledger.jsonl").read_text().splitlines()) == 1

    rc, _out, err = _storage(cc.tmp, "verify-ledger", "--ledger:ledger.jsonl")
    assert rc == 0, err
    rc, out, err = _storage(cc.tmp, "settle", "--ledger:ledger.jsonl", "--epoch:0", "--format:json")
    assert rc == 0, err
    doc = json.loads(out)
    authors = doc["payouts"]["authors"]
    shares = dict(royalty_shares(ev["royalty"], ev["packages"]))  # last share per author, for scale
    assert set(authors) == {"node:alice", "node:bob"} and shares
    alice, bob = authors["node:alice"], authors["node:bob"]
    assert abs(alice - 2 * bob) <= 2  # two packages' shares against one
    paid = sum(authors.values()) + sum(doc["payouts"]["executors"].values()) + doc["treasury_total"]
    assert paid == doc["compute_total"] == ev["total"]


def test_bad_metering_config_is_a_clear_error(cc: Runner) -> None:
    (cc.tmp / "cheng-pkg-config.toml").write_text('[metering]\nroyalty = "1.5"\n')
    rc, _out, err = cc(*BUILD)
    assert rc == 2 and err.splitlines()[0] == "chengc: [metering] royalty is out of range: '1.5'"
    assert not (cc.tmp / "ledger.jsonl").exists()
    (cc.tmp / "cheng-pkg-config.toml").write_text('[metering]\nprice_gpu = "1"\n')
    rc, _out, err = cc(*BUILD)
    assert rc == 2 and "unknown key metering.price_gpu" in err


def test_settle_refuses_a_forged_package_list(cc: Runner) -> None:
    rc, _out, err = cc(*BUILD)
    assert rc == 0, err
    from cheng_build.ledger.log import Ledger

    ev = json.loads((cc.tmp / "ledger.jsonl").read_text().splitlines()[0])
    forged = {k: v for k, v in ev.items() if k not in ("seq", "prev", "usage_id")}
    forged["packages"] = [{"package_id": "pkg://cheng/x", "cid": "b", "author_id": ""}]
    Ledger(cc.tmp / "ledger.jsonl").append(forged)
    rc, _out, err = _storage(cc.tmp, "settle", "--ledger:ledger.jsonl", "--epoch:0")
    assert rc == 1 and "packages is not a list of {package_id, cid, author_id}" in err.splitlines()[0]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**15), st.lists(st.sampled_from(["a", "b", "c"]), max_size=20))
def test_royalty_shares_add_up_exactly(royalty: int, authors: list[str]) -> None:
    pk = [{"author_id": a} for a in authors]
    shares = royalty_shares(royalty, pk)
    assert [a for a, _ in shares] == authors
    if authors:
        assert sum(s for _, s in shares) == royalty
        assert max(s for _, s in shares) - min(s for _, s in shares) <= 1
    else:
        assert shares == []
