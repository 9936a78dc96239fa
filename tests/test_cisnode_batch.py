"""Batch events and revocation of multi-node CIS (issue 18): the batch parsers and the splitter /
coalescer (property tests, forged and malformed batches), the ledger's per-pair rule checked
against feeding the same pairs one by one (differential), the revoke / release / start /
contradiction rules, and agents on the in-memory room: a holder that already started a task
voids a takeover instead of running it twice, and a stale holder does not start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cis.node import protocol, workspace
from cheng_build.cis.node.coalesce import coalesce
from cheng_build.cis.node.ledger import Ledger, TaskPlan, TaskStatus
from cheng_build.cis.node.memroom import MemoryHub
from cheng_build.cis.node.protocol import MAX_BATCH, MAX_EVENT_BYTES, Kind, Message, ProtocolError

RUN = "01M98FZR3PSFV964KJ3JCZ99Y9"
RUN2 = "01M98FZR3PSFV964KJ3JCZ99Y8"
BATCH_KINDS = [Kind.CLAIM, Kind.LEASE, Kind.RELEASE, Kind.START, Kind.STATE]
junk = st.recursive(st.none() | st.booleans() | st.integers(-5, 20_000) | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=30)
pair = st.lists(st.integers(-2, 10_002), min_size=0, max_size=3) | junk
result = st.fixed_dictionaries(
    {"task": st.integers(-1, 10_001) | junk, "epoch": st.integers(0, 3) | junk,
     "state": st.sampled_from(protocol.STATES) | junk},
    optional={"exit_code": st.integers() | junk, "reason": st.text(max_size=30) | junk,
              "island": st.booleans() | junk})


@pytest.fixture(autouse=True)
def _unsandboxed_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIS_SANDBOX", "unsandboxed")  # tasks write into the test's tmp dir


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(BATCH_KINDS), tasks=st.lists(pair, max_size=6) | junk,
       results=st.lists(result, max_size=5) | junk,
       extra=st.dictionaries(st.sampled_from(["task", "epoch", "state", "lease_ms", "at_ms", "node"]), junk,
                             max_size=3),
       use=st.sampled_from(["tasks", "results", "both", "neither"]))
def test_batch_parse_accepts_or_raises_protocol_error_only(kind: Kind, tasks: Any, results: Any,
                                                           extra: dict[str, Any], use: str) -> None:
    body: dict[str, Any] = {"v": 1, "node": "@a:x", "run": RUN, "lease_ms": 1000, **extra}
    if use in ("tasks", "both"):
        body["tasks"] = tasks
    if use in ("results", "both"):
        body["results"] = results
    try:
        msg = protocol.parse(kind.etype, "@a:x", body)
    except ProtocolError:
        return
    assert body["node"] == "@a:x"
    items = msg.items()
    assert 1 <= len(items) <= MAX_BATCH and len({i for i, _ in items}) == len(items)
    assert all(0 <= i <= protocol.MAX_INDEX and 0 <= e <= protocol.MAX_INDEX for i, e in items)
    if kind is Kind.STATE or (kind is Kind.CLAIM and "results" in body):
        assert all(r["state"] in protocol.STATES for r in msg.results())
    if kind is Kind.CLAIM and "results" in body:  # results riding on a claim: other tasks only
        assert not {i for i, _ in items} & {int(r["task"]) for r in msg.results()}
        riding = msg.riding()
        assert riding is not None
        assert riding.items() == [(int(r["task"]), int(r["epoch"])) for r in msg.results()]


@pytest.mark.parametrize("kind, body, why", [
    (Kind.CLAIM, {"tasks": [[1, 0], [1, 0]], "lease_ms": 5}, "appears twice"),
    (Kind.CLAIM, {"tasks": [[1, 0]], "task": 2, "epoch": 0, "lease_ms": 5}, "not both"),
    (Kind.LEASE, {}, "not both or neither"),
    (Kind.LEASE, {"tasks": []}, "1 to 512"),
    (Kind.LEASE, {"tasks": [[0, 0]] * 0 + [[i, 0] for i in range(MAX_BATCH + 1)]}, "1 to 512"),
    (Kind.RELEASE, {"tasks": [[1, 0, 0]]}, "not a \\[task, epoch\\] pair"),
    (Kind.START, {"tasks": [[True, 0]]}, "not a \\[task, epoch\\] pair"),
    (Kind.START, {"tasks": [[1, 1.0]]}, "floats"),
    (Kind.CLAIM, {"tasks": [[10_001, 0]], "lease_ms": 5}, "not a \\[task, epoch\\] pair"),
    (Kind.CLAIM, {"tasks": [[-1, 0]], "lease_ms": 5}, "not a \\[task, epoch\\] pair"),
    (Kind.CLAIM, {"tasks": [[1, 0]], "lease_ms": 5, "at_ms": "soon"}, "at_ms"),
    (Kind.STATE, {"results": [{"task": 0, "epoch": 0, "state": "Done"}]}, "unknown state"),
    (Kind.STATE, {"results": [{"task": 0, "epoch": 0, "state": "Completed"}] * 2}, "appears twice"),
    (Kind.STATE, {"results": [{"task": 0, "epoch": 0, "state": "Completed", "exit_code": "0"}]}, "exit_code"),
    (Kind.STATE, {"results": [{"task": 0, "epoch": 0, "state": "Completed", "island": 1}]}, "island"),
    (Kind.STATE, {"results": [{"task": 0, "state": "Completed"}]}, "without task / epoch"),
    (Kind.STATE, {"results": [{"task": 0, "epoch": 0, "state": "Failed"}], "state": "Completed"}, "not both"),
    (Kind.STATE, {"results": "all"}, "list of 1 to"),
    (Kind.CLAIM, {"tasks": [[1, 0]], "lease_ms": 5,
                  "results": [{"task": 1, "epoch": 0, "state": "Completed"}]},
     "task 1 is both claimed and reported"),
    (Kind.CLAIM, {"tasks": [[1, 0]], "lease_ms": 5, "results": []}, "list of 1 to"),
    (Kind.CLAIM, {"task": 1, "epoch": 0, "lease_ms": 5, "results": [{"task": 2, "state": "Completed"}]},
     "without task / epoch"),
])
def test_malformed_batches_are_refused_with_the_reason(kind: Kind, body: dict[str, Any], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        protocol.parse(kind.etype, "@a:x", {"v": 1, "node": "@a:x", "run": RUN, **body})


def test_a_forged_batch_is_refused() -> None:
    body = protocol.split(Kind.CLAIM, "@a:x", RUN, [[0, 0], [1, 0]], lease_ms=1000)[0]
    with pytest.raises(ProtocolError, match="forged"):
        protocol.parse(Kind.CLAIM.etype, "@b:x", body)
    with pytest.raises(ProtocolError, match="exceeds the 16384-byte limit"):
        protocol.parse(Kind.STATE.etype, "@a:x", {"v": 1, "node": "@a:x", "run": RUN, "results": [
            {"task": i, "epoch": 0, "state": "Failed", "reason": "x" * 400} for i in range(60)]})


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 1500), reason=st.text(max_size=600))
def test_split_keeps_every_entry_in_order_under_the_caps(n: int, reason: str) -> None:
    pairs = [[i, i % 3] for i in range(n)]
    bodies = protocol.split(Kind.CLAIM, "@a:x", RUN, pairs, lease_ms=1000, at_ms=5)
    assert [p for b in bodies for p in b["tasks"]] == pairs
    results = [{"task": i, "epoch": 0, "state": "Failed", "reason": reason, "exit_code": 1}
               for i in range(min(n, 200))]
    rbodies = protocol.split(Kind.STATE, "@a:x", RUN, results)
    assert [r for b in rbodies for r in b["results"]] == results
    for b, kind in [(b, Kind.CLAIM) for b in bodies] + [(b, Kind.STATE) for b in rbodies]:
        assert protocol.size(b) <= MAX_EVENT_BYTES
        protocol.parse(kind.etype, "@a:x", b)


queued_event: st.SearchStrategy[tuple[Kind, str, list[int], int]] = st.one_of(
    st.tuples(st.just(Kind.CLAIM), st.sampled_from([RUN, RUN2]),
              st.lists(st.integers(0, 30), min_size=1, max_size=4, unique=True),
              st.sampled_from([1000, 2000])),
    st.tuples(st.just(Kind.LEASE), st.sampled_from([RUN, RUN2]),
              st.lists(st.integers(0, 30), min_size=1, max_size=4, unique=True), st.just(0)),
    st.tuples(st.just(Kind.STATE), st.sampled_from([RUN, RUN2]), st.integers(0, 30).map(lambda i: [i]),
              st.integers(0, 2000)),
    st.tuples(st.just(Kind.HELLO), st.just(""), st.just([]), st.just(0)))


def _queued(k: int, ev: tuple[Kind, str, list[int], int]) -> tuple[int, str, dict[str, Any]]:
    kind, run, idxs, x = ev
    if kind is Kind.HELLO:
        body = protocol.content(kind, "@a:x", caps=["cpu"], workspace="w", jobs=1)
    elif kind is Kind.STATE:
        body = protocol.content(kind, "@a:x", run=run, task=idxs[0], epoch=0, state="Failed",
                                exit_code=1, reason="r" * x, island=False)
    else:
        fields = {"lease_ms": x} if kind is Kind.CLAIM else {}
        body = protocol.split(kind, "@a:x", run, [[i, 0] for i in idxs], at_ms=k, **fields)[0]
    return k, kind.etype, body


def _flat(etype: str, body: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    msg = protocol.parse(etype, "@a:x", body)
    run = str(body.get("run", ""))
    if msg.kind is Kind.STATE:
        return [(etype, run, int(r["task"]), json.dumps(r.get("reason"))) for r in msg.results()]
    if msg.kind is Kind.HELLO:
        return [(etype, run, -1, "")]
    return [(etype, run, i, str(body.get("lease_ms"))) for i, _ in msg.items()]


@settings(max_examples=300, deadline=None)
@given(st.lists(queued_event, max_size=40))
def test_coalesce_keeps_each_tasks_order_and_the_caps(evs: list[Any]) -> None:
    queue = [_queued(k + 1, ev) for k, ev in enumerate(evs)]
    groups = coalesce(queue)
    assert sorted(e for g in groups for e in g.entries) == [k for k, _, _ in queue]
    # Every entry is delivered once, in an event with its type and content; the events about one
    # task keep their queue order (an event never overtakes another about the same task).
    sent = [x for g in groups for x in _flat(g.etype, g.body)]
    assert sorted(sent) == sorted(x for _, t, b in queue for x in _flat(t, b))
    position = {e: n for n, g in enumerate(groups) for e in g.entries}
    for (e1, t1, b1), (e2, t2, b2) in ((q1, q2) for i, q1 in enumerate(queue) for q2 in queue[i + 1:]):
        same = {(r, i) for _, r, i, _ in _flat(t1, b1) if i >= 0} & \
            {(r, i) for _, r, i, _ in _flat(t2, b2) if i >= 0}
        if same:
            assert position[e1] <= position[e2]
    for g in groups:
        assert protocol.size(g.body) <= MAX_EVENT_BYTES
        if "at_ms" in g.body:  # the oldest member's, never a newer one
            assert g.body["at_ms"] == min(g.entries)
    assert len(groups) <= max(1, len(queue))


def _ledger(n: int = 4) -> Ledger:
    led = Ledger()
    run = protocol.parse(Kind.RUN.etype, "@o:x", protocol.content(
        Kind.RUN, "@o:x", run=RUN, name="r", workspace="w", dag_file="cis.toml", dag_z=protocol.pack_dag("")))
    led.add_run(run, [TaskPlan(i, f"t{i}") for i in range(n)])
    return led


def _m(kind: Kind, node: str, pairs: list[list[int]], **fields: Any) -> Message:
    bodies = protocol.split(kind, node, RUN, pairs, **fields)
    assert len(bodies) == 1
    return protocol.parse(kind.etype, node, bodies[0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["@a:x", "@b:x", "@c:x"]),
                          st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), min_size=1, max_size=6,
                                   unique_by=lambda p: p[0])), max_size=12))
def test_a_batch_claim_decides_each_task_as_if_it_came_alone(claims: list[Any]) -> None:
    """Differential: the ledger fed batch claims agrees with one fed the same pairs one by one."""
    batched, single = _ledger(6), _ledger(6)
    for k, (node, pairs) in enumerate(claims):
        batched.apply(_m(Kind.CLAIM, node, [list(p) for p in pairs], lease_ms=1000), float(k))
        for i, e in pairs:
            single.apply(protocol.parse(Kind.CLAIM.etype, node, protocol.content(
                Kind.CLAIM, node, run=RUN, task=i, epoch=e, lease_ms=1000)), float(k))
    for tb, ts in zip(batched.runs[RUN].tasks, single.runs[RUN].tasks, strict=True):
        assert tb.winners == ts.winners and tb.pending == ts.pending


def test_a_batch_wins_some_tasks_and_loses_others() -> None:
    led = _ledger()
    run = led.runs[RUN]
    led.apply(_m(Kind.CLAIM, "@b:x", [[1, 0], [2, 0]], lease_ms=1000), 0.0)
    led.apply(_m(Kind.CLAIM, "@a:x", [[0, 0], [1, 0], [2, 0], [3, 0]], lease_ms=1000), 0.0)
    assert [t.holder for t in run.tasks] == ["@a:x", "@b:x", "@b:x", "@a:x"]
    results = [{"task": 0, "epoch": 0, "state": "Completed"}, {"task": 1, "epoch": 0, "state": "Completed"}]
    body = protocol.split(Kind.STATE, "@a:x", RUN, results)[0]
    led.apply(protocol.parse(Kind.STATE.etype, "@a:x", body), 1.0)
    # Only the holder reports: task 1's result from @a is refused, task 0's counts.
    assert led.status(run.tasks[0]) is TaskStatus.COMPLETED and led.status(run.tasks[1]) is TaskStatus.CLAIMED
    assert any("does not hold epoch 0" in r for r in led.rejected)


def test_revocation_an_answer_before_start_voids_the_takeover() -> None:
    led = _ledger(3)
    t0, t1, t2 = led.runs[RUN].tasks
    led.apply(_m(Kind.CLAIM, "@a:x", [[0, 0], [1, 0], [2, 0]], lease_ms=1000), 0.0)
    led.apply(_m(Kind.CLAIM, "@b:x", [[0, 1], [1, 1], [2, 1]], lease_ms=1000), 5.0)  # revokes epoch 0
    assert [t.holder for t in (t0, t1, t2)] == ["@b:x"] * 3
    assert not any(led.may_start(t, 1, "@b:x") for t in (t0, t1, t2))  # pending: not yet
    led.apply(_m(Kind.LEASE, "@a:x", [[0, 0]]), 5.1)  # a: "I am running task 0"
    led.apply(_m(Kind.RELEASE, "@c:x", [[1, 0]]), 5.1)  # not the holder: no effect
    led.apply(_m(Kind.RELEASE, "@a:x", [[1, 0]]), 5.2)  # a never started task 1
    led.apply(_m(Kind.START, "@c:x", [[2, 1]]), 5.3)  # not the taker: no effect
    assert t0.holder == "@a:x" and t0.epoch == 0 and t0.pending == set()  # void: a keeps it
    assert led.may_start(t1, 1, "@b:x")
    assert not led.may_start(t2, 1, "@b:x")
    led.apply(_m(Kind.START, "@b:x", [[2, 1], [0, 1]]), 6.0)  # nobody answered for task 2
    assert led.may_start(t2, 1, "@b:x") and t0.holder == "@a:x"  # task 0's void stands
    led.apply(_m(Kind.LEASE, "@a:x", [[2, 0]]), 6.1)  # too late: after the start, stale
    assert t2.holder == "@b:x"
    # A state of the voided epoch is refused; the old holder's result counts.
    for node, i, e in (("@b:x", 0, 1), ("@a:x", 0, 0), ("@b:x", 2, 1), ("@a:x", 2, 0)):
        led.apply(protocol.parse(Kind.STATE.etype, node, protocol.content(
            Kind.STATE, node, run=RUN, task=i, epoch=e, state="Completed")), 7.0)
    assert led.status(t0) is TaskStatus.COMPLETED and t0.results[0].node == "@a:x"
    assert led.status(t2) is TaskStatus.DEBT  # a stalled for a whole lease after the revoke: debt


def test_a_result_before_start_also_voids_the_takeover() -> None:
    led = _ledger(1)
    t = led.runs[RUN].tasks[0]
    led.apply(_m(Kind.CLAIM, "@a:x", [[0, 0]], lease_ms=1000), 0.0)
    led.apply(_m(Kind.CLAIM, "@b:x", [[0, 1]], lease_ms=1000), 5.0)
    led.apply(protocol.parse(Kind.STATE.etype, "@a:x", protocol.content(
        Kind.STATE, "@a:x", run=RUN, task=0, epoch=0, state="Completed")), 5.1)
    led.apply(_m(Kind.START, "@b:x", [[0, 1]]), 5.2)
    assert t.holder == "@a:x" and t.epoch == 0 and t.duplicate() == ""
    assert led.view(led.runs[RUN])[0].status is TaskStatus.COMPLETED


def test_a_release_that_crossed_a_void_frees_the_task_for_the_next_epoch() -> None:
    """The holder's renewal (queued before it saw the revoke) voids the takeover; its release,
    sent on seeing the revoke, then frees the task: the next claim wins it outright."""
    led = _ledger(1)
    run = led.runs[RUN]
    t = run.tasks[0]
    led.apply(_m(Kind.CLAIM, "@a:x", [[0, 0]], lease_ms=1000), 0.0)
    led.apply(_m(Kind.CLAIM, "@b:x", [[0, 1]], lease_ms=1000), 5.0)
    led.apply(_m(Kind.LEASE, "@a:x", [[0, 0]]), 5.1)  # crossed the revoke: void
    assert t.holder == "@a:x" and not led.ready(run, t)
    led.apply(_m(Kind.RELEASE, "@b:x", [[0, 0]]), 5.2)  # not the holder: nothing
    assert not led.ready(run, t)
    led.apply(_m(Kind.RELEASE, "@a:x", [[0, 0]]), 5.2)
    assert led.ready(run, t) and led.next_epoch(t) == 1
    led.apply(_m(Kind.CLAIM, "@c:x", [[0, 1]], lease_ms=1000), 5.3)
    led.apply(_m(Kind.CLAIM, "@b:x", [[0, 1]], lease_ms=1000), 5.4)
    assert t.holder == "@c:x" and led.may_start(t, 1, "@c:x")  # nothing to revoke: no wait


def _dag(ws: Path, cmds: list[str]) -> str:
    toml = "\n".join(['name = "m"', 'policy = "AllowDebt"'] + [
        f'[[tasks]]\nidx = {i}\nname = "t{i}"\nexec = {{ cmd = ["sh", "-c", {json.dumps(c)}] }}'
        for i, c in enumerate(cmds)])
    (ws / "cis.toml").write_text(toml)
    return toml


def test_a_started_holder_voids_a_takeover_and_the_task_runs_once(tmp_path: Path) -> None:
    """Forced stall, as the taker sees it: @b judges @a silent (its view of @a's last word is
    pushed back) and revokes while @a is running the task. @a answers, the takeover is void,
    @b drops it: one execution, no Debt."""
    from cheng_build.cis.node.agent import Agent, NodeConfig
    from cheng_build.cis.node.localrun import parse_run
    from cheng_build.cis.node.origin import Follower

    ws = tmp_path / "ws"
    ws.mkdir()
    out = tmp_path / "out"
    gate = tmp_path / "gate"
    toml = _dag(ws, [f'echo "$CIS_NODE" >> {out}; while [ ! -e {gate} ]; do sleep 0.05; done'])
    wid = workspace.identity(ws)
    logs: dict[str, list[str]] = {"a": [], "b": []}

    async def main() -> Any:
        hub = MemoryHub()
        stop = asyncio.Event()
        a = Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", ws, wid, ("cpu",), jobs=1, lease_s=3,
                                                  hello_s=1), logs["a"].append)
        await a.start()
        serving = [asyncio.create_task(a.serve(stop))]
        origin = hub.join("@o:m", "r")
        body = protocol.content(Kind.RUN, origin.user_id, run=RUN, name="m", workspace=wid,
                                dag_file="cis.toml", dag_z=protocol.pack_dag(toml))
        follow = asyncio.create_task(Follower(origin, RUN, parse_run(toml, ws).plan, lambda o, n: None,
                                              lambda s: None, grace_s=30).follow(body))
        for _ in range(400):
            if out.exists():
                break
            await asyncio.sleep(0.02)
        b = Agent(hub.join("@b:m", "r"), NodeConfig(tmp_path / "b", ws, wid, ("cpu",), jobs=1, lease_s=3,
                                                  hello_s=1), logs["b"].append)
        await b.start()
        b.ledger.runs[RUN].tasks[0].heard = -1e9  # b "did not hear" a for ages: a lapse on b's clock
        b._tick()  # claims epoch 1: the revoke
        serving.append(asyncio.create_task(b.serve(stop)))
        for _ in range(500):
            if any("takeover void" in s for s in logs["b"]):
                break
            await asyncio.sleep(0.02)
        gate.write_text("")
        res = await asyncio.wait_for(follow, 60)
        stop.set()
        await asyncio.gather(*serving)
        return res, b.counters.ran

    res, b_ran = asyncio.run(main())
    assert any("answering that it runs" in s for s in logs["a"]), logs["a"]
    assert any("takeover void" in s for s in logs["b"]), logs["b"]
    assert b_ran == 0
    assert out.read_text().split() == ["@a:m"]
    assert [(v.status, v.node) for v in res.views] == [(TaskStatus.COMPLETED, "@a:m")]


def test_a_holder_whose_lease_is_stale_renews_before_it_starts(tmp_path: Path) -> None:
    from cheng_build.cis.node.agent import Agent, NodeConfig

    ws = tmp_path / "ws"
    ws.mkdir()
    toml = _dag(ws, ["true"])
    wid = workspace.identity(ws)

    async def main() -> list[bool]:
        hub = MemoryHub()
        ag = Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", ws, wid, ("cpu",), jobs=1),
                   lambda s: None)
        await ag.start()
        await hub.join("@o:m", "r").send(Kind.RUN.etype, protocol.content(
            Kind.RUN, "@o:m", run=RUN, name="m", workspace=wid, dag_file="cis.toml",
            dag_z=protocol.pack_dag(toml)), "run")
        ag.ingest(await ag.room.read(ag.token, 0))
        ag._tick()
        await ag._flush()
        ag.ingest(await ag.room.read(ag.token, 0))
        h = ag.held[(RUN, 0)]
        h.confirmed -= 3600.0  # as after a long pause of this process: the lease may be gone
        h.renewed -= 3600.0
        ag._renew_due -= 3600.0  # the agent's note of when the first renewal is due, likewise
        seen = [ag._startable(h)]
        ag._tick()  # renews instead of starting
        seen.append(h.started)
        await ag._flush()
        ag.ingest(await ag.room.read(ag.token, 0))  # its renewal is in the timeline: fresh again
        seen.append(ag._startable(h))
        for r in list(ag._runners):
            r.cancel()
        ag.outbox.close()
        return seen

    assert asyncio.run(main()) == [False, False, True]


def test_a_node_works_through_the_older_run_first(tmp_path: Path) -> None:
    """Two runs in the room, one node with one job: it claims and runs the older run's tasks
    before the newer one's (claims, results and renewals are one event per run: interleaving
    runs multiplied the events), and each task runs once."""
    from cheng_build.cis.node.agent import Agent, NodeConfig
    from cheng_build.cis.node.localrun import parse_run
    from cheng_build.cis.node.origin import Follower

    ws = tmp_path / "ws"
    ws.mkdir()
    out = tmp_path / "out"
    texts = {}
    for name in ("a", "b"):
        texts[name] = "\n".join([f'name = "{name}"', 'policy = "AllowDebt"'] + [
            f'[[tasks]]\nidx = {i}\nname = "t{i}"\nexec = {{ cmd = ["sh", "-c", "echo {name}{i} >> {out}"] }}'
            for i in range(3)])
        (ws / f"{name}.toml").write_text(texts[name])
    wid = workspace.identity(ws)

    async def main() -> list[Any]:
        hub = MemoryHub()
        stop = asyncio.Event()
        node = Agent(hub.join("@a:m", "r"), NodeConfig(tmp_path / "a", ws, wid, ("cpu",), jobs=1),
                     lambda s: None)
        await node.start()
        follows = []
        for run, name in ((RUN2, "a"), (RUN, "b")):  # posted in this order: a is the older run
            origin = hub.join(f"@o{name}:m", "r")
            body = protocol.content(Kind.RUN, origin.user_id, run=run, name=name, workspace=wid,
                                    dag_file=f"{name}.toml", dag_z=protocol.pack_dag(texts[name]))
            await origin.send(Kind.RUN.etype, body, f"run-{name}")
            follows.append(Follower(origin, run, parse_run(texts[name], ws).plan, lambda o, n: None,
                                    lambda s: None, grace_s=30).follow(None, attach_only=True))
        serving = asyncio.create_task(node.serve(stop))
        res = await asyncio.wait_for(asyncio.gather(*follows), 60)
        stop.set()
        await serving
        return list(res)

    res = asyncio.run(main())
    assert out.read_text().split() == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert all(v.status is TaskStatus.COMPLETED for r in res for v in r.views)


def test_results_riding_on_a_claim_obey_the_holder_rule() -> None:
    """A node's claim carrying results for a task another node holds: the claim counts, the
    results are refused exactly as in a state event (only an epoch's winner reports)."""
    led = _ledger(4)
    led.apply(_m(Kind.CLAIM, "@a:x", [[0, 0]], lease_ms=1000), 0.0)
    forged = protocol.split(Kind.CLAIM, "@b:x", RUN, [[3, 0]], lease_ms=1000)[0]
    forged["results"] = [{"task": 0, "epoch": 0, "state": "Completed", "exit_code": 0}]
    led.apply(protocol.parse(Kind.CLAIM.etype, "@b:x", forged, "$e1"), 1.0)
    tasks = led.runs[RUN].tasks
    assert tasks[0].results == [] and tasks[3].winners == {0: "@b:x"}
    assert any("state $e1 from @b:x: it does not hold epoch 0" in r for r in led.rejected)
    own = protocol.split(Kind.CLAIM, "@a:x", RUN, [[1, 0]], lease_ms=1000)[0]
    own["results"] = [{"task": 0, "epoch": 0, "state": "Completed", "exit_code": 0}]
    led.apply(protocol.parse(Kind.CLAIM.etype, "@a:x", own, "$e2"), 2.0)
    assert [r.node for r in tasks[0].results] == ["@a:x"] and tasks[1].winners == {0: "@a:x"}
