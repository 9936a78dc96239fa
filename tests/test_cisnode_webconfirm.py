"""The web view confirms a task of a room run in its room (in-memory room, real HTTP on loopback):
the one function `cis confirm --room:` uses, the view's session rules, membership as the
boundary, the outbox while the homeserver is away. The Synapse end-to-end test is in
test_cisnode_webconfirm_synapse.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers_cis import cis, make_dag, sh, task
from helpers_cisweb import get, post, web_server

from cheng_build.cis.dag.model import TaskLevel
from cheng_build.cis.node import mirror
from cheng_build.cis.node.decide import RoomDecider, post_control
from cheng_build.cis.node.feed import feed
from cheng_build.cis.node.ledger import Ledger, TaskPlan, TaskStatus, TaskView
from cheng_build.cis.node.memroom import MemoryHub
from cheng_build.cis.node.protocol import Kind
from cheng_build.cis.node.room import RoomError
from cheng_build.cis.run import control

ALIAS = "#ci:memory"
ORIGIN = "@origin:memory"
PLAN = (TaskPlan(0, "build"), TaskPlan(1, "publish", (0,), (), mechanical=False))


def _room_run(home: Path, hub: MemoryHub) -> tuple[str, str]:
    """A run as `cis run --room:` leaves it in the origin's store: posted to the room (its run
    event), mirrored, build Completed on @alpha, publish waiting for a person."""
    store = control.open_store(home)
    dag = make_dag(home, [task(0, "build", sh("true")),
                          task(1, "publish", sh("true"), deps=[0], level=TaskLevel.confirmed())],
                   name="rel")
    rid = control.new_run_id()
    store.create_run(rid, dag, jobs=1, sandbox="room")
    origin = hub.join(ORIGIN, ALIAS)
    hub.join("@alpha:memory", ALIAS)
    mirror.record_room(store, rid, mirror.RoomRef("ci", origin.room_id))
    views = [TaskView(0, "build", TaskStatus.COMPLETED, "@alpha:memory", "", 0, 0),
             TaskView(1, "publish", TaskStatus.PENDING, "", "", None, -1)]
    assert mirror.waiting_for_person(PLAN, views) == {1}
    store.set_task(rid, 1, "room-gate", {"waits": True}, gate="confirm")
    mirror.record(store, rid, [(0, "@alpha:memory", 0)])
    store.close()
    return rid, origin.room_id


def _controls(hub: MemoryHub) -> list[tuple[str, dict[str, object]]]:
    return [(e.sender, dict(e.content)) for e in hub.rooms[ALIAS].events if e.type == Kind.CONTROL.etype]


def _confirmed(hub: MemoryHub, rid: str) -> bool:
    """What a node reading the room concludes (the run event is replaced by the plan directly)."""
    from cheng_build.cis.node.protocol import Message

    led = Ledger()
    led.add_run(Message(Kind.RUN, ORIGIN, {"run": rid, "name": "rel", "workspace": "w",
                                           "dag_file": "cis.toml"}), PLAN)
    feed(led, hub.rooms[ALIAS].events, 0.0, lambda m: PLAN, lambda why: None)
    return led.runs[rid].tasks[1].confirmed


def test_the_web_view_confirms_a_room_run_in_its_room_under_its_session_rules(tmp_path: Path) -> None:
    hub = MemoryHub()
    rid, room_id = _room_run(tmp_path, hub)

    async def as_origin(room: str) -> object:
        assert room == room_id  # the room the run was posted to, from the mirror
        return hub.join(ORIGIN, ALIAS)

    url = f"/api/runs/{rid}/tasks/1/confirm"
    with web_server(tmp_path, RoomDecider(tmp_path, as_origin)) as srv:  # type: ignore[arg-type]
        code, page = get(srv, f"/api/runs/{rid}")
        import json

        detail = json.loads(page)
        assert code == 200 and detail["room"] == "ci"
        assert [t["name"] for t in detail["decisions"]["confirmed"]] == ["publish"]
        # Attacks: no session, a wrong token, no token, a rebinding Host: refused, nothing sent.
        assert post(srv, url, session=False, token=srv.token)[0] == 403  # type: ignore[attr-defined]
        assert post(srv, url, token="forged")[0] == 403
        assert post(srv, url)[0] == 403
        assert post(srv, url, token=srv.token,  # type: ignore[attr-defined]
                    headers={"Host": "evil.example:6767"})[0] == 403
        assert _controls(hub) == [] and not _confirmed(hub, rid)
        # Actions a room run does not take are refused, and no local engine is started for it.
        code, body = post(srv, f"/api/runs/{rid}/tasks/1/run-now", token=srv.token)  # type: ignore[attr-defined]
        assert code == 409 and "not available for a room run" in body["error"]
        code, body = post(srv, url, {"extra": 1}, token=srv.token)  # type: ignore[attr-defined]
        assert code == 400 and "unknown field" in body["error"]
        # The real press.
        code, body = post(srv, url, token=srv.token)  # type: ignore[attr-defined]
        assert code == 200, body
        assert body["state"] == "sent" and body["room"] == "ci" and body["event_id"].startswith("$")
    assert _controls(hub) == [(ORIGIN, {"v": 1, "node": ORIGIN, "run": rid, "task": 1,
                                        "action": "confirm"})]
    assert _confirmed(hub, rid)
    store = control.open_store(tmp_path)
    assert not store.engine_alive(rid)  # the room's nodes run it, never this machine's engine
    store.close()


def test_a_non_member_view_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    hub = MemoryHub()
    rid, _ = _room_run(tmp_path, hub)

    async def as_mallory(room: str) -> object:
        return hub.handle("@mallory:memory", ALIAS)  # never joined

    with web_server(tmp_path, RoomDecider(tmp_path, as_mallory)) as srv:  # type: ignore[arg-type]
        code, body = post(srv, f"/api/runs/{rid}/tasks/1/confirm", token=srv.token)  # type: ignore[attr-defined]
    assert code == 403 and "room ci refused" in body["error"] and "not a member" in body["error"]
    assert _controls(hub) == [] and not _confirmed(hub, rid)
    assert RoomDecider(tmp_path, as_mallory).queued() == 0  # a refusal is not kept for later


def test_without_a_matrix_connection_the_view_says_how(tmp_path: Path) -> None:
    hub = MemoryHub()
    rid, _ = _room_run(tmp_path, hub)
    with web_server(tmp_path) as srv:
        code, body = post(srv, f"/api/runs/{rid}/tasks/1/confirm", token=srv.token)  # type: ignore[attr-defined]
    assert code == 409 and "has no Matrix connection" in body["error"] and "--homeserver" in body["how"]
    assert _controls(hub) == []


def test_offline_the_confirmation_waits_in_the_outbox_and_is_sent_after(tmp_path: Path) -> None:
    hub = MemoryHub()
    rid, _ = _room_run(tmp_path, hub)

    async def as_origin(room: str) -> object:
        return hub.join(ORIGIN, ALIAS)

    decider = RoomDecider(tmp_path, as_origin)
    hub.cut.add(ORIGIN)  # the homeserver is unreachable from this machine
    with web_server(tmp_path, decider) as srv:
        code, body = post(srv, f"/api/runs/{rid}/tasks/1/confirm", token=srv.token)  # type: ignore[attr-defined]
    assert code == 202 and body["state"] == "queued" and "room ci is unreachable" in body["result"]
    assert decider.queued() == 1 and _controls(hub) == []
    assert decider.drain() == 0 and decider.queued() == 1  # still away: kept, in order
    hub.cut.clear()
    assert decider.drain() == 1 and decider.queued() == 0
    assert _confirmed(hub, rid)


def test_cis_confirm_room_and_the_view_share_one_function(tmp_path: Path) -> None:
    """post_control: a member's event is applied; a forged node field is dropped by the reader;
    a non-member's send is refused by the room."""
    hub = MemoryHub()
    rid, _ = _room_run(tmp_path, hub)

    async def go() -> None:
        mallory = hub.handle("@mallory:memory", ALIAS)
        try:
            await post_control(mallory, rid, 1, "confirm")
            raise AssertionError("a non-member posted")
        except RoomError as exc:
            assert "not a member" in exc.what and not exc.transient
        gamma = hub.join("@gamma:memory", ALIAS)
        await gamma.send(Kind.CONTROL.etype, {"v": 1, "node": ORIGIN, "run": rid, "task": 1,
                                              "action": "confirm"}, "forged")
        assert not _confirmed(hub, rid)  # forged: its node is not its sender
        await post_control(gamma, rid, 1, "confirm")

    asyncio.run(go())
    assert _confirmed(hub, rid)


