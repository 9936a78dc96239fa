"""Which node ran each task of a room run, kept beside the run in the local store.

``room_tasks(run_id, idx, node, epoch)`` lives in the same ``state.db`` (created here, on first
use), so ``cis status`` on any node shows a node column without the store's own schema changing.
Runs that never went through a room have no rows (``node`` is then null).
"""

from __future__ import annotations

from typing import Any

_DDL = ("CREATE TABLE IF NOT EXISTS room_tasks(run_id TEXT, idx INTEGER, node TEXT, epoch INTEGER, "
        "PRIMARY KEY (run_id, idx))")


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
