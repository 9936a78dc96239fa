"""A room run as the origin's local store keeps it: which node ran each task, which room the run
lives in, and which tasks wait for a person.

``room_tasks(run_id, idx, node, epoch)`` and ``room_runs(run_id, room, room_id)`` live in the same
``state.db`` (created here, on first use), so ``cis status`` and the web view on that machine show
a node column, and the web view knows a run's decisions go to its room (a room ``control``
event, not the local control table: no local engine drives a room run), without the store's own
schema changing. Runs that never went through a room have no rows (``node`` and ``room`` are then
null).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cheng_build.cis.node.ledger import TaskPlan, TaskStatus, TaskView

_DDL = ("CREATE TABLE IF NOT EXISTS room_tasks(run_id TEXT, idx INTEGER, node TEXT, epoch INTEGER, "
        "PRIMARY KEY (run_id, idx))")
_DDL_RUNS = "CREATE TABLE IF NOT EXISTS room_runs(run_id TEXT PRIMARY KEY, room TEXT, room_id TEXT)"


@dataclass(frozen=True, slots=True)
class RoomRef:
    """Where a mirrored run lives: the alias it was posted with and the room's id."""

    room: str
    room_id: str


def record(store: Any, run_id: str, rows: list[tuple[int, str, int]]) -> None:
    """Set (idx, node, epoch) for tasks of ``run_id``, in one transaction."""
    with store.tx() as db:
        db.execute(_DDL)
        db.executemany("INSERT INTO room_tasks VALUES(?,?,?,?) ON CONFLICT(run_id, idx) DO UPDATE "
                       "SET node=excluded.node, epoch=excluded.epoch",
                       [(run_id, i, n, e) for i, n, e in rows])


def task_nodes(store: Any, run_id: str) -> dict[int, str]:
    """idx -> node for a room run; {} for a local one."""
    db = store.db
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='room_tasks'").fetchone() is None:
        return {}
    return {int(i): str(n) for i, n in db.execute(
        "SELECT idx, node FROM room_tasks WHERE run_id=? AND node != ''", (run_id,))}


def record_room(store: Any, run_id: str, ref: RoomRef) -> None:
    """Remember the room ``run_id`` was posted to (the origin, when it posts the run)."""
    with store.tx() as db:
        db.execute(_DDL_RUNS)
        db.execute("INSERT INTO room_runs VALUES(?,?,?) ON CONFLICT(run_id) DO UPDATE "
                   "SET room=excluded.room, room_id=excluded.room_id", (run_id, ref.room, ref.room_id))


def room_of(store: Any, run_id: str) -> RoomRef | None:
    """The room of a mirrored room run; None for a local run."""
    db = store.db
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='room_runs'").fetchone() is None:
        return None
    row = db.execute("SELECT room, room_id FROM room_runs WHERE run_id=?", (run_id,)).fetchone()
    return RoomRef(str(row[0]), str(row[1])) if row else None


def waiting_for_person(plan: Sequence[TaskPlan], views: Iterable[TaskView]) -> set[int]:
    """Tasks a person must confirm before any node may claim them: not Mechanical, still Pending,
    every dep reported Completed or Debt (what the ledger's ``ready`` asks, less the confirm)."""
    status = {v.idx: v.status for v in views}
    return {p.idx for p in plan
            if not p.mechanical and status.get(p.idx) is TaskStatus.PENDING
            and all(status.get(d) is not None and status[d].ok for d in p.deps)}


class RunMirror:
    """Writes one room run's task states, nodes and person-gates into a local store as they
    change: the origin's follower and a ``cis node`` (for its own ``cis status`` and web view)
    both keep their copy through it. Only states travel, never logs or files."""

    def __init__(self, store: Any, run_id: str, plan: Sequence[TaskPlan]) -> None:
        self.store = store
        self.run_id = run_id
        self.plan = tuple(plan)
        self.views: list[TaskView] = []
        self._gated: set[int] = set()
        self.seen = -1  # the ledger's version of this run the views were built at

    def update(self, new: list[TaskView]) -> list[TaskView]:
        """Apply ``new``; return the views it replaced."""
        old, self.views = self.views, new
        # One transaction for what changed (a node mirrors every read; per-task transactions
        # were a tenth of a busy node's CPU).
        self.store.set_tasks(self.run_id, _state_updates(old, new) + self._gate(
            waiting_for_person(self.plan, new)))
        before = {v.idx: (v.node, v.epoch) for v in old}
        moved = [(v.idx, v.node, v.epoch) for v in new if before.get(v.idx) != (v.node, v.epoch)]
        if moved:
            record(self.store, self.run_id, moved)
        return old

    def _gate(self, waiting: set[int]) -> list[_Update]:
        """Mark the tasks that wait for a person's confirm (the web view shows its Confirm card
        for them), and unmark those that no longer do."""
        out: list[_Update] = []
        for idx in sorted(waiting ^ self._gated):
            if idx in waiting:
                out.append((idx, "room-gate", {"waits": True}, {
                    "gate": "confirm", "note": "waits for a person: confirm it in the web view or "
                                               "with `cis confirm --room:`"}))
            else:  # claimed or settled: the state update before it wrote its state and note
                out.append((idx, "room-gate", {"waits": False}, {"gate": None}))
        self._gated = set(waiting)
        return out


