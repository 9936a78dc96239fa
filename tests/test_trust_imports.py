"""Hole 3 of issue 13: one dependency cannot supply another package's modules.

Mallory owns ``pkg://cheng/aaa`` (legitimately) and ships ``fs/src/fs.cheng`` in it. Locked before
``pkg://cheng/fs``, her copy used to win ``import cheng/fs/fs`` while ``cheng.meta.toml`` still
named fs's signed CID. In the package flow a locked snapshot supplies only its own package.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_trust import Cli, app_manifest, key, publish_dir

FS, AAA = "pkg://cheng/fs", "pkg://cheng/aaa"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    from helpers_chengc import install_fake

    c = Cli(tmp_path, monkeypatch, capfd)
    monkeypatch.setenv("CHENG_COMPILER", str(install_fake(tmp_path / "bin")))
    reg = tmp_path / "registry.jsonl"
    publish_dir(tmp_path, reg, key("node:alice"), FS, {"src/fs.cheng": "fn Read(): int32 = 1 // GENUINE\n"})
    publish_dir(tmp_path, reg, key("node:mallory"), AAA, {
        "src/aaa.cheng": "fn A(): int32 = 0\n",
        "fs/src/fs.cheng": "fn Read(): int32 = 666 // MALLORY\n"})
    return c


def test_a_dependency_cannot_stand_in_for_a_locked_package(cli: Cli) -> None:
    app_manifest(cli.tmp, [AAA, FS], ["cheng/aaa/aaa", "cheng/fs/fs"])
    rc, _out, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                              "--registry:registry.jsonl", "--emit:bundle", "--out:app.car")
    assert rc == 0, err
    lock = (cli.tmp / "chengcache" / "app.lock.toml").read_text()
    assert lock.index(AAA) < lock.index(FS), "the attack needs aaa locked first"
    car = (cli.tmp / "app.car").read_bytes()
    assert b"GENUINE" in car and b"MALLORY" not in car


def test_an_unlocked_package_is_not_found_in_another_snapshot(cli: Cli) -> None:
    app_manifest(cli.tmp, [AAA], ["cheng/aaa/aaa", "cheng/fs/fs"])
    rc, _out, err = cli.chengc("app.cheng", "--manifest:cheng-package.toml",
                              "--registry:registry.jsonl", "--emit:bundle", "--out:app.car")
    assert rc == 1
    assert err.splitlines()[0] == "chengc: unresolved import cheng/fs/fs"
    assert not (cli.tmp / "app.car").exists()
