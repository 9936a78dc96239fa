"""The node's per-task path (issue 18's throughput goal): what its savings must not change.

A node runs each task it wins as a one-task local run that reuses its worker thread's store,
environment and program lookups and hands the engine the DAG it just stored; its copy of a room
run skips runs nothing happened to and writes a sync in batches; its outbox indexes what is
unsent; the engine sweeps orphan cgroups at most every few seconds per process. Each test checks
that the cheaper path gives what the plain one gave (differential where there is an oracle)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers_cis import in_new_thread
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cis.dag.model import TaskState
from cheng_build.cis.node import mirror, protocol
from cheng_build.cis.node.ledger import Ledger, TaskStatus
from cheng_build.cis.node.localrun import parse_run, run_task
from cheng_build.cis.node.protocol import Kind, Message
from cheng_build.cis.run import control
from cheng_build.cis.sandbox import launch

RUN = "01M98FZR3PSFV964KJ3JCZ99Y9"
RUN2 = "01M98FZR3PSFV964KJ3JCZ99Y8"


@pytest.fixture(autouse=True)
def _unsandboxed_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIS_SANDBOX", "unsandboxed")  # tasks write into the test's tmp dir


def _toml(cmds: list[str], env: str = "") -> str:
    lines = ['name = "lean"', 'policy = "AllowDebt"']
    for i, c in enumerate(cmds):
        lines += ["[[tasks]]", f"idx = {i}", f'name = "t{i}"',
                  f'exec = {{ cmd = ["sh", "-c", {json.dumps(c)}]{env} }}']
    return "\n".join(lines) + "\n"


def test_one_task_runs_keep_the_engines_outcomes_and_records(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Completed / failed / missing program, ``${NAME}`` from the node's environment, the same
    program looked up for several runs: outcomes as the engine's, and each run in the node's store
    for `cis status` (its DAG readable back, its task row final)."""
    monkeypatch.setenv("CISNODE_LEAN_GREETING", "hi")
    text = _toml(['test "$G" = hi', "exit 3", 'test "$G" = hi'],
                 env=', env = { G = "${CISNODE_LEAN_GREETING}" }')
    dag = parse_run(text, tmp_path).dag
    home = tmp_path / "home"
    outs = in_new_thread(lambda: [run_task(home, dag, i, "@n:x") for i in range(3)])
    assert [o.status for o in outs] == [TaskStatus.COMPLETED, TaskStatus.DEBT, TaskStatus.COMPLETED]
    assert outs[1].exit_code == 3 and "exited with status 3" in outs[1].reason
    store = control.open_store(home)
    try:
        # In the node's store a one-task run is AllSuccess: the failure is Failed there; the room
        # hears Debt (nothing downstream needs it).
        for i, (o, local) in enumerate(zip(outs, (TaskState.COMPLETED, TaskState.FAILED,
                                                  TaskState.COMPLETED), strict=True)):
            view = control.get_run(store, o.local_run)
            assert view.tasks[0].state is local
            assert view.run.dag.tasks[0].exec.cmd == dag.tasks[i].exec.cmd
            assert dict(view.run.dag.tasks[0].exec.env)["CIS_NODE"] == "@n:x"
    finally:
        store.close()
    missing = parse_run(_toml(["true"]).replace('"sh"', '"no-such-program-cisnode"'), tmp_path).dag
    out = in_new_thread(lambda: run_task(home, missing, 0, "@n:x"))
    assert out.status is TaskStatus.DEBT and "not found" in out.reason


def test_a_new_store_opened_by_many_workers_at_once(tmp_path: Path) -> None:
    """A node's first tasks start together, each worker thread opening the (new) store: SQLite
    refuses a second opener switching it to WAL at the same moment ("database is locked")
    unless the openings take turns."""
    dag = parse_run(_toml(["true"]), tmp_path).dag
    for rnd in range(30):
        home = tmp_path / f"h{rnd}"
        gate = threading.Barrier(3)
        outs: list[Any] = []

        def work(home: Path = home, gate: threading.Barrier = gate, outs: list[Any] = outs) -> None:
            gate.wait()
            outs.append(run_task(home, dag, 0, "@n:x"))

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [o.status for o in outs] == [TaskStatus.COMPLETED] * 3, [o.reason for o in outs]



def _open_store(home: str, gate: Any, errors: Any) -> None:
    gate.wait()
    try:
        control.open_store(home).close()
        errors.put("")
    except Exception as exc:  # the failure this test is about: reported, not raised in a child
        errors.put(str(exc))


def test_a_new_store_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    """The same race between processes (nodes and ``cis run``s started together on one fresh
    CIS_HOME): the openings take turns on a file lock, so none is refused."""
    ctx = multiprocessing.get_context("fork")
    refused: list[str] = []
    for rnd in range(20):
        gate, errors = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_store, args=(str(tmp_path / f"p{rnd}"), gate, errors))
                 for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        refused += [e for e in (errors.get(timeout=10) for _ in procs) if e]
    assert refused == []

_update = st.tuples(
    st.integers(0, 3),
    st.sampled_from([None, "room", "room-gate"]),
    st.none() | st.dictionaries(st.sampled_from(["node", "waits"]), st.text(max_size=5) | st.booleans(),
                                max_size=2),
    st.dictionaries(st.sampled_from(["state", "note", "exit_code", "gate", "error"]),
                    st.sampled_from(list(TaskState)) | st.text(max_size=6) | st.integers(-2, 300)
                    | st.none(), max_size=4))


