"""Hole 1 of issue 13: every consumer of the registry verifies it before using a line of it.

The attack: Mallory, who can write the registry file (a mirror, a shared folder, a sync peer),
appends one correctly hash-chained publish of ``pkg://cheng/fs`` signed with her own key.
``cheng-registry verify`` refuses the line; resolve, verify, fetch, meta, log and chengc must too,
before anything is written, at L1 and L2; at L0 they warn.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers_trust import Cli, app_manifest, forged_publish, key, publish_dir, snapshot, tree_digest

FS = "pkg://cheng/fs"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    from helpers_chengc import install_fake

    c = Cli(tmp_path, monkeypatch, capfd)
    monkeypatch.setenv("CHENG_COMPILER", str(install_fake(tmp_path / "bin")))
    return c


def _mallory_world(tmp: Path) -> dict[str, str]:
    """Alice owns fs (epoch 1); Mallory appends a chained, self-signed epoch 2 with her code."""
    reg = tmp / "registry.jsonl"
    good = publish_dir(tmp, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 1\n"})
    evil = snapshot(tmp, "evil", {"cheng-package.toml": f'package_id = "{FS}"\n',
                                  "src/fs.cheng": "fn Read(): int32 = 666 // MALLORY\n"})
    forged_publish(reg, key("node:mallory"), FS, evil, epoch=2)
    app_manifest(tmp, [FS], ["cheng/fs/fs"])
    return {"good": good, "evil": evil}


def _mallory_lock(tmp: Path) -> Path:
    """The lock Mallory hands out: resolved (without verifying) from her registry."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.lock import dump_lock
    from cheng_build.pkg.manifest import load_manifest
    from cheng_build.pkg.resolve import resolve_manifest
    from cheng_build.trust.registry_log import RegistryLog

    lock = resolve_manifest(load_manifest(tmp / "cheng-package.toml"),
                            RegistryLog.load(tmp / "registry.jsonl"), Blockstore(tmp / "chengcache"))
    dump_lock(lock, tmp / "evil.lock.toml", "toml")
    return tmp / "evil.lock.toml"


REFUSED = "registry does not verify: line 2: namespace owned by node:alice"


def test_registry_verify_names_the_forged_line(cli: Cli) -> None:
    _mallory_world(cli.tmp)
    rc, _, err = cli.registry("verify", "--registry:registry.jsonl")
    assert rc == 1 and err.splitlines()[0] == "verify: line 2: namespace owned by node:alice"


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_resolve_refuses_a_forged_registry_and_writes_no_lock(cli: Cli, level: str) -> None:
    _mallory_world(cli.tmp)
    rc, _out, err = cli.pkg("resolve", "--manifest:cheng-package.toml", "--registry:registry.jsonl",
                           "--out:cheng.lock.toml", f"--level:{level}")
    assert rc == 1, err
    assert err.splitlines()[0] == f"resolve: {REFUSED}"
    assert "why:" in err and "how:" in err
    assert not (cli.tmp / "cheng.lock.toml").exists()


def test_resolve_at_l0_warns_and_goes_on(cli: Cli) -> None:
    w = _mallory_world(cli.tmp)
    rc, _, err = cli.pkg("resolve", "--manifest:cheng-package.toml", "--registry:registry.jsonl",
                         "--out:cheng.lock.toml", "--level:L0")
    assert rc == 0, err
    assert ("resolve: warning: registry does not verify (used anyway at L0): line 2: namespace "
            "owned by node:alice") in err
    assert w["evil"] in (cli.tmp / "cheng.lock.toml").read_text()


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_verify_refuses_a_lock_against_a_forged_registry(cli: Cli, level: str) -> None:
    _mallory_world(cli.tmp)
    lock = _mallory_lock(cli.tmp)
    rc, out, err = cli.pkg("verify", f"--lock:{lock.name}", "--registry:registry.jsonl",
                           f"--level:{level}")
    assert rc == 1 and out == ""
    assert err.splitlines()[0] == f"verify: {REFUSED}"


def test_meta_and_log_refuse_a_forged_registry(cli: Cli) -> None:
    _mallory_world(cli.tmp)
    lock = _mallory_lock(cli.tmp)
    rc, _, err = cli.pkg("meta", f"--lock:{lock.name}", "--package:pkg://cheng/app",
                         "--channel:stable", "--registry:registry.jsonl", "--out:meta.toml")
    assert rc == 1 and err.splitlines()[0] == f"meta: {REFUSED}"
    assert not (cli.tmp / "meta.toml").exists()
    rc, out, err = cli.pkg("log", f"--package:{FS}", "--registry:registry.jsonl")
    assert rc == 1 and out == "" and err.splitlines()[0] == f"log: {REFUSED}"
    rc, out, err = cli.pkg("search", "fs", "--registry:registry.jsonl")
    assert rc == 1 and out == "" and err.splitlines()[0] == f"search: {REFUSED}"


