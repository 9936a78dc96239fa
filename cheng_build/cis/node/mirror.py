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
