"""End to end on a real Synapse: a node runs a DAG with Confirmed tasks, the origin machine's
`cis web` (real HTTP on loopback, its one-time login and session token) confirms them in the
room, and the run completes; a forged request to the view, a non-member's view and a
non-member's own control event change nothing; offline, the confirmation waits in the view's
outbox and is sent when the homeserver answers."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_cisnode import Node, Proxy, cis_env, conn_flags, origin_run, start_node, wait_for, write_dag
from helpers_cisweb import get, login, post
from helpers_synapse import Synapse, require_synapse, start_synapse

pytestmark = [pytest.mark.network, pytest.mark.slow]

ROOM = "webconfirm"


@pytest.fixture(scope="module")
def hs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    server = start_synapse(tmp_path_factory.mktemp("synapse"), require_synapse())
    try:
        for u in ("alpha", "origin", "mallory"):
            server.register(u)
        yield server
    finally:
        server.stop()


@dataclass
class View:
    """A running `cis web` and the session of the browser that opened its login link."""

    proc: subprocess.Popen[bytes]
    url: str
    cookie_header: str
    token: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_view(home: Path, *flags: str) -> View:
    proc = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.cis", "web", "--port:0", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cis_env(home),
                            start_new_session=True)
    assert proc.stdout is not None
    deadline, seen = time.monotonic() + 60, b""
    while b"/login?code=" not in seen and time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 1.0)[0]:
            chunk = os.read(proc.stdout.fileno(), 65536)  # unbuffered: select sees what is left
            if not chunk:
                break
            seen += chunk
    link = [w for w in seen.decode().split() if "/login?code=" in w]
    if not link:
        proc.kill()
        raise AssertionError(f"cis web printed no login link: {seen.decode()}")
    cookie, token = login(link[0])
    return View(proc, link[0].split("login?", 1)[0], cookie, token)


@pytest.fixture
def running() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for x in reversed(started):
        x.stop()


def controls(hs: Synapse) -> list[dict[str, Any]]:
    """The room's control events, read as a member through the client API."""
    token = hs.login("alpha")

    def call(path: str) -> dict[str, Any]:
        req = urllib.request.Request(hs.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    rid = urllib.parse.quote(str(call("/_matrix/client/v3/directory/room/"
                                      + urllib.parse.quote(f"#{ROOM}:cis.test"))["room_id"]))
    page = call(f"/_matrix/client/v3/rooms/{rid}/messages?dir=b&limit=1000")
    return [e for e in page.get("chunk") or [] if e["type"] == "org.cheng.cis.control"]


def waiting(view: View, run_id: str) -> list[str] | None:
    code, raw = get(view, f"/api/runs/{run_id}")  # type: ignore[arg-type]
    if code == 404:  # a node copies room runs into its store once a second: not there yet
        return None
    assert code == 200, raw
    return [t["name"] for t in json.loads(raw)["decisions"]["confirmed"]]


def test_a_room_run_is_confirmed_from_the_origin_machines_web_view(
        hs: Synapse, tmp_path: Path, running: list[Any]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    ran = tmp_path / "ran"
    ran.mkdir()
    (ws / "r").write_text(f'echo "$CIS_NODE" >> "{ran}/$1"\n')
    dag = write_dag(ws, "rel", [
        {"name": "build", "cmd": ["sh", "r", "build"], "cwd": "."},
        {"name": "publish", "deps": [0], "cmd": ["sh", "r", "publish"], "cwd": ".", "level": "Confirmed"},
        {"name": "announce", "deps": [1], "cmd": ["sh", "r", "announce"], "cwd": ".",
         "level": "Confirmed"}])
    alpha: Node = start_node(hs, "alpha", ROOM, ws, tmp_path, ["cpu"])
    running.append(alpha)
    wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", [alpha])
    home = tmp_path / "home-origin"
    proc = origin_run(hs, "origin", ROOM, dag, tmp_path, home, "--grace:120")
    try:
        wait_for(lambda: ": Completed" in alpha.text(), 60, "build done", [alpha])
        run_id = alpha.text().split("run ", 1)[1].split(" ", 1)[0]
        # The origin machine's view, as its Matrix user (a member: it posted the run), with the
        # homeserver behind a proxy the test can cut.
        proxy = Proxy(hs.port)
        proxy.open()
        flags = conn_flags(hs, "origin", ROOM, tmp_path, proxy.url)[:-1]  # each run names its room
        view = start_view(home, *flags)
        running.append(view)
        wait_for(lambda: waiting(view, run_id) == ["publish"], 60, "publish waiting in the view", [alpha])
        url = f"/api/runs/{run_id}/tasks/publish/confirm"

        # Attacks on the view: no session, a forged token, a rebinding Host. Nothing is sent.
        assert post(view, url, session=False, token=view.token)[0] == 403  # type: ignore[arg-type]
        assert post(view, url, token="forged")[0] == 403  # type: ignore[arg-type]
        assert post(view, url, token=view.token, headers={"Host": "evil.example"})[0] == 403  # type: ignore[arg-type]
        # A view whose Matrix user is not a member of the room: refused, nothing sent.
        evil = start_view(home, *conn_flags(hs, "mallory", ROOM, tmp_path)[:-1])
        running.append(evil)
        code, body = post(evil, url, token=evil.token)  # type: ignore[arg-type]
        assert code == 403 and "is not a member of room" in body["error"], body
        # A non-member's own control event: the homeserver refuses it, so no node ever sees it.
        mal = hs.login("mallory")
        rid = urllib.parse.quote(str(json.loads(urllib.request.urlopen(
            hs.url + "/_matrix/client/v3/directory/room/" + urllib.parse.quote(f"#{ROOM}:cis.test"),
            timeout=30).read())["room_id"]))
        req = urllib.request.Request(
            f"{hs.url}/_matrix/client/v3/rooms/{rid}/send/org.cheng.cis.control/m1", method="PUT",
            data=json.dumps({"v": 1, "node": "@mallory:cis.test", "run": run_id, "task": 1,
                             "action": "confirm"}).encode(),
            headers={"Authorization": f"Bearer {mal}", "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 403
        time.sleep(1.0)  # nothing may start "publish" without a member's confirmation
        assert controls(hs) == [] and not (ran / "publish").exists() and proc.poll() is None

        # The real press: a control event from the origin's user, and alpha runs publish.
        code, body = post(view, url, token=view.token)  # type: ignore[arg-type]
        assert code == 200 and body["state"] == "sent", body
        wait_for(lambda: (ran / "publish").exists(), 60, "publish run after the confirm", [alpha])
        sent = controls(hs)
        assert [(e["sender"], e["content"]["task"], e["content"]["action"]) for e in sent] == \
            [("@origin:cis.test", 1, "confirm")]

        # Offline: the homeserver is unreachable from the view; the confirmation waits in its
        # outbox, the page says so, and it is sent when the homeserver answers again.
        wait_for(lambda: waiting(view, run_id) == ["announce"], 60, "announce waiting", [alpha])
        proxy.cut()
        code, body = post(view, f"/api/runs/{run_id}/tasks/2/confirm", token=view.token)  # type: ignore[arg-type]
        assert code == 202 and body["state"] == "queued" and "is unreachable" in body["result"], body
        time.sleep(1.0)
        assert not (ran / "announce").exists()
        proxy.heal()
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (tmp_path / "origin.log").read_text()
        res = json.loads(out.decode().strip().splitlines()[-1])
        assert [(t["name"], t["state"], t["node"]) for t in res["tasks"]] == [
            (n, "Completed", "@alpha:cis.test") for n in ("build", "publish", "announce")]
        for name in ("build", "publish", "announce"):  # each exactly once
            assert (ran / name).read_text().split() == ["@alpha:cis.test"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_a_room_run_is_confirmed_from_a_node_machines_web_view(
        hs: Synapse, tmp_path: Path, running: list[Any]) -> None:
    """Any node's web view, not only the origin's: `cis node` keeps its own copy of the room run
    (states, node column, person gates), so `cis status` and `cis web` on the node's machine
    show it and confirm it in the room; a local `cis resume` there is refused."""
    room = "webconfirm-node"  # its own room: alpha reads no run of the other test
    ws = tmp_path / "ws"
    ws.mkdir()
    ran = tmp_path / "ran"
    ran.mkdir()
    (ws / "r").write_text(f'echo "$CIS_NODE" >> "{ran}/$1"\n')
    dag = write_dag(ws, "rel2", [
        {"name": "build", "cmd": ["sh", "r", "build"], "cwd": "."},
        {"name": "publish", "deps": [0], "cmd": ["sh", "r", "publish"], "cwd": ".", "level": "Confirmed"}])
    alpha: Node = start_node(hs, "alpha", room, ws, tmp_path, ["cpu"])
    running.append(alpha)
    wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", [alpha])
    proc = origin_run(hs, "origin", room, dag, tmp_path, tmp_path / "home-origin", "--grace:120")
    try:
        wait_for(lambda: ": Completed" in alpha.text(), 60, "build done", [alpha])
        run_id = alpha.text().split("run ", 1)[1].split(" ", 1)[0]
        view = start_view(alpha.home, *conn_flags(hs, "alpha", room, tmp_path)[:-1])
        running.append(view)
        wait_for(lambda: waiting(view, run_id) == ["publish"], 60, "publish waiting in alpha's view",
                 [alpha])

        def status() -> dict[str, Any]:
            r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "status", run_id,
                                "--format:json"], capture_output=True, env=cis_env(alpha.home),
                               timeout=60, check=False)
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)  # type: ignore[no-any-return]

        tasks = {t["name"]: t for t in status()["tasks"]}
        assert (tasks["build"]["state"], tasks["build"]["node"]) == ("Completed", "@alpha:cis.test")
        resume = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "resume", run_id],
                                capture_output=True, text=True, env=cis_env(alpha.home), timeout=60,
                                check=False)
        assert resume.returncode == 2 and "lives in room" in resume.stderr.splitlines()[0], resume.stderr

        code, body = post(view, f"/api/runs/{run_id}/tasks/publish/confirm", token=view.token)  # type: ignore[arg-type]
        assert code == 200 and body["state"] == "sent", body
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (tmp_path / "origin.log").read_text()
        res = json.loads(out.decode().strip().splitlines()[-1])
        assert [(t["name"], t["state"]) for t in res["tasks"]] == [("build", "Completed"),
                                                                   ("publish", "Completed")]
        for name in ("build", "publish"):  # each exactly once
            assert (ran / name).read_text().split() == ["@alpha:cis.test"]
        wait_for(lambda: status()["state"] == "Succeeded", 30, "alpha's copy finished", [alpha])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
