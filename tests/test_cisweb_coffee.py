"""Coffee mode: a real room (HTTP on loopback) that is down, then up; events queue, then arrive once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers_cis import make_dag, run_dag, sh, task
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.cis import coffee
from cheng_build.cis.dag.model import TaskLevel
from cheng_build.cis.run import control
from cheng_build.core.errors import UsageError

pytestmark = pytest.mark.network
REPO = Path(__file__).resolve().parents[1]


class Room:
    """An HTTP endpoint that records every batch posted to it (or fails with ``status``)."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        received: list[dict] = []
        self.received = received

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if status == 200:
                    received.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/room"
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_run(tmp: Path) -> tuple[control.Store, str]:
    store = control.open_store(tmp / "cis")
    rid, _ = run_dag(store, make_dag(tmp, [task(0, "a", sh("true")), task(1, "b", sh("true"), deps=[0])]))
    return store, rid


def test_offline_queues_then_the_room_gets_every_event_once_in_order(tmp_path: Path) -> None:
    store, rid = _one_run(tmp_path)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/room"
    outbox = coffee.Outbox(store.home)
    r = coffee.sync_once(store, outbox, [url], coffee.http_sender(url))
    n = len(store.events(rid))
    assert r.status.state is coffee.NetState.OFFLINE and r.sent == 0
    assert r.collected == n and r.queued == n
    assert coffee.sync_once(store, outbox, [url], coffee.http_sender(url)).collected == 0  # not twice
    room = Room(port)
    try:
        r = coffee.sync_once(store, outbox, [url], coffee.http_sender(url))
        assert r.status.state is coffee.NetState.GOOD and r.sent == n and r.queued == 0
        r = coffee.sync_once(store, outbox, [url], coffee.http_sender(url))
        assert r.sent == 0
    finally:
        room.close()
    st = coffee.read_status(store.home)
    assert st is not None and st["state"] == "good" and st["queued"] == 0 and st["sent_total"] == n
    events = [e for batch in room.received for e in batch["events"]]
    assert [e["event_id"] for e in events] == [e[0] for e in store.events(rid)]
    assert events[0]["kind"] == "run-created" and events[-1]["kind"] == "run-finished"
    assert {b["node"] for b in room.received} == {socket.gethostname()}


def test_weak_network_holds_the_queue_and_a_failing_room_keeps_it(tmp_path: Path) -> None:
    store, _ = _one_run(tmp_path)
    outbox = coffee.Outbox(store.home)
    room = Room(status=503)
    try:
        weak = coffee.sync_once(store, outbox, [room.url], coffee.http_sender(room.url), weak_ms=0.0)
        assert weak.status.state is coffee.NetState.WEAK and weak.sent == 0 and weak.queued > 0
        assert "over 0 ms" in weak.status.detail
        bad = coffee.sync_once(store, outbox, [room.url], coffee.http_sender(room.url))
        assert bad.status.state is coffee.NetState.GOOD and bad.sent == 0
        assert bad.queued == weak.queued and "HTTP 503" in bad.error
    finally:
        room.close()


def test_no_peers_falls_back_to_mdns() -> None:
    assert coffee.check_network([], mdns=lambda t: False).state is coffee.NetState.OFFLINE
    assert coffee.check_network([], mdns=lambda t: True).state is coffee.NetState.GOOD


def test_peer_addresses() -> None:
    assert coffee.parse_target("/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWabc") == ("10.0.0.5", 4001)
    assert coffee.parse_target("/dns4/peer.lan/tcp/80/http") == ("peer.lan", 80)
    assert coffee.parse_target("http://127.0.0.1:6767/x") == ("127.0.0.1", 6767)
    assert coffee.parse_target("https://room.lan/x") == ("room.lan", 443)
    assert coffee.parse_target("[::1]:9000") == ("::1", 9000)
    with pytest.raises(UsageError):
        coffee.parse_target("/ip4/10.0.0.5/udp/4001")


@given(st.text(max_size=60))
def test_parse_target_accepts_or_says_why(text: str) -> None:
    try:
        host, port = coffee.parse_target(text)
    except UsageError as exc:
        assert "not a peer address" in exc.what
    else:
        assert host and port >= 0


def test_only_all_mechanical_runs_detach_when_the_network_is_weak(tmp_path: Path) -> None:
    weak = coffee.NetworkStatus(coffee.NetState.WEAK, 900.0, "x", "")
    good = coffee.NetworkStatus(coffee.NetState.GOOD, 3.0, "x", "")
    mech = make_dag(tmp_path, [task(0, "a", sh("true"))])
    confirm = make_dag(tmp_path, [task(0, "a", sh("true"), level=TaskLevel.confirmed())])
    assert coffee.auto_detach(mech, weak) and not coffee.auto_detach(mech, good)
    assert not coffee.auto_detach(confirm, weak)


def test_cis_coffee_cli_once(tmp_path: Path) -> None:
    store, rid = _one_run(tmp_path)
    room = Room()
    try:
        env = dict(os.environ, CIS_HOME=str(store.home), PYTHONPATH=str(REPO))
        r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis_coffee", f"--room:{room.url}",
                            "--peers:", "--once", "--format:json"],
                           capture_output=True, text=True, env=env, timeout=60)
    finally:
        room.close()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["state"] == "good" and out["sent"] == len(store.events(rid)) and out["queued"] == 0