def _fix(fields: dict[str, Any]) -> dict[str, Any]:
    """Column values of the right kind for each column."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k == "state":
            out[k] = v if isinstance(v, TaskState) else TaskState.PENDING
        elif k == "error":
            out[k] = None if v is None else {"what": str(v)}
        elif k == "exit_code":
            out[k] = v if isinstance(v, int) and not isinstance(v, bool) else None
        else:
            out[k] = None if v is None else str(v)
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(_update, max_size=12))
def test_set_tasks_equals_set_task_one_by_one(updates: list[Any]) -> None:
    """Differential: the batched write of a sync leaves the same task rows and the same events,
    in the same order, as one set_task per update (same task twice in a batch included)."""
    ups = [(i, ev, data, _fix(f)) for i, ev, data, f in updates]
    dag = parse_run(_toml(["true"] * 4), "/").dag
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for how in ("batch", "single"):
            store = control.open_store(Path(d) / how)
            rid = control.create_run(store, dag, check_inputs=False, run_id=RUN)
            if how == "batch":
                store.set_tasks(rid, ups)
            else:
                for i, ev, data, f in ups:
                    store.set_task(rid, i, ev, data, **f)
            tasks = [(t.state, t.note, t.exit_code, t.gate, t.error) for t in store.tasks(rid)]
            events = [(e[1], e[3], e[4]) for e in store.events(rid) if e[3] != "run-created"]
            rows.append((tasks, events))
            store.close()
    assert rows[0] == rows[1]


def test_the_outbox_queue_is_read_through_its_index(tmp_path: Path) -> None:
    """However many sent rows a long-lived node keeps, the queue is read through the partial
    index of unsent entries (not a scan of everything ever sent), and reads right."""
    from cheng_build.cis.node.island import NodeOutbox

    box = NodeOutbox(tmp_path, "s")
    try:
        ids = [box.put("org.cheng.cis.state", {"n": i}, RUN, i) for i in range(5)]
        box.sent_many(ids[:3])
        assert [e[0] for e in box.pending()] == ids[3:] and box.queued() == 2
        db: sqlite3.Connection = box._box.db
        for q in ("SELECT id, run_id, event_id, ts, idx, kind, data FROM outbox WHERE sent IS NULL "
                  "ORDER BY id LIMIT 200", "SELECT COUNT(*) FROM outbox WHERE sent IS NULL"):
            plan = " ".join(str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + q))
            assert "outbox_unsent" in plan, plan
    finally:
        box.close()


def _msg(kind: Kind, node: str, **fields: Any) -> Message:
    return protocol.parse(kind.etype, node, protocol.content(kind, node, **fields))


def test_the_node_mirror_copies_only_runs_with_news(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync rebuilds (and writes) only the runs an event was about since the last one; what it
    copies still follows the ledger."""
    text = _toml(["true", "true"])
    parsed = parse_run(text, tmp_path)
    led = Ledger()
    for rid in (RUN, RUN2):
        led.add_run(_msg(Kind.RUN, "@o:x", run=rid, name="m", workspace="w", dag_file="cis.toml",
                         dag_z=protocol.pack_dag(text)), parsed.plan)
    store = control.open_store(tmp_path / "home")
    copies = mirror.NodeMirror(store, mirror.RoomRef("#r:x", "!r:x"))
    built: list[str] = []
    real_view = led.view
    monkeypatch.setattr(led, "view", lambda run: built.append(run.run_id) or real_view(run))
    try:
        copies.sync(led, {RUN: parsed, RUN2: parsed})
        assert sorted(built) == [RUN2, RUN]
        built.clear()
        led.apply(_msg(Kind.HELLO, "@n:x", caps=["cpu"], workspace="w", jobs=1, hello_ms=5000), 0.0)
        copies.sync(led, {RUN: parsed, RUN2: parsed})
        assert built == []  # nothing about either run
        led.apply(_msg(Kind.CLAIM, "@n:x", run=RUN2, task=1, epoch=0, lease_ms=5000), 0.1)
        copies.sync(led, {RUN: parsed, RUN2: parsed})
        assert built == [RUN2]
        t = control.get_run(store, RUN2).tasks[1]
        assert t.state is TaskState.RUNNING and mirror.task_nodes(store, RUN2) == {1: "@n:x"}
        led.apply(_msg(Kind.STATE, "@n:x", run=RUN2, task=1, epoch=0, state="Completed"), 0.2)
        copies.sync(led, {RUN: parsed, RUN2: parsed})
        assert control.get_run(store, RUN2).tasks[1].state is TaskState.COMPLETED
        assert control.get_run(store, RUN).tasks[1].state is TaskState.PENDING
    finally:
        store.close()


def test_orphan_cgroups_are_swept_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    monkeypatch.setattr(launch, "pids_cgroup_available", lambda: asked.append(1) or False)
    monkeypatch.setattr(launch, "_SWEPT_AT", [-1e18])
    launch.sweep_orphan_cgroups()
    launch.sweep_orphan_cgroups()
    assert len(asked) == 1  # the second engine of the same process within the interval skips it
    launch._SWEPT_AT[0] -= launch.SWEEP_EVERY_S + 1
    launch.sweep_orphan_cgroups()
    assert len(asked) == 2
