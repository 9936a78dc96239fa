"""``--allow-unsigned`` (issue 20): unsigned (``local:``) snapshots only with the flag, only at L0,
a warning on every use, and a lock marker that L1/L2 refuse — through cheng-pkg and chengc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_trust import Cli, app_manifest, snapshot

FS = "pkg://cheng/fs"
REG = "--registry:registry.jsonl"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    from helpers_chengc import install_fake

    c = Cli(tmp_path, monkeypatch, capfd)
    monkeypatch.setenv("CHENG_COMPILER", str(install_fake(tmp_path / "bin")))
    # A registry of the existing tooling: one unsigned publish with a local: placeholder.
    cid = snapshot(tmp_path, "fs", {"cheng-package.toml": f'package_id = "{FS}"\n',
                                    "src/fs.cheng": "fn Read(): int32 = 1\n"})
    line = {"package_id": FS, "author_id": "node:alice", "channel": "stable", "epoch": 1,
            "cid": cid, "format": "dag", "signature": "local:legacy", "created_ts": "1"}
    (tmp_path / "registry.jsonl").write_text(json.dumps(line) + "\n")
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.materialize import materialize

    materialize(Blockstore(tmp_path / "chengcache"), parse_cid(cid), tmp_path / "chengcache")
    app_manifest(tmp_path, [FS], ["cheng/fs/fs"])
    return c


def _resolve(cli: Cli, *flags: str) -> tuple[int, str, str]:
    return cli.pkg("resolve", "--manifest:cheng-package.toml", REG, "--store:chengcache",
                   "--out:cheng.lock.toml", *flags)


def test_resolve_and_verify_need_the_flag_at_l0(cli: Cli) -> None:
    rc, _, err = _resolve(cli, "--level:L0")
    first = next(ln for ln in err.splitlines() if "warning" not in ln)
    assert rc == 1 and first == "resolve: signature failed", err
    assert "accepted only with --allow-unsigned at L0" in err
    assert not (cli.tmp / "cheng.lock.toml").exists()
    rc, _, err = _resolve(cli, "--level:L0", "--allow-unsigned")
    assert rc == 0, err
    assert f"resolve: warning: {FS}: unsigned snapshot" in err
    lock = (cli.tmp / "cheng.lock.toml").read_text()
    assert "unsigned = true" in lock and "lock_version = 2" in lock
    # verify at L0: again only with the flag, warning on this use too.
    rc, _, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG, "--level:L0")
    assert rc == 1 and "verify: signature failed" in err.splitlines(), err
    rc, out, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG, "--level:L0",
                           "--allow-unsigned")
    assert rc == 0 and out.strip() == "ok" and "unsigned snapshot" in err


@pytest.mark.parametrize("level", ["L1", "L2"])
def test_the_flag_and_the_marker_are_refused_above_l0(cli: Cli, level: str) -> None:
    rc, _, err = _resolve(cli, f"--level:{level}", "--allow-unsigned")
    assert rc == 2 and err.splitlines()[0] == f"resolve: --allow-unsigned is refused at {level}"
    rc, _, err = _resolve(cli, "--level:L0", "--allow-unsigned")
    assert rc == 0, err
    rc, _, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG, f"--level:{level}",
                         "--allow-unsigned")
    assert rc == 2 and err.splitlines()[0] == f"verify: --allow-unsigned is refused at {level}"
    # Even against a registry it does not consult (a lock handed over alone), the marker is
    # refused at L1/L2 before anything else.
    rc, _, err = cli.pkg("verify", "--lock:cheng.lock.toml", f"--level:{level}",
                         "--registry:none.jsonl")
    assert rc == 1 and err.splitlines()[0] == "verify: signature failed", err
    assert "marked unsigned = true" in err


def test_chengc_allow_unsigned(cli: Cli) -> None:
    base = ("app.cheng", "--manifest:cheng-package.toml", REG, "--emit:check",
            "--pkg-cache:chengcache")
    rc, _, err = cli.chengc(*base, env={"PKG_LEVEL": "L0"})
    assert rc == 1 and "chengc: resolve: signature failed" in err.splitlines(), err
    rc, _, err = cli.chengc(*base, "--allow-unsigned", env={"PKG_LEVEL": "L0"})
    assert rc == 0, err
    assert "unsigned snapshot" in err
    rc, _, err = cli.chengc(*base, "--allow-unsigned", env={"PKG_LEVEL": "L1"})
    assert rc == 2 and "--allow-unsigned is refused at L1" in err.splitlines()[0], err