_Update = tuple[int, str | None, dict[str, Any] | None, dict[str, Any]]


def _state_updates(old: list[TaskView], new: list[TaskView]) -> list[_Update]:
    import time

    from cheng_build.cis.dag.model import TaskState

    to_state = {TaskStatus.PENDING: TaskState.PENDING, TaskStatus.CLAIMED: TaskState.RUNNING,
                TaskStatus.RUNNING: TaskState.RUNNING, TaskStatus.COMPLETED: TaskState.COMPLETED,
                TaskStatus.FAILED: TaskState.FAILED, TaskStatus.DEBT: TaskState.DEBT,
                TaskStatus.SKIPPED: TaskState.SKIPPED}
    before = {v.idx: v for v in old}
    now = time.time()
    out: list[_Update] = []
    for v in new:
        b = before.get(v.idx)
        if b is not None and (b.status, b.node, b.reason) == (v.status, v.node, v.reason):
            continue
        if b is None and v.status is TaskStatus.PENDING and not v.node:
            continue  # as created
        fields: dict[str, Any] = {"state": to_state[v.status], "note": v.reason or None,
                                  "exit_code": v.exit_code}
        if v.status.finished:
            fields["finished"] = now
        if v.status in (TaskStatus.FAILED, TaskStatus.DEBT):
            fields["error"] = {"what": v.reason or f"task {v.name} failed on {v.node}",
                               "why": [f"ran on node {v.node}"], "how": [
                                   f"see `cis status` on {v.node} for its logs"]}
        out.append((v.idx, "room", {"node": v.node}, fields))
    return out


class NodeMirror:
    """A ``cis node``'s copy of every room run it can run (its checkout's DAG), so ``cis status``
    and the web view on that machine show the whole run with its node column, and the view's
    Confirm goes to the run's room like the origin's. Runs the node declined are not copied (it
    has no DAG of theirs it trusts)."""

    def __init__(self, store: Any, ref: RoomRef) -> None:
        self.store = store
        self.ref = ref
        self.runs: dict[str, RunMirror] = {}
        self.done: set[str] = set()

    def sync(self, ledger: Any, parsed: dict[str, Any]) -> None:
        """Bring the copies up to date with ``ledger`` (the agent's) and its parsed DAGs."""
        import time

        from cheng_build.cis.dag.model import RunState

        for run_id, rec in list(ledger.runs.items()):
            p = parsed.get(run_id)
            if p is None or run_id in self.done:
                continue
            m = self.runs.get(run_id)
            if m is None:
                if not self._created(run_id, p.dag):
                    self.done.add(run_id)
                    continue
                m = self.runs[run_id] = RunMirror(self.store, run_id, p.plan)
            if rec.version == m.seen:
                continue  # no event about it since the last copy (the other runs are busy)
            m.seen = rec.version
            views = ledger.view(rec)
            if views != m.views:
                m.update(views)
            if all(v.status.finished for v in views):  # from the views: no second build of them
                debt = any(v.status is TaskStatus.DEBT for v in views)
                state = (RunState.FAILED if any(v.status is TaskStatus.FAILED for v in views) else
                         RunState.SUCCEEDED_WITH_DEBT if debt else RunState.SUCCEEDED)
                self.store.set_run(run_id, "run-finished", state=state, finished=time.time())
                self.done.add(run_id)
                del self.runs[run_id]

    async def follow(self, agent: Any, stop: Any, every_s: float = 1.0) -> None:
        """Keep the copies following what ``agent`` has read, every ``every_s`` until ``stop``
        (an :class:`asyncio.Event`) is set."""
        import asyncio

        while not stop.is_set():
            self.sync(agent.ledger, agent.parsed)
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass

    def _created(self, run_id: str, dag: Any) -> bool:
        """Create the run's row; False when this store already has a run of that id that is not
        this room run's copy (the origin on the same machine and CIS_HOME keeps its own)."""
        import sqlite3

        try:
            self.store.create_run(run_id, dag, jobs=1, sandbox="room")
        except sqlite3.IntegrityError:
            return False
        record_room(self.store, run_id, self.ref)
        return True
