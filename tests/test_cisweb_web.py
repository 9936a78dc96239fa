"""``cis web``'s HTTP API on loopback against real runs with detached engines (no browser)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers_cis import make_dag, sh, task, wait_for
from helpers_cisweb import confirm_dag, get, post, start_run, web_server

from cheng_build.cis.dag.model import TaskLevel
from cheng_build.cis.run import control
from cheng_build.cis.view import board as view_board
from cheng_build.cis.view import web

pytestmark = pytest.mark.network


def _detail(srv: web.WebServer, rid: str) -> dict:
    status, body = get(srv, f"/api/runs/{rid}")
    assert status == 200, body
    return json.loads(body)


def test_confirm_through_the_api_runs_the_task(tmp_path: Path) -> None:
    home = tmp_path / "cis"
    rid = start_run(home, confirm_dag(tmp_path, work=0.2))
    with web_server(home) as srv:
        wait_for(lambda: _detail(srv, rid)["decisions"]["confirmed"], what="deploy waiting")
        d = _detail(srv, rid)
        (card,) = d["decisions"]["confirmed"]
        assert card["name"] == "deploy"
        risk = "\n".join(card["risk"])
        assert f"writes: {tmp_path}" in risk and "network: none" in risk and "(announce)" in risk
        # Without the page's token the button does nothing.
        status, body = post(srv, f"/api/runs/{rid}/tasks/deploy/confirm")
        assert status == 403 and "X-CIS-Token" in body["error"]
        # The token without the session cookie (what a task that read it somehow would hold).
        status, body = post(srv, f"/api/runs/{rid}/tasks/deploy/confirm", token=srv.token,
                            session=False)
        assert status == 403
        status, body = post(srv, f"/api/runs/{rid}/tasks/deploy/confirm", token=srv.token,
                            headers={"Host": "evil.example:80"})
        assert status == 403
        assert not (tmp_path / "deployed.txt").exists()
        status, body = post(srv, f"/api/runs/{rid}/tasks/deploy/confirm", token=srv.token)
        assert status == 200 and body["result"].startswith("ok"), body
        wait_for(lambda: _detail(srv, rid)["decisions"]["recommended"], what="announce countdown")
        (rec,) = _detail(srv, rid)["decisions"]["recommended"]
        assert rec["name"] == "announce" and rec["gate_until"] > time.time() + 5
        status, body = post(srv, f"/api/runs/{rid}/tasks/2/run-now", token=srv.token)
        assert status == 200, body
        wait_for(lambda: _detail(srv, rid)["state"] == "Succeeded", what="run finished")
    assert (tmp_path / "deployed.txt").read_text() == "deployed\n"


def test_change_skip_and_bad_requests(tmp_path: Path) -> None:
    home = tmp_path / "cis"
    dag = make_dag(tmp_path, [
        task(0, "a", sh("echo $GREETING > a.txt"), cwd=".", env={"GREETING": "hi"},
             level=TaskLevel.recommended(timeout=60)),
        task(1, "b", sh("echo b > b.txt"), cwd=".", level=TaskLevel.recommended(timeout=60)),
    ])
    rid = start_run(home, dag)
    with web_server(home) as srv:
        wait_for(lambda: len(_detail(srv, rid)["decisions"]["recommended"]) == 2, what="countdowns")
        status, body = post(srv, f"/api/runs/{rid}/tasks/a/change", {"env": {"GREETING": "changed"}},
                            token=srv.token)
        assert status == 200, body
        for bad, why in (({"env": {"X": 1}}, "env"), ({"cmd": "rm -rf /"}, "cmd"), ({}, "nothing")):
            status, body = post(srv, f"/api/runs/{rid}/tasks/a/change", bad, token=srv.token)
            assert status == 400 and why in body["error"]
        status, body = post(srv, f"/api/runs/{rid}/tasks/a/explode", token=srv.token)
        assert status == 400 and "unknown action" in body["error"]
        status, body = post(srv, f"/api/runs/{rid}/tasks/nosuch/confirm", token=srv.token)
        assert status == 404 and "no task" in body["error"]
        status, body = post(srv, f"/api/runs/{rid}/tasks/b/skip", token=srv.token)
        assert status == 200
        status, body = post(srv, f"/api/runs/{rid}/tasks/a/run-now", token=srv.token)
        assert status == 200
        wait_for(lambda: _detail(srv, rid)["state"] in ("Succeeded", "SucceededWithDebt"), what="end")
        states = {t["name"]: t["state"] for t in _detail(srv, rid)["tasks"]}
        assert states == {"a": "Completed", "b": "Skipped"}
        status, _ = get(srv, "/api/runs/NOSUCHRUN")
        assert status == 404
    assert (tmp_path / "a.txt").read_text() == "changed\n" and not (tmp_path / "b.txt").exists()


def test_debt_board_and_declared_outputs_only(tmp_path: Path) -> None:
    home = tmp_path / "cis"
    store = control.open_store(home)
    (tmp_path / "secret.txt").write_text("not yours")
    dag = make_dag(tmp_path, [
        task(0, "make", sh("printf 'ok' > out.txt"), cwd=".", outputs=["out.txt"]),
        task(1, "flaky", sh("echo 'disk quota exceeded' >&2; exit 3"), cwd=".", deps=[0]),
        task(2, "slow", ["sleep", "5"], timeout=1, deps=[0]),
    ])
    rid = control.create_run(store, dag)
    control.drive(store, rid)
    with web_server(home) as srv:
        board = json.loads(get(srv, "/api/debt")[1])
        kinds = {i["task"]: i["kind"] for i in board["items"]}
        assert kinds == {"flaky": "person", "slow": "auto"}  # a timeout: a retry may fix it
        assert board["estimate_minutes"] == view_board.FIX_MINUTES["auto"] + view_board.FIX_MINUTES["person"]
        flaky = next(i for i in board["items"] if i["task"] == "flaky")
        assert "disk quota exceeded" in " ".join(flaky["why"])
        assert get(srv, f"/api/runs/{rid}/tasks/make/output?path=out.txt") == (200, b"ok")
        assert get(srv, f"/api/runs/{rid}/tasks/make/output?path=secret.txt")[0] == 403
        assert get(srv, f"/api/runs/{rid}/tasks/make/output?path=../secret.txt")[0] == 403
        status, log = get(srv, f"/api/runs/{rid}/tasks/flaky/log?stream=stderr")
        assert status == 200 and b"disk quota exceeded" in log
        # The board's retry restarts the finished run's engine and reruns just that task.
        status, body = post(srv, f"/api/runs/{rid}/tasks/slow/retry", token=srv.token)
        assert status == 200 and body["engine_started"], body
        wait_for(lambda: next(t for t in _detail(srv, rid)["tasks"] if t["name"] == "slow")
                 ["attempt"] == 2 and _detail(srv, rid)["state"] != "Running", timeout=60,
                 what="the retried task to finish again")
        tasks = {t["name"]: t for t in _detail(srv, rid)["tasks"]}
        assert tasks["make"]["attempt"] == 1 and tasks["slow"]["state"] == "Debt"


def test_sse_pushes_a_snapshot_when_the_run_changes(tmp_path: Path) -> None:
    home = tmp_path / "cis"
    rid = start_run(home, confirm_dag(tmp_path, work=0.1))
    with web_server(home) as srv:
        req = urllib.request.Request(srv.url + f"api/events?run={rid}",
                                     headers={"Cookie": srv.cookie_header})
        with urllib.request.urlopen(req, timeout=20) as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            seen: list[str] = []
            confirmed = False
            end = time.monotonic() + 30
            while time.monotonic() < end:
                line = stream.readline().decode()
                if not line.startswith("data: "):
                    continue
                snap = json.loads(line[6:])
                states = [t["state"] for t in snap["run"]["tasks"]]
                seen.append(states[1])
                if snap["run"]["decisions"]["confirmed"] and not confirmed:
                    control.confirm(control.open_store(home), rid, "deploy")
                    confirmed = True
                if states[1] == "Completed":
                    break
        assert confirmed and seen[-1] == "Completed" and "Pending" in seen


def test_resource_usage_of_a_process_tree() -> None:
    # The child writes every page (a zeroed bytearray may stay unmapped) and says so before the
    # first sample: on a loaded machine its start-up alone can outlast any fixed sleep.
    child = subprocess.Popen([sys.executable, "-c", "import time\nx = b'\\x01' * (64 << 20)\n"
                              "print('ready', flush=True)\n"
                              "t = time.process_time()\nwhile time.process_time() - t < 5: pass"],
                             start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        sampler = view_board.Sampler()
        first = sampler.usage([child.pid])[child.pid]
        assert first["processes"] == 1 and first["cpu_percent"] is None
        time.sleep(0.5)
        second = sampler.usage([os.getpid(), child.pid])
        assert second[child.pid]["rss_bytes"] > 64 << 20
        assert second[child.pid]["cpu_percent"] > 0  # it spins; it cannot be idle
        # Our own tree includes the child: at least two processes.
        assert second[os.getpid()]["processes"] >= 2
    finally:
        child.kill()
        child.wait()


def test_cis_web_cli_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = dict(os.environ, CIS_HOME=str(tmp_path / "cis"),
                   PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "web", f"--port:{port}"],
                           capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == f"web: cannot listen on 127.0.0.1:{port}"
