"""``cis run closedloop`` end to end, as a user runs it: a real process in an unrelated directory.

Each run publishes, resolves, verifies, serves over libp2p on loopback, fetches, builds and checks
for real (only the Cheng compiler is the test double)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers_chengc import calls, install_fake

from cheng_build.cis.targets import closedloop, preview

pytestmark = pytest.mark.network
REPO = Path(__file__).resolve().parent.parent


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PKG_", "CHENG", "CLOSEDLOOP", "CIS_"))}
    env.update(PYTHONPATH=str(REPO), CIS_HOME=str(tmp / "cishome"), HOME=str(tmp / "home"))
    env.update(extra)
    return env


def _cis(tmp: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    cwd = tmp / "elsewhere"
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", *argv], cwd=cwd,
                          env=_env(tmp, **extra), capture_output=True, text=True, timeout=240)


def _run_json(tmp: Path, **extra: str) -> dict:
    r = _cis(tmp, "status", "--format:json", **extra)
    runs = json.loads(r.stdout)
    r = _cis(tmp, "status", runs[0]["run_id"], "--format:json", **extra)
    return json.loads(r.stdout)


def test_without_a_compiler_the_loop_ends_with_one_debt(tmp_path: Path) -> None:
    r = _cis(tmp_path, "run", "closedloop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SucceededWithDebt" in r.stdout
    assert "debt: task 7 build" in r.stdout and "no Cheng compiler configured" in r.stdout
    status = _run_json(tmp_path)
    states = {t["name"]: t["state"] for t in status["tasks"]}
    assert states.pop("build") == "Debt"
    assert set(states.values()) == {"Completed"}, states
    # The fresh temp work directory holds what each step produced.
    wd = Path(r.stderr.split("closedloop: work directory ", 1)[1].split("\n", 1)[0])
    assert wd != tmp_path / "elsewhere" and (wd / closedloop.MARKER).is_file()
    lock = tomllib.loads((wd / "app/cheng.lock.toml").read_text())
    cids = {d["package_id"]: d["cid"] for d in lock["dependencies"]}
    assert set(cids) == {"pkg://cheng/greet", "pkg://cheng/strutil"}  # greet pulls strutil in
    for cid in cids.values():
        assert (wd / "cache/packages" / cid / "cheng-package.toml").is_file()  # fetched over p2p
    assert (wd / "artifacts/chengc/app.car").stat().st_size > 0
    meta = tomllib.loads((wd / "artifacts/chengc/cheng.meta.toml").read_text())
    assert {d["cid"] for d in meta["dependencies"]} == set(cids.values())
    a, b = (wd / "repro/bundle-a.car").read_bytes(), (wd / "repro/bundle-b.car").read_bytes()
    assert a == b


def test_with_the_test_double_compiler_everything_completes(tmp_path: Path) -> None:
    fake = install_fake(tmp_path / "bin")
    wd = tmp_path / "work"
    r = _cis(tmp_path, "run", "closedloop", f"--workdir:{wd}", CHENG_COMPILER=str(fake))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "closedloop [" in r.stdout and ": Succeeded (11 completed)" in r.stdout
    assert len(calls(tmp_path / "bin")) == 3  # the build + the two builds of the reproducible check
    meta = tomllib.loads((wd / "artifacts/chengc/cheng.meta.toml").read_text())
    assert meta["build"]["compiler"] == str(fake)
    assert (wd / "artifacts/chengc/app").is_file()
    # The same directory again (closedloop recognises its own leftovers and starts clean), now
    # without a compiler and strict: the missing compiler blocks the run.
    r = _cis(tmp_path, "run", "closedloop", f"--workdir:{wd}", "--quiet", CLOSEDLOOP_STRICT="1")
    assert r.returncode == 1, r.stderr
    assert not (wd / "artifacts/chengc/app").exists()  # the old build was cleared away
    states = {t["name"]: t["state"] for t in _run_json(tmp_path)["tasks"]}
    assert states["build"] == "Failed" and states["lock-hook"] == "Skipped"


def test_a_foreign_workdir_is_refused(tmp_path: Path) -> None:
    wd = tmp_path / "mine"
    wd.mkdir()
    (wd / "thesis.txt").write_text("do not delete")
    r = _cis(tmp_path, "run", "closedloop", f"--workdir:{wd}")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == f"run: work directory {wd} is not empty"
    assert (wd / "thesis.txt").read_text() == "do not delete"


def test_a_named_compiler_that_is_missing_is_a_clear_error(tmp_path: Path) -> None:
    r = _cis(tmp_path, "run", "closedloop", CHENG_COMPILER=str(tmp_path / "nope"))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == f"run: compiler not found: {tmp_path / 'nope'}"


def test_dag_shape_follows_the_compiler(tmp_path: Path) -> None:
    fake = install_fake(tmp_path / "bin")
    with_cc = closedloop.build_dag(tmp_path / "a", environ={"CHENG_COMPILER": str(fake)})
    without = closedloop.build_dag(tmp_path / "b", environ={"PATH": ""})
    strict = closedloop.build_dag(tmp_path / "c", environ={"PATH": "", "CLOSEDLOOP_STRICT": "1"})
    names = [t.name for t in with_cc.tasks]
    assert names == [t.name for t in without.tasks] == [
        "keygen", "publish-strutil", "publish-greet", "publish-app", "resolve", "verify",
        "serve-fetch", "build", "meta", "reproducible", "lock-hook"]
    for dag in (with_cc, without):
        for t in dag.tasks:
            assert all(d < t.idx for d in t.deps)
            assert t.exec.cmd[0] == sys.executable  # our own programs, by argv
            assert dict(t.exec.env)["HOME"].startswith(dag.base_dir)  # nothing of the user's
    assert with_cc.tasks[7].exec.cmd[1:3] == ("-m", "cheng_build.cli.chengc")
    assert not with_cc.tasks[7].ignorable and without.tasks[7].ignorable
    assert not strict.tasks[7].ignorable and strict.policy.value == "AllSuccess"
    assert preview.preview_lines(without)[1].endswith("ignorable debt")
