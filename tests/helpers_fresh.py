"""A small package world for the fresh-machine tests: fs published, app resolved against it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from cheng_build.cli import pkg as pkg_cli
from cheng_build.cli import registry as registry_cli

Main = Callable[[Sequence[str]], int]
FS = "pkg://cheng/fs"


def call(capsys: pytest.CaptureFixture[str], main: Main, *argv: str) -> tuple[int, list[str], list[str]]:
    """Run a CLI ``main`` in-process; (exit code, stdout lines, stderr lines)."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def make_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> Path:
    """fs published on stable into ./cache, app/ depending on it, resolved to app/cheng.lock.toml."""
    for k in list(os.environ):
        if k.startswith("PKG_") and k not in ("PKG_TRUST_DIR", "PKG_AUDIT_LOG"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PKG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PKG_REGISTRY", str(tmp_path / "registry.jsonl"))
    (tmp_path / "fs" / "src").mkdir(parents=True)
    (tmp_path / "fs" / "cheng-package.toml").write_text(f'package_id = "{FS}"\nversion = "1.0.0"\n')
    (tmp_path / "fs" / "src" / "path.cheng").write_text("fn Join(a: str, b: str): str =\n    return a\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "cheng-package.toml").write_text(
        f'package_id = "pkg://cheng/app"\n[[dependencies]]\npackage_id = "{FS}"\nchannel = "stable"\n')
    assert call(capsys, registry_cli.main, "keygen", "--out:me.json", "--author:node:me")[0] == 0
    rc, _, err = call(capsys, registry_cli.main, "publish", f"--package:{FS}", "--channel:stable",
                      "--epoch:1", "--src:fs", "--priv:me.json")
    assert rc == 0, err
    rc, _, err = call(capsys, pkg_cli.main, "resolve", "--manifest:app/cheng-package.toml",
                      "--out:app/cheng.lock.toml")
    assert rc == 0, err
    return tmp_path
