"""One fixture project per resolution outcome (tests/fixtures_chengc/README.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers_chengc import FIXTURES, Runner

CASES = {
    "diamond": (0, "ok: 4 inputs from 1 package roots, 2 toolchain imports"),
    "own_package": (0, "ok: 3 inputs from 1 package roots, 0 toolchain imports"),
    "unresolved": (1, "chengc: unresolved import cheng/util/missing/deep"),
    "cycle": (1, "chengc: import cycle detected"),
    "bad_import": (2, "chengc: bad import path 'cheng/../secrets'"),
    "relative_import": (2, "chengc: unsupported import 'util/strings'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capfd: pytest.CaptureFixture[str]) -> None:
    proj = tmp_path / name
    shutil.copytree(FIXTURES / name, proj)
    cc = Runner(proj, monkeypatch, capfd)
    rc, out, err = cc("main.cheng", "--emit:check")
    want_rc, want_first = CASES[name]
    assert rc == want_rc, err
    first = (out if rc == 0 else err).splitlines()[0]
    assert first.startswith(want_first), first
    if name == "cycle":
        assert "a.cheng -> " in err and err.count("a.cheng") >= 2
    if name == "unresolved":
        assert str(proj / "roots/cheng-util/src/missing/deep.cheng") in err
    assert cc.calls() == []


def test_every_fixture_is_covered() -> None:
    assert {p.name for p in FIXTURES.iterdir() if p.is_dir()} == set(CASES)
