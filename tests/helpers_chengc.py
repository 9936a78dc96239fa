"""Fixtures for the chengc tests: a test-double compiler on disk, package trees, a runner."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from cheng_build.cli import chengc

FAKE = Path(__file__).with_name("fake_chengc.py")
FIXTURES = Path(__file__).with_name("fixtures_chengc")


def install_fake(bin_dir: Path, name: str = "chengc") -> Path:
    """Copy the test-double compiler into ``bin_dir/name`` with this interpreter as its shebang."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    dest = bin_dir / name
    body = FAKE.read_text().split("\n", 1)[1]
    dest.write_text(f"#!{sys.executable}\n{body}")
    dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest


def calls(bin_dir: Path) -> list[dict[str, object]]:
    """The runs the fake compiler in ``bin_dir`` logged."""
    log = bin_dir / "calls.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    """Write ``{relative path: text}`` under ``root``."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def app_project(tmp: Path, n_deps: int = 3) -> Path:
    """An app importing ``n_deps`` packages under ``tmp/roots`` (cheng-<pkg>/src layout)."""
    lines = ["import std/os"]
    for i in range(n_deps):
        lines.append(f"import cheng/dep{i}/api as d{i}")
        write_tree(tmp / "roots", {
            f"cheng-dep{i}/cheng-package.toml": f'package_id = "pkg://cheng/dep{i}"\n',
            f"cheng-dep{i}/src/api.cheng": f"import cheng/dep{i}/impl/core\nfn Api{i}(): int32 = 1\n",
            f"cheng-dep{i}/src/impl/core.cheng": f"fn core{i}(): int32 = {i}\n",
        })
    lines += ["", "fn main(): int32 =", "    return 0", ""]
    write_tree(tmp, {"app.cheng": "\n".join(lines)})
    return tmp / "app.cheng"


class Runner:
    """Runs ``chengc`` in-process in a project directory with a controlled environment."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.compiler = install_fake(self.bin)
        self.mp = monkeypatch
        self.capfd = capfd
        monkeypatch.chdir(tmp)
        for k in ("PKG_ROOT", "PKG_ROOTS", "CHENG_COMPILER", "PKG_CACHE", "SOURCE_DATE_EPOCH",
                  "CHENGC_ENV_ALLOW", "PKG_CONFIG", "FAKE_CHENGC_NONDETERMINISTIC", "FAKE_CHENGC_FAIL"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("PKG_ROOTS", str(tmp / "roots"))
        monkeypatch.setenv("CHENG_COMPILER", str(self.compiler))
        monkeypatch.setenv("HOME", str(tmp / "home"))

    def __call__(self, *argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        for k, v in (env or {}).items():
            self.mp.setenv(k, v)
        self.capfd.readouterr()
        rc = chengc.main(list(argv))
        out, err = self.capfd.readouterr()
        return rc, out, err

    def calls(self) -> list[dict[str, object]]:
        return calls(self.bin)


def run_cli(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run ``python -m cheng_build.cli.chengc`` as a real process."""
    import subprocess

    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    if "PYTHONPATH" in os.environ:
        full.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
    p = subprocess.run([sys.executable, "-m", "cheng_build.cli.chengc", *argv], cwd=cwd, env=full,
                       capture_output=True, text=True, check=False, timeout=120)
    return p.returncode, p.stdout, p.stderr
