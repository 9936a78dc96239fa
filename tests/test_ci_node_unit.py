"""The multi-node CIS logic without a homeserver: event validation (property tests), the claim
and lease rules of the ledger, and node agents on the in-memory room."""

from __future__ import annotations

import asyncio
import base64
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cis.node import protocol, workspace
from cheng_build.cis.node.ledger import Ledger, TaskPlan, TaskStatus
from cheng_build.cis.node.memroom import MemoryHub
from cheng_build.cis.node.protocol import Kind, Message, ProtocolError


@pytest.fixture(autouse=True)
def _unsandboxed_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about claims, leases and takeovers; their tasks write into the test's
    tmp dir, which bubblewrap hides from a task. The mode is pinned so an earlier test's cached
    sandbox choice cannot change what a task may write."""
    monkeypatch.setenv("CIS_SANDBOX", "unsandboxed")

RUN = "01M98FZR3PSFV964KJ3JCZ99Y9"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(Kind)), body=st.dictionaries(
    st.sampled_from(["v", "node", "run", "task", "epoch", "state", "caps", "workspace", "jobs",
                     "lease_ms", "dag_z", "dag_file", "name", "reason", "action"]), json_values))
def test_parse_accepts_or_raises_protocol_error_only(kind: Kind, body: dict[str, Any]) -> None:
    body = {**body, "node": "@a:x"} if body.get("node") is None else body
    try:
        msg = protocol.parse(kind.etype, "@a:x", body)
    except ProtocolError:
        return
    assert msg.node == "@a:x" and msg.kind is kind
    assert body["node"] == "@a:x"  # anything else is a forgery


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=3000))
def test_dag_text_round_trips(text: str) -> None:
    body = {"dag_z": protocol.pack_dag(text)}
    assert protocol.dag_text(body) == text


def test_a_zip_bomb_and_garbage_are_refused() -> None:
    bomb = base64.b64encode(zlib.compress(b"a" * (protocol.MAX_DAG_TEXT + 10), 9)).decode()
    assert len(bomb) < 2000
    with pytest.raises(ProtocolError, match="inflates past"):
        protocol.dag_text({"dag_z": bomb})
    with pytest.raises(ProtocolError, match="not zlib"):
        protocol.dag_text({"dag_z": "!!!"})


def test_content_refuses_floats_oversize_and_forgery() -> None:
    with pytest.raises(ProtocolError, match="floats"):
        protocol.content(Kind.CLAIM, "@a:x", run=RUN, task=0, epoch=0, lease_ms=1.5)
    with pytest.raises(ProtocolError, match="exceeds the 16384-byte limit"):
        protocol.content(Kind.DECLINE, "@a:x", run=RUN, reason="x" * 17000)
    body = protocol.content(Kind.LEASE, "@a:x", run=RUN, task=1, epoch=0)
    with pytest.raises(ProtocolError, match="forged"):
        protocol.parse(Kind.LEASE.etype, "@b:x", body)
    with pytest.raises(ProtocolError, match="not a run id"):
        protocol.content(Kind.LEASE, "@a:x", run="../etc", task=1, epoch=0)


def _msg(kind: Kind, node: str, **fields: Any) -> Message:
    return protocol.parse(kind.etype, node, protocol.content(kind, node, **fields))


def _ledger(*plans: TaskPlan) -> Ledger:
    led = Ledger()
    run = protocol.parse(Kind.RUN.etype, "@o:x", protocol.content(
        Kind.RUN, "@o:x", run=RUN, name="r", workspace="w", dag_file="cis.toml", dag_z=protocol.pack_dag("")))
    led.add_run(run, plans)
    return led


def test_first_claim_in_timeline_order_wins_and_only_the_holder_reports() -> None:
    led = _ledger(TaskPlan(0, "a"), TaskPlan(1, "b", deps=(0,)))
    run = led.runs[RUN]
    assert led.ready(run, run.tasks[0]) and not led.ready(run, run.tasks[1])
    led.apply(_msg(Kind.CLAIM, "@n2:x", run=RUN, task=0, epoch=0, lease_ms=2000), 0.0)
    led.apply(_msg(Kind.CLAIM, "@n1:x", run=RUN, task=0, epoch=0, lease_ms=2000), 0.1)
    assert run.tasks[0].holder == "@n2:x"
    led.apply(_msg(Kind.STATE, "@n1:x", run=RUN, task=0, epoch=0, state="Completed"), 0.2)
    assert led.status(run.tasks[0]) is TaskStatus.CLAIMED  # n1 does not hold it
    assert any("does not hold" in r for r in led.rejected)
    led.apply(_msg(Kind.STATE, "@n2:x", run=RUN, task=0, epoch=0, state="Completed"), 0.3)
    assert led.status(run.tasks[0]) is TaskStatus.COMPLETED and led.ready(run, run.tasks[1])


def test_lease_lapse_takeover_and_duplicate_is_debt() -> None:
    led = _ledger(TaskPlan(0, "a"))
    run = led.runs[RUN]
    t = run.tasks[0]
    led.apply(_msg(Kind.CLAIM, "@n1:x", run=RUN, task=0, epoch=0, lease_ms=2000), 10.0)
    led.apply(_msg(Kind.LEASE, "@n1:x", run=RUN, task=0, epoch=0), 11.5)
    assert not led.lapsed(t, 13.0) and led.lapsed(t, 13.6)
    # A takeover skipping an epoch, or claiming a won one, loses.
    led.apply(_msg(Kind.CLAIM, "@n2:x", run=RUN, task=0, epoch=2, lease_ms=2000), 14.0)
    led.apply(_msg(Kind.CLAIM, "@n2:x", run=RUN, task=0, epoch=0, lease_ms=2000), 14.0)
    assert t.holder == "@n1:x"
    led.apply(_msg(Kind.CLAIM, "@n2:x", run=RUN, task=0, epoch=1, lease_ms=2000), 14.0)
    assert t.holder == "@n2:x" and t.epoch == 1
    led.apply(_msg(Kind.START, "@n2:x", run=RUN, task=0, epoch=1), 14.0)  # nobody answered the revoke
    led.apply(_msg(Kind.LEASE, "@n1:x", run=RUN, task=0, epoch=0), 14.5)  # stale: ignored
    assert led.lapsed(t, 16.1)
    led.apply(_msg(Kind.STATE, "@n2:x", run=RUN, task=0, epoch=1, state="Completed"), 15.0)
    assert led.status(t) is TaskStatus.COMPLETED
    led.apply(_msg(Kind.STATE, "@n1:x", run=RUN, task=0, epoch=0, state="Completed", island=True), 20.0)
    v = led.view(run)[0]
    assert v.status is TaskStatus.DEBT
    assert v.reason == ("ran more than once during a partition: @n1:x (epoch 0, as an island), "
                        "@n2:x (epoch 1)")


def test_confirmed_tasks_wait_for_a_person_and_are_never_taken_over() -> None:
    led = _ledger(TaskPlan(0, "publish", mechanical=False))
    run = led.runs[RUN]
    t = run.tasks[0]
    assert not led.ready(run, t)
    led.apply(_msg(Kind.CONTROL, "@o:x", run=RUN, task=0, action="confirm"), 0.0)
    assert led.ready(run, t)
    led.apply(_msg(Kind.CLAIM, "@n1:x", run=RUN, task=0, epoch=0, lease_ms=1000), 0.0)
    assert not led.lapsed(t, 100.0)
    led.apply(_msg(Kind.CLAIM, "@n2:x", run=RUN, task=0, epoch=1, lease_ms=1000), 100.0)
    assert t.holder == "@n1:x"


def test_a_failed_dep_skips_its_dependents() -> None:
    led = _ledger(TaskPlan(0, "a"), TaskPlan(1, "b", deps=(0,)))
    run = led.runs[RUN]
    led.apply(_msg(Kind.CLAIM, "@n1:x", run=RUN, task=0, epoch=0, lease_ms=1000), 0.0)
    led.apply(_msg(Kind.STATE, "@n1:x", run=RUN, task=0, epoch=0, state="Failed", exit_code=2), 0.0)
    views = led.view(run)
    assert views[1].status is TaskStatus.SKIPPED and views[1].reason == "blocked by failed task 0"
    assert led.finished(run) and led.failed(run)


def _memory_run(tmp_path: Path, *, stall_s: float = 0.0) -> tuple[list[Any], Path]:
    """Three agents and an origin on one in-memory room, six tasks; ``stall_s``: block the whole
    process that long once every task is claimed (a loaded machine descheduling it)."""
    import time

    from cheng_build.cis.node.agent import Agent, NodeConfig
    from cheng_build.cis.node.localrun import parse_run
    from cheng_build.cis.node.origin import Follower

    ws = tmp_path / "ws"
    ws.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    toml = "\n".join(["name = \"m\"", "policy = \"AllowDebt\""] + [
        f'[[tasks]]\nidx = {i}\nname = "t{i}"\n'
        f'exec = {{ cmd = ["sh", "-c", "echo $CIS_NODE >> {out}/t{i}"] }}' for i in range(6)])
    (ws / "cis.toml").write_text(toml)  # nodes run only the checkout's own DAG
    wid = workspace.identity(ws)

    async def main() -> list[Any]:
        hub = MemoryHub()
        stop = asyncio.Event()
        agents = []
        for name in ("a", "b", "c"):
            # Short lease and hello: test-speed knobs (takeovers and liveness come sooner), not
            # correctness ones: silence is judged on each agent's awake clock.
            cfg = NodeConfig(tmp_path / name, ws, wid, ("cpu",), jobs=2, lease_s=2 if stall_s else 5,
                             hello_s=1)
            ag = Agent(hub.join(f"@{name}:m", "r"), cfg, lambda s: None)
            await ag.start()
            agents.append(ag)
        serving = [asyncio.create_task(a.serve(stop)) for a in agents]

        async def stall() -> None:
            while sum(len(a.held) for a in agents) < 6:
                await asyncio.sleep(0.01)
            time.sleep(stall_s)  # blocks the loop: every agent and the origin pause together

        staller = asyncio.create_task(stall()) if stall_s else None
        origin = hub.join("@o:m", "r")
        body = protocol.content(Kind.RUN, origin.user_id, run=RUN, name="m", workspace=wid,
                                dag_file="cis.toml", dag_z=protocol.pack_dag(toml))
        res = await asyncio.wait_for(Follower(origin, RUN, parse_run(toml, ws).plan, lambda o, n: None,
                                              lambda s: None, grace_s=2).follow(body), 120)
        stop.set()
        await asyncio.gather(*serving)
        if staller is not None:
            await staller
        return res.views

    return asyncio.run(main()), out


def test_memory_room_agents_share_one_run(tmp_path: Path) -> None:
    views, out = _memory_run(tmp_path)
    assert [(v.status, v.reason) for v in views] == [(TaskStatus.COMPLETED, "")] * 6
    for v in views:
        assert (out / v.name).read_text().split() == [v.node]


def test_a_paused_process_is_nobodys_silence(tmp_path: Path) -> None:
    """The whole process blocked for longer than the lease (a loaded machine) once every task is
    held: no agent may take a task over for that pause, so each task runs once (no Debt)."""
    views, out = _memory_run(tmp_path, stall_s=3.5)
    assert [(v.status, v.reason) for v in views] == [(TaskStatus.COMPLETED, "")] * 6
    for v in views:
        assert (out / v.name).read_text().split() == [v.node]


def test_the_awake_clock_stands_still_before_its_watchdog_sees_a_pause() -> None:
    """After a blocked loop any coroutine may run before the watchdog: the clock it reads must
    not count the pause as silence, and must never run backwards when the watchdog catches up."""
    import time

    from cheng_build.cis.node.awake import AwakeClock

    async def main() -> tuple[float, float, float, float, float]:
        clock = AwakeClock(tick_s=0.05, slack_s=0.1)
        stop = asyncio.Event()
        watch = asyncio.create_task(clock.watch(stop))
        await asyncio.sleep(0.2)
        before = clock.now()
        time.sleep(1.0)  # the loop blocked: the watchdog cannot run
        blocked = clock.now()
        await asyncio.sleep(0)  # whoever runs first after the pause still reads a stopped clock
        wall = time.monotonic()
        first = clock.now()
        await asyncio.sleep(0.3)  # the watchdog has run: the clock goes on from where it stood
        after = clock.now()
        wall = time.monotonic() - wall
        stop.set()
        await watch
        return before, blocked, first, after, wall

    before, blocked, first, after, wall = asyncio.run(main())
    assert blocked - before < 0.2  # at most a tick and the slack of the 1 s pause
    assert before <= blocked <= first < after
    assert after - first <= wall


def test_a_task_taken_over_before_it_started_is_not_run(tmp_path: Path) -> None:
    """A holder that looked silent (paused, slow homeserver) and lost its epoch to a takeover
    before it started the task drops it: the taker runs it, once."""
    from cheng_build.cis.node.agent import Agent, NodeConfig

    ws = tmp_path / "ws"
    ws.mkdir()
    toml = 'name = "m"\n[[tasks]]\nidx = 0\nname = "t0"\nexec = { cmd = ["true"] }'
    (ws / "cis.toml").write_text(toml)
    wid = workspace.identity(ws)

    async def main() -> tuple[Agent, list[str]]:
        hub = MemoryHub()
        logs: list[str] = []
        ag = Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", ws, wid, ("cpu",), jobs=1),
                   logs.append)
        await ag.start()
        origin = hub.join("@o:m", "r")
        await origin.send(Kind.RUN.etype, protocol.content(
            Kind.RUN, "@o:m", run=RUN, name="m", workspace=wid, dag_file="cis.toml",
            dag_z=protocol.pack_dag(toml)), "run")
        ag.ingest(await ag.room.read(ag.token, 0))
        ag._tick()  # claims epoch 0
        await ag._flush()
        ag.ingest(await ag.room.read(ag.token, 0))
        assert (RUN, 0) in ag.held and not ag.held[(RUN, 0)].started
        b = hub.join("@b:m", "r")  # judged @a silent on its own clock and took it over
        await b.send(Kind.CLAIM.etype, protocol.content(Kind.CLAIM, "@b:m", run=RUN, task=0, epoch=1,
                                                        lease_ms=5000), "c1")
        ag.ingest(await ag.room.read(ag.token, 0))
        ag._tick()
        await asyncio.sleep(0)
        ag.outbox.close()
        return ag, logs

    ag, logs = asyncio.run(main())
    assert (RUN, 0) not in ag.held and not ag._runners and ag.counters.ran == 0
    assert any("taken over by @b:m (epoch 1) before it started here" in s for s in logs), logs


def test_an_empty_outbox_does_not_end_island_mode(tmp_path: Path) -> None:
    """Only an answer of the homeserver ends island mode: a cut node with nothing to send stays
    an island (claims nothing, its later results say so) until a send or read gets through."""
    from cheng_build.cis.node.agent import Agent, NodeConfig
    from cheng_build.cis.node.room import RoomError

    async def main() -> list[bool]:
        hub = MemoryHub()
        ag = Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", tmp_path, "w", ("cpu",)),
                   lambda s: None)
        await ag.start()
        await ag._flush()
        hub.cut.add("@a:m")
        ag._go_island(RoomError("cut", transient=True))
        seen = [ag.island]
        await ag._flush()  # nothing queued: no evidence the homeserver is back
        seen.append(ag.island)
        ag._hello()
        await ag._flush()  # queued, still cut
        seen.append(ag.island)
        hub.cut.clear()
        await ag._flush()  # delivered
        seen.append(ag.island)
        ag.outbox.close()
        return seen

    assert asyncio.run(main()) == [True, True, True, False]
