"""The sandbox, proved by trying to break it (real bubblewrap where it works here), and the
honest fallback: a forced "unsandboxed" machine says so and refuses tasks that demand isolation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomlkit
from helpers_cis import cis

from cheng_build.cis.sandbox import launch as sandbox

BWRAP_WORKS = sandbox.detect_mode() is sandbox.SandboxMode.BUBBLEWRAP


@pytest.mark.network  # the network probe listens on 127.0.0.1
@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work on this machine")
def test_verify_sandbox_all_properties_hold_with_bubblewrap(tmp_path: Path) -> None:
    r = cis(tmp_path / "home", "verify-sandbox", "--format:json", timeout=120)
    data = json.loads(r.stdout)
    assert data["mode"] == "bubblewrap"
    rows = {p["name"]: p for p in data["properties"]}
    assert set(rows) == {"home hidden", "env cleared", "no network", "writes confined",
                         "unix sockets hidden", "cgroups locked", "process limit", "memory limit"}
    broken = [p for p in data["properties"] if not p["held"]]
    assert not broken, broken
    assert r.returncode == 0


@pytest.mark.network
def test_verify_sandbox_unsandboxed_reports_breaks(tmp_path: Path) -> None:
    r = cis(tmp_path / "home", "verify-sandbox", timeout=120, CIS_SANDBOX="unsandboxed")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("sandbox mode: unsandboxed")
    table = {ln.split("  ")[0].strip(): ln for ln in lines[2:]}
    # Without a sandbox the host's loopback and $HOME are reachable: the table must say so.
    assert "NOT HELD" in table["no network"] and "NOT HELD" in table["home hidden"]
    # A task reads the engine's secrets from /proc/<pid>/environ: said plainly (issue 13, #15).
    assert "NOT HELD  read from /proc/" in table["env cleared"]
    assert "  HELD  " in table["memory limit"]
    assert r.returncode == 1


def _dag_file(tmp_path: Path, isolation: str) -> Path:
    doc = {"name": "iso", "tasks": [{"idx": 0, "name": "secret", "exec": {
        "cmd": ["true"], "sandbox": {"isolation": isolation}}}]}
    p = tmp_path / "cis.toml"
    p.write_text(tomlkit.dumps(doc))
    return p


def test_required_isolation_refused_when_unsandboxed(tmp_path: Path) -> None:
    p = _dag_file(tmp_path, "required")
    r = cis(tmp_path / "home", "run", str(p), CIS_SANDBOX="unsandboxed")
    assert r.returncode == 1
    assert "sandbox unsandboxed" in r.stderr  # the run says it plainly
    assert "refused: the task demands isolation but this machine is unsandboxed" in r.stdout


@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work on this machine")
def test_required_isolation_runs_with_bubblewrap(tmp_path: Path) -> None:
    r = cis(tmp_path / "home", "run", str(_dag_file(tmp_path, "required")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sandbox=bubblewrap" in r.stdout


def test_bwrap_argv_hides_home_and_binds_task_dir(tmp_path: Path) -> None:
    from cheng_build.cis.dag.model import SandboxConfig

    spec = sandbox.LaunchSpec(argv=("/bin/true",), env={}, cwd=str(tmp_path), task_dir=str(tmp_path),
                              sandbox=SandboxConfig(), home=str(Path.home()))
    argv = sandbox.build_argv(spec, sandbox.SandboxMode.BUBBLEWRAP)
    assert argv[argv.index("--ro-bind") + 1:argv.index("--ro-bind") + 3] == ["/", "/"]
    assert ["--tmpfs", str(Path.home())] == argv[argv.index(str(Path.home())) - 1:
                                                  argv.index(str(Path.home())) + 1]
    assert "--unshare-all" in argv and "--share-net" not in argv
    assert argv[argv.index("--bind") + 1] == str(tmp_path)
    assert argv[-2:] == ["--", "/bin/true"]


def test_doctor_reports_each_check(tmp_path: Path) -> None:
    doc = {"name": "needs", "tasks": [{"idx": 0, "name": "gpu", "exec": {"cmd": ["nvcc-missing-xyz"]}}]}
    p = tmp_path / "cis.toml"
    p.write_text(tomlkit.dumps(doc))
    r = cis(tmp_path / "home", "doctor", str(p))
    assert "bubblewrap" in r.stdout and "sandbox mode" in r.stdout and "GPU driver" in r.stdout
    assert "!!  program nvcc-missing-xyz" in r.stdout
    assert "fix: install 'nvcc-missing-xyz'" in r.stdout
    assert r.returncode == 1


@pytest.mark.network
def test_namespaces_mode_is_honest(tmp_path: Path) -> None:
    if not sandbox.unshare_path() or not sandbox._probe([sandbox.unshare_path() or "", "-U", "-r",
                                                         "-n", "true"]):
        pytest.skip("user namespaces do not work here")
    r = cis(tmp_path / "home", "verify-sandbox", "--format:json", timeout=120,
            CIS_SANDBOX="namespaces")
    rows = {p["name"]: p["held"] for p in json.loads(r.stdout)["properties"]}
    assert rows["no network"] is True and rows["env cleared"] is True
    assert rows["writes confined"] is False and rows["home hidden"] is False  # said, not hidden
    assert r.returncode == 1


@pytest.mark.parametrize("path", ["util-linux", "fallback"])
def test_rlimits_applied_on_both_launch_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              path: str) -> None:
    # Without setpriv/prlimit the limits are set by a callback in the forked child instead.
    from helpers_cis import make_dag, run_dag, sh, task

    from cheng_build.cis.dag.model import TaskState
    from cheng_build.cis.run import control

    if path == "fallback":
        monkeypatch.setattr(sandbox, "_util_linux", lambda: (None, None))
    base = tmp_path / "p"
    base.mkdir()
    store = control.open_store(tmp_path / "home")
    dag = make_dag(base, [task(0, "limits", sh("ulimit -n > nofile.txt"), cwd=".")])
    _rid, view = run_dag(store, dag)
    assert view.tasks[0].state is TaskState.COMPLETED
    assert (base / "nofile.txt").read_text().strip() == "1024"


def test_cis_sandbox_wins_over_the_mode_this_process_already_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived process (a node, a test session) that already probed the machine must still
    obey CIS_SANDBOX set afterwards: the answer kept in the process used to win, so tasks ran
    under bubblewrap (and could not see /tmp) although the setting said unsandboxed."""
    from cheng_build.cis.sandbox import launch

    monkeypatch.delenv("CIS_SANDBOX", raising=False)
    monkeypatch.setattr(launch, "_MODE", launch.SandboxMode.BUBBLEWRAP)
    assert launch.detect_mode() is launch.SandboxMode.BUBBLEWRAP
    for value, mode in (("unsandboxed", launch.SandboxMode.UNSANDBOXED),
                        ("namespaces", launch.SandboxMode.NAMESPACES),
                        ("bwrap", launch.SandboxMode.BUBBLEWRAP)):
        monkeypatch.setenv("CIS_SANDBOX", value)
        assert launch.detect_mode() is mode