def test_cis_web_refuses_a_half_given_matrix_connection(tmp_path: Path) -> None:
    """A homeserver without a password file is a usage error, not a view that silently cannot
    reach any room."""
    from helpers_cisnode import cis

    r = cis(tmp_path, "web", "--port:0", "--homeserver:http://127.0.0.1:9", "--user:origin")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "web: no --password-file or --token-file given"
    assert "Traceback" not in r.stderr


def test_local_decisions_on_a_room_run_are_refused_through_the_cli(tmp_path: Path) -> None:
    """The attack the view closed, through the CLI: `cis confirm`/`resolve`/`retry`/`resume`
    without --room: on a mirrored room run would hand it to a local engine, which would run the
    room's DAG on this machine a second time. Each is refused (exit 2, one line, how), and the
    store gains no control row and no engine."""
    home = tmp_path / "origin"
    rid, _ = _room_run(home, MemoryHub())
    for argv in (["confirm", rid, "publish"], ["resolve", rid, "publish", "--action:skip"],
                 ["retry", rid, "--from:publish"], ["resume", rid]):
        r = cis(home, *argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        first = r.stderr.splitlines()[0]
        assert first.startswith(f"{argv[0]}: run ") and "lives in room ci" in first, r.stderr
        assert "Traceback" not in r.stderr
    store = control.open_store(home)
    try:
        assert not store.pending_controls(rid)
        assert not store.engine_alive(rid)
    finally:
        store.close()
    assert "--room:ci" in cis(home, "confirm", rid, "publish").stderr
