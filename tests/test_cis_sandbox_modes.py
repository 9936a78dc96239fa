"""Every sandbox mode runs the README's main command, and the namespaces fallback is a sandbox
worth the name: its own loopback up, nothing else reachable; a task the sandbox stops says so.

The namespaces cases run even where bubblewrap is installed (``CIS_SANDBOX`` forces the mode)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from helpers_cissec import MODES, last_run, need_mode, nsinit_env, run_in, write_dag

pytestmark = pytest.mark.network
_MODE_NAME = {"bwrap": "bubblewrap", "namespaces": "namespaces", "unsandboxed": "unsandboxed"}


@pytest.mark.parametrize("mode", MODES)
def test_closedloop_exits_0_with_its_one_debt_in_each_mode(tmp_path: Path, mode: str) -> None:
    need_mode(mode)
    home = tmp_path / "cishome"
    r = run_in(mode, home, "run", "closedloop", timeout=240, HOME=str(tmp_path / "home"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "SucceededWithDebt (10 completed, 1 debt)" in r.stdout
    assert "debt: task 7 build" in r.stdout  # the documented one: no Cheng compiler configured
    status = last_run(home, mode)
    assert status["sandbox"] == _MODE_NAME[mode]
    states = {t["name"]: t["state"] for t in status["tasks"]}
    assert states["serve-fetch"] == "Completed"  # serves on 127.0.0.1 and fetches from itself


# The task: a server on its own 127.0.0.1, a round trip to it, then the host's listener.
_LOOPBACK_TASK = """
import socket, sys, threading
print("interfaces:", sorted(n for _i, n in socket.if_nameindex()))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
threading.Thread(target=lambda: srv.accept()[0].sendall(b"pong"), daemon=True).start()
c = socket.create_connection(srv.getsockname(), timeout=5)
print("own loopback:", c.recv(4).decode())
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    print("host listener: reached")
except OSError as e:
    print("host listener: blocked", e.strerror)
"""


@pytest.mark.parametrize(("mode", "impl"), [("namespaces", "native"), ("namespaces", "python"),
                                            ("bwrap", "-")])
def test_task_reaches_its_own_loopback_and_nothing_of_the_host(tmp_path: Path, mode: str,
                                                              impl: str) -> None:
    need_mode(mode)
    env = nsinit_env(impl) if mode == "namespaces" else {}
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen(1)
    try:
        dag = write_dag(tmp_path / "cis.toml", "lo", [
            {"name": "lo", "exec": {"cmd": [sys.executable, "-c", _LOOPBACK_TASK,
                                            str(host.getsockname()[1])], "timeout": 60}}])
        r = run_in(mode, tmp_path / "home", "run", str(dag), **env)
    finally:
        host.close()
    assert r.returncode == 0, r.stdout + r.stderr
    log = next((tmp_path / "home" / "runs").glob("*/tasks/000-a1/stdout.log")).read_text()
    assert "own loopback: pong" in log, log
    assert "interfaces: ['lo']" in log, log  # no route out: the namespace has nothing else
    assert "host listener: blocked" in log, log


@pytest.mark.parametrize("mode", ["namespaces", "bwrap"])
def test_a_task_the_sandbox_cuts_off_the_network_says_so(tmp_path: Path, mode: str) -> None:
    need_mode(mode)
    # 192.0.2.1 is TEST-NET-1: without a route the kernel answers "Network is unreachable".
    code = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)"
    dag = write_dag(tmp_path / "cis.toml", "net", [
        {"name": "download", "exec": {"cmd": [sys.executable, "-c", code], "timeout": 60}}])
    r = run_in(mode, tmp_path / "home", "run", str(dag))
    assert r.returncode == 1
    assert f"why: the sandbox ({_MODE_NAME[mode]}) gives this task no network" in r.stdout, r.stdout
    assert "set `network = true` in the task's exec.sandbox" in r.stdout
    d = run_in(mode, tmp_path / "home", "debt")
    assert "gives this task no network" in d.stdout  # cis debt shows the same why


def test_a_path_bubblewrap_hides_is_named(tmp_path: Path) -> None:
    need_mode("bwrap")
    secret = tmp_path / "outside" / "settings.ini"  # under /tmp: empty inside bubblewrap
    secret.parent.mkdir()
    secret.write_text("x=1\n")
    dag = write_dag(tmp_path / "dag" / "cis.toml", "path", [
        {"name": "read", "exec": {"cmd": ["cat", str(secret)], "timeout": 60,
                                  "env": {"PATH": "/usr/bin:/bin"}}}])
    r = run_in("bwrap", tmp_path / "home", "run", str(dag))
    assert r.returncode == 1
    assert f"the sandbox (bubblewrap) hides {secret}" in r.stdout, r.stdout
    # A failure that is not the sandbox's doing gets no such line.
    dag = write_dag(tmp_path / "dag" / "cis.toml", "plain", [
        {"name": "fail", "exec": {"cmd": [sys.executable, "-c", "raise SystemExit('boom')"]}}])
    r = run_in("bwrap", tmp_path / "home", "run", str(dag))
    assert r.returncode == 1 and "boom" in r.stdout and "the sandbox" not in r.stdout