def test_fetch_refuses_before_fetching(cli: Cli) -> None:
    w = _mallory_world(cli.tmp)
    lock = _mallory_lock(cli.tmp)
    dst = cli.tmp / "dst"
    rc, _out, err = cli.pkg("fetch", f"--lock:{lock.name}", "--registry:registry.jsonl",
                           f"--pkg-cache:{dst}", "--mode:local")
    assert rc == 1 and err.splitlines()[0] == f"fetch: {REFUSED}"
    assert not (dst / "packages" / w["evil"]).exists()


def test_chengc_bundle_refuses_mallorys_code(cli: Cli) -> None:
    _mallory_world(cli.tmp)
    rc, _out, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                              "--registry:registry.jsonl", "--emit:bundle", "--out:app.car")
    assert rc == 1, err
    assert err.splitlines()[0] == f"chengc: resolve: {REFUSED}"
    assert not (cli.tmp / "app.car").exists()
    # With Mallory's lock handed over instead, verify refuses it.
    lock = _mallory_lock(cli.tmp)
    rc, _, err = cli.chengc("app.cheng", f"--lock:{lock.name}", "--registry:registry.jsonl",
                            "--emit:bundle", "--out:app.car")
    assert rc == 1 and err.splitlines()[0] == f"chengc: verify: {REFUSED}"
    assert not (cli.tmp / "app.car").exists()


def _good_world_with_checkpoint(cli: Cli, ttl: int, now: int | None = None) -> Path:
    from cheng_build.trust.registry_ops import append_checkpoint

    reg = cli.tmp / "registry.jsonl"
    good = publish_dir(cli.tmp, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 1\n"})
    # Lay the snapshot out as the fetcher would, so chengc needs no peer.
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.materialize import materialize

    materialize(Blockstore(cli.tmp / "chengcache"), parse_cid(good), cli.tmp / "chengcache")
    append_checkpoint(reg, key("op:main"), ttl_s=ttl, now=now)
    app_manifest(cli.tmp, [FS], ["cheng/fs/fs"])
    return reg


def test_chengc_remembered_verify_rechecks_the_remembered_checkpoint(cli: Cli) -> None:
    """Roll the registry back to bytes chengc verified before, after this client saw a longer log:
    the stamp of those bytes must not be reused (``registry forked``)."""
    from cheng_build.trust.registry_ops import append_checkpoint

    reg = _good_world_with_checkpoint(cli, ttl=3600)
    rc, _, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                            "--registry:registry.jsonl", "--emit:check")
    assert rc == 0, err
    old = reg.read_bytes()
    publish_dir(cli.tmp, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 2\n"},
                epoch=2, version="1.0.1")
    append_checkpoint(reg, key("op:main"), ttl_s=3600)
    assert cli.registry("verify", "--registry:registry.jsonl")[0] == 0  # remembers the longer log
    reg.write_bytes(old)  # the rollback
    rc, out, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                              "--registry:registry.jsonl", "--emit:check")
    assert rc == 1, out
    assert err.splitlines()[0] == "chengc: verify: registry does not verify: registry forked"


def test_chengc_remembered_verify_rechecks_checkpoint_expiry(cli: Cli) -> None:
    """A stamp made while the checkpoint was valid stops working when it expires (freeze attack)."""
    start = int(time.time())
    _good_world_with_checkpoint(cli, ttl=8, now=start)
    before = tree_digest(cli.tmp / "artifacts")
    rc, _, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                            "--registry:registry.jsonl", "--emit:check")
    assert rc == 0, err
    time.sleep(max(0.0, start + 9 - time.time()))
    rc, _, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                            "--registry:registry.jsonl", "--emit:check")
    assert rc == 1
    assert err.splitlines()[0] == ("chengc: verify: registry does not verify: registry checkpoint "
                                   "expired")
    assert tree_digest(cli.tmp / "artifacts") == before


def test_chengc_at_l0_warns_and_builds(cli: Cli) -> None:
    _mallory_world(cli.tmp)
    rc, _out, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                              "--registry:registry.jsonl", "--emit:check",
                              env={"PKG_LEVEL": "L0"})
    assert rc == 0, err
    assert "registry does not verify (used anyway at L0): line 2: namespace owned by node:alice" in err
