"""Where a node's time goes (issue 18's throughput): a claim is never kept waiting behind the
results queued before it, a busy node's pause between reads ends when its own claim is PUT (its
next tasks start from reading that claim back), and the timeline a traced node writes
(``CIS_NODE_TRACE``) sums its idle time by reason (benchmarks/cisnodes_timeline.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cis.node import protocol, workspace
from cheng_build.cis.node.coalesce import Group, claims_first, coalesce, ride
from cheng_build.cis.node.ledger import TaskPlan
from cheng_build.cis.node.memroom import MemoryHub
from cheng_build.cis.node.protocol import Kind

REPO = Path(__file__).resolve().parents[1]
RUN = "01M98FZR3PSFV964KJ3JCZ99Y9"
RUN2 = "01M98FZR3PSFV964KJ3JCZ99Y8"

queued_event = st.tuples(st.sampled_from([Kind.CLAIM, Kind.STATE, Kind.LEASE, Kind.RELEASE, Kind.HELLO]),
                         st.sampled_from([RUN, RUN2]),
                         st.lists(st.integers(0, 12), min_size=1, max_size=3, unique=True))


def _queued(k: int, ev: tuple[Kind, str, list[int]]) -> tuple[int, str, dict[str, Any]]:
    kind, run, idxs = ev
    if kind is Kind.HELLO:
        body = protocol.content(kind, "@a:x", caps=["cpu"], workspace="w", jobs=1)
    elif kind is Kind.STATE:
        body = protocol.content(kind, "@a:x", run=run, task=idxs[0], epoch=0, state="Completed",
                                exit_code=0, reason="", island=False)
    else:
        fields = {"lease_ms": 1000} if kind is Kind.CLAIM else {}
        body = protocol.split(kind, "@a:x", run, [[i, 0] for i in idxs], at_ms=k, **fields)[0]
    return k, kind.etype, body


def _tasks(etype: str, body: dict[str, Any]) -> set[tuple[str, int]]:
    msg = protocol.parse(etype, "@a:x", body)
    run = str(body.get("run", ""))
    if msg.kind is Kind.STATE:
        return {(run, int(r["task"])) for r in msg.results()}
    if msg.kind is Kind.HELLO:
        return set()
    return {(run, i) for i, _ in msg.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(queued_event, max_size=30))
def test_claims_go_first_but_never_overtake_an_event_about_the_same_task(evs: list[Any]) -> None:
    queue = [_queued(k + 1, ev) for k, ev in enumerate(evs)]
    groups = coalesce(queue)
    ordered = claims_first(groups)
    assert sorted(map(id, ordered)) == sorted(map(id, groups))  # nothing lost, nothing added
    pos = {id(g): n for n, g in enumerate(ordered)}
    claim = Kind.CLAIM.etype
    for i, g in enumerate(groups):
        for h in groups[i + 1:]:  # g was queued ahead of h
            if _tasks(g.etype, g.body) & _tasks(h.etype, h.body):
                assert pos[id(g)] < pos[id(h)]  # events about one task keep their order
        if g.etype == claim and not any(_tasks(g.etype, g.body) & _tasks(o.etype, o.body)
                                        for o in groups[:i]):
            # a claim with nothing about its tasks queued ahead of it goes before every non-claim
            assert all(pos[id(g)] < pos[id(o)] for o in groups if o.etype != claim)
    # Non-claims keep their relative order.
    rest = [g for g in ordered if g.etype != claim]
    assert rest == [g for g in groups if g.etype != claim]


@settings(max_examples=300, deadline=None)
@given(st.lists(queued_event, max_size=30))
def test_results_ride_on_claims_without_overtaking_an_event_about_the_same_task(evs: list[Any]) -> None:
    queue = [_queued(k + 1, ev) for k, ev in enumerate(evs)]
    ordered = claims_first(coalesce(queue))
    rode = ride([Group(list(g.entries), g.etype, dict(g.body), g.run, set(g.tasks), g.nbytes)
                 for g in ordered])
    # Every entry goes once; each event is valid (a claim's riding results name other tasks).
    assert sorted(e for g in rode for e in g.entries) == sorted(k for k, _, _ in queue)
    for g in rode:
        msg = protocol.parse(g.etype, "@a:x", g.body)
        assert protocol.size(g.body) <= protocol.MAX_EVENT_BYTES
        if "results" in g.body and g.etype == Kind.CLAIM.etype:
            assert msg.riding() is not None
    # What was one event about a task before riding still comes in the same order after it.
    before = {e: n for n, g in enumerate(ordered) for e in g.entries}
    after = {e: n for n, g in enumerate(rode) for e in g.entries}
    about = {k: _tasks(t, b) for k, t, b in queue}
    for a in about:
        for b in about:
            if a != b and about[a] & about[b] and before[a] < before[b]:
                assert after[a] <= after[b]
    # Fewer or as many events; a state event goes alone only with no claim of its run it could ride.
    assert len(rode) <= len(ordered)


def _dag(ws: Path, name: str, n: int) -> str:
    toml = "\n".join([f'name = "{name}"', 'policy = "AllowDebt"'] + [
        f'[[tasks]]\nidx = {i}\nname = "t{i}"\nexec = {{ cmd = ["true"] }}' for i in range(n)])
    (ws / f"{name}.toml").write_text(toml)
    return toml


def test_a_busy_nodes_pause_between_reads_ends_at_its_own_claims_put(tmp_path: Path) -> None:
    """A node holding plenty of won tasks reads the room less often (news of others cannot start
    anything sooner), but its own top-up claim is news that can: the PUT of that claim ends the
    pause at once and the claim is read back and won. Here the pause would last six minutes (a long
    lease and task time), so the claim is won only if the PUT ends it."""
    from cheng_build.cis.node.agent import Agent, NodeConfig

    ws = tmp_path / "ws"
    ws.mkdir()
    first, second = _dag(ws, "a", 4), _dag(ws, "b", 1)
    wid = workspace.identity(ws)

    async def main() -> tuple[bool, float, bool]:
        hub = MemoryHub()
        stop = asyncio.Event()
        ag = Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", ws, wid, ("cpu",), jobs=1,
                                                     lease_s=3600.0, task_guess_s=10_000.0),
                   lambda s: None)
        await ag.start()
        origin = hub.join("@o:m", "r")
        for run, name, text in ((RUN, "a", first), (RUN2, "b", second)):
            if run == RUN2:  # the second run arrives while the node is busy with the first
                reader = asyncio.create_task(ag._reader(stop))
            await origin.send(Kind.RUN.etype, protocol.content(
                Kind.RUN, "@o:m", run=run, name=name, workspace=wid, dag_file=f"{name}.toml",
                dag_z=protocol.pack_dag(text)), f"run-{name}")
            if run == RUN:
                ag.ingest(await ag.room.read(ag.token, 0))
                ag._tick()  # claims the first run's four tasks
                await ag._flush()
                ag.ingest(await ag.room.read(ag.token, 0))  # won: four waiting, one job
        while RUN2 not in ag.ledger.runs:  # the reader saw the second run and paused
            await asyncio.sleep(0.01)
        busy, pace = ag._busy(), ag._pace()
        ag.claims[(RUN2, 0)] = 0  # a top-up, as _tick posts it
        ag.post_batch(Kind.CLAIM, RUN2, [[0, 0]], lease_ms=1000)
        await ag._flush()
        await asyncio.wait_for(_until(lambda: (RUN2, 0) in ag.held), 60)  # a hang guard only
        stop.set()
        await reader
        ag.outbox.close()
        return busy, pace, (RUN2, 0) in ag.held

    busy, pace, won = asyncio.run(main())
    assert busy and pace >= 300  # the pause it would otherwise have slept through
    assert won


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.01)


def test_a_traced_node_run_is_summed_by_reason(tmp_path: Path) -> None:
    """CIS_NODE_TRACE makes each process write its steps; the summary splits a node's time into
    running and idle by reason (a claim out and nothing won: the claim round trip)."""
    trace = tmp_path / "trace"
    code = ("import time\nfrom cheng_build.cis.node.trace import mark\n"
            "mark('run_added', 'ABCD', 2)\nmark('idle', 0, 0, 0, 0)\nmark('claim', 'ABCD', 2)\n"
            "mark('idle', 0, 0, 0, 2)\ntime.sleep(0.2)\nmark('won', 'ABCD', 0)\nmark('start', 'ABCD', 0)\n"
            "time.sleep(0.1)\nmark('end', 'ABCD', 0)\n")
    env = {**os.environ, "CIS_NODE_TRACE": str(trace)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    (trace / "t0").write_text("0")
    files = list(trace.glob("*.trace"))
    assert len(files) == 1
    steps = [line.split()[1] for line in files[0].read_text().splitlines()]
    assert steps == ["run_added", "idle", "claim", "idle", "won", "start", "end"]
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from cisnodes_timeline import summarize
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    line = summarize(trace)
    fields = dict(kv.rsplit(" ", 1) for kv in line.split(": ", 1)[1].split(", "))
    assert int(fields["tasks"]) == 1
    # the time between the claim and the start went to the claim round trip, none elsewhere
    assert float(fields["idle_claim_rtt"]) > float(fields.get("idle_no_claim", "0"))
    assert float(fields["busy"]) > 0
    assert json.loads(fields["claims"]) == 1


def _agent(tmp_path: Path, **cfg: Any) -> Any:
    from cheng_build.cis.node.agent import Agent, NodeConfig

    ws = tmp_path / "ws"
    ws.mkdir(parents=True, exist_ok=True)
    hub = MemoryHub()
    return Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", ws, workspace.identity(ws), ("cpu",),
                                                   jobs=1, **cfg), lambda s: None)


def _kinds(room: Any) -> list[str]:
    return [e.type.rsplit(".", 1)[-1] for e in room._tl.events]


def test_a_claim_goes_at_once_and_the_results_before_it_keep_lingering(tmp_path: Path) -> None:
    """A claim is PUT the moment it is queued; a result of another run queued before it is not
    sent with it but waits for its own linger (here an hour), to merge with the next results."""
    ag = _agent(tmp_path, linger_s=3600.0)

    async def main() -> tuple[list[str], int]:
        stop = asyncio.Event()
        flusher = asyncio.create_task(ag._flusher(stop))
        ag.post(Kind.STATE, RUN2, 0, epoch=0, state="Completed", exit_code=0, reason="", island=False)
        ag.post_batch(Kind.CLAIM, RUN, [[1, 0]], lease_ms=1000)
        await asyncio.wait_for(_until(lambda: "claim" in _kinds(ag.room)), 60)  # a hang guard only
        kinds, queued = _kinds(ag.room), ag.outbox.queued()
        stop.set()
        await flusher
        ag.outbox.close()
        return kinds, queued

    kinds, queued = asyncio.run(main())
    assert kinds == ["claim"]
    assert queued == 1  # the result, still lingering


def test_claims_coming_all_the_time_never_hold_a_result_back_past_its_linger(tmp_path: Path) -> None:
    """Each claim wakes the flusher; the result's linger still ends on its first deadline (a
    linger counted again from every wake would never end while claims keep coming)."""
    ag = _agent(tmp_path, linger_s=0.3)

    async def main() -> tuple[int, list[str]]:
        stop = asyncio.Event()
        flusher = asyncio.create_task(ag._flusher(stop))
        ag.post(Kind.STATE, RUN2, 0, epoch=0, state="Completed", exit_code=0, reason="", island=False)
        claims = 0
        while "state" not in _kinds(ag.room) and claims < 6000:  # 6000 x 10 ms: a hang guard only
            claims += 1
            ag.post_batch(Kind.CLAIM, RUN, [[claims, 0]], lease_ms=1000)
            await asyncio.sleep(0.01)
        stop.set()
        await flusher
        ag.outbox.close()
        return claims, _kinds(ag.room)

    claims, kinds = asyncio.run(main())
    assert "state" in kinds
    assert kinds[0] == "claim"  # the first claim did not wait for the result
    assert claims < 6000


def test_claims_ahead_are_sized_by_the_nodes_task_time_within_a_fair_share(tmp_path: Path) -> None:
    """Work is claimed ahead by time (ahead_s at the node's task time), not by count: a node whose
    tasks take a second each claims one ahead of its running one; one whose tasks take 10 ms
    claims up to its fair share (here alone: all 100) in one event."""
    async def claim(task_s: float) -> tuple[int, int]:
        ag = _agent(tmp_path / str(task_s), ahead_s=2.0)
        text = _dag(ag.cfg.workspace, "a", 100)
        origin = ag.room._hub.join("@o:m", "r")
        await ag.start()
        await origin.send(Kind.RUN.etype, protocol.content(
            Kind.RUN, "@o:m", run=RUN, name="a", workspace=ag.cfg.workspace_id, dag_file="a.toml",
            dag_z=protocol.pack_dag(text)), "run-a")
        ag.ingest(await ag.room.read(ag.token, 0))
        ag._task_s = task_s  # as timed on this node
        ag._tick()
        await ag._flush()
        ag.outbox.close()
        return len(ag.claims), sum(1 for k in _kinds(ag.room) if k == "claim")

    claimed = {task_s: asyncio.run(claim(task_s)) for task_s in (1.0, 0.01)}
    assert claimed[1.0] == (1 + 2, 1)  # the running one, and two seconds' worth ahead
    assert claimed[0.01] == (100, 1)  # a fair share (all, alone in the room), in one event


def test_a_nodes_last_result_goes_without_waiting_out_its_linger(tmp_path: Path) -> None:
    """Nothing running, won or claimed: no other result of this node can join its last one, so
    it is posted at once; here the linger is an hour, and the origin sees the run end."""
    from cheng_build.cis.node.localrun import parse_run
    from cheng_build.cis.node.origin import Follower

    ag = _agent(tmp_path, linger_s=3600.0, busy_linger_s=3600.0)
    ws = ag.cfg.workspace
    text = _dag(ws, "cis", 2)

    async def main() -> list[Any]:
        await ag.start()
        stop = asyncio.Event()
        serving = asyncio.create_task(ag.serve(stop))
        origin = ag.room._hub.join("@o:m", "r")
        body = protocol.content(Kind.RUN, origin.user_id, run=RUN, name="cis", workspace=ag.cfg.workspace_id,
                                dag_file="cis.toml", dag_z=protocol.pack_dag(text))
        res = await asyncio.wait_for(Follower(origin, RUN, parse_run(text, ws).plan, lambda o, n: None,
                                              lambda s: None, grace_s=2).follow(body), 120)  # hang guard
        stop.set()
        await serving
        return list(res.views)

    views = asyncio.run(main())
    assert [v.status.value for v in views] == ["Completed", "Completed"]


def test_results_ride_on_a_claim_of_their_run_and_count_as_a_state_event(tmp_path: Path) -> None:
    """A claim going out carries the results of its run waiting to go (one event, not two); every
    reader's ledger applies them exactly as the state event they stand for, placed before it."""
    from cheng_build.cis.node.ledger import Ledger

    ag = _agent(tmp_path, linger_s=3600.0)
    plan = [TaskPlan(i, f"t{i}") for i in range(3)]

    async def main() -> list[Any]:
        stop = asyncio.Event()
        flusher = asyncio.create_task(ag._flusher(stop))
        ag.post(Kind.STATE, RUN, 0, epoch=0, state="Completed", exit_code=0, reason="", island=False)
        ag.post(Kind.STATE, RUN, 1, epoch=0, state="Debt", exit_code=3, reason="why", island=False)
        ag.post_batch(Kind.CLAIM, RUN, [[2, 0]], lease_ms=1000)
        await asyncio.wait_for(_until(lambda: "claim" in _kinds(ag.room)), 60)  # a hang guard only
        stop.set()
        await flusher
        ag.outbox.close()
        return list(ag.room._tl.events)

    events = asyncio.run(main())
    assert [e.type.rsplit(".", 1)[-1] for e in events] == ["claim"]
    assert [r["task"] for r in events[0].content["results"]] == [0, 1]
    # Against the same events sent apart (state, then claim) into a second ledger.
    rode, apart = Ledger(), Ledger()
    for led in (rode, apart):
        led.add_run(protocol.parse(Kind.RUN.etype, "@o:m", protocol.content(
            Kind.RUN, "@o:m", run=RUN, name="a", workspace="w", dag_file="c",
            dag_z=protocol.pack_dag(""))), plan)
        for i in (0, 1):  # the node won both before it ran them
            led.apply(protocol.parse(Kind.CLAIM.etype, "@a:m", protocol.split(
                Kind.CLAIM, "@a:m", RUN, [[i, 0]], lease_ms=1000)[0]), 0.0)
    rode.apply(protocol.parse(events[0].type, events[0].sender, events[0].content), 1.0)
    claim = dict(events[0].content)
    state = protocol.split(Kind.STATE, "@a:m", RUN, claim.pop("results"))[0]
    apart.apply(protocol.parse(Kind.STATE.etype, "@a:m", state), 1.0)
    apart.apply(protocol.parse(Kind.CLAIM.etype, "@a:m", claim), 1.0)
    assert rode.view(rode.runs[RUN]) == apart.view(apart.runs[RUN])
    assert [(v.status.value, v.node) for v in rode.view(rode.runs[RUN])] == [
        ("Completed", "@a:m"), ("Debt", "@a:m"), ("Claimed", "@a:m")]


def test_a_node_takes_its_share_of_the_work_left_not_of_the_ready_tasks_alone(tmp_path: Path) -> None:
    """Three other live nodes hold 90 of 100 tasks, 10 are ready: a node holding nothing claims
    all 10 in one event (its share of the 100 left is 25), where a share of the ready tasks alone
    (3) ended runs in a storm of one-task claims as others' claims drained them."""
    ag = _agent(tmp_path, ahead_s=2.0)
    text = _dag(ag.cfg.workspace, "a", 100)

    async def main() -> tuple[int, int]:
        hub = ag.room._hub
        origin = hub.join("@o:m", "r")
        await ag.start()
        await origin.send(Kind.RUN.etype, protocol.content(
            Kind.RUN, "@o:m", run=RUN, name="a", workspace=ag.cfg.workspace_id, dag_file="a.toml",
            dag_z=protocol.pack_dag(text)), "run-a")
        for k, other in enumerate(("@b:m", "@c:m", "@d:m")):
            room = hub.join(other, "r")
            await room.send(Kind.HELLO.etype, protocol.content(
                Kind.HELLO, other, caps=["cpu"], workspace=ag.cfg.workspace_id, jobs=1, hello_ms=5000), "hi")
            await room.send(Kind.CLAIM.etype, protocol.split(
                Kind.CLAIM, other, RUN, [[i, 0] for i in range(30 * k, 30 * k + 30)], lease_ms=60000)[0], "c")
        ag.ingest(await ag.room.read(ag.token, 0))
        ag._task_s = 0.01
        ag._tick()
        await ag._flush()
        ag.outbox.close()
        return len(ag.claims), sum(1 for k in _kinds(ag.room) if k == "claim")

    claimed, own_and_others = asyncio.run(main())
    assert claimed == 10
    assert own_and_others == 3 + 1  # the others' three, and this node's one
