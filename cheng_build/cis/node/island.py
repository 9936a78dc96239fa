"""Island mode: every event a node posts goes through coffee mode's SQLite WAL outbox first.

The node writes the event to ``$CIS_HOME/node/coffee.db`` (coffee mode's :class:`Outbox` schema,
its own file so coffee's HTTP sync never picks these up), then delivers the queue in order. When
the homeserver is gone the queue just grows and the node keeps running what it holds; when it is
back, the queue drains in the order the events were made. Each entry's id is its Matrix
transaction id, so a delivery that succeeded but whose answer was lost is not posted twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from cheng_build.cis.coffee import Outbox


class NodeOutbox:
    """Queue (durable) and drain (in order) a node's room events."""

    def __init__(self, home: str | os.PathLike[str], session: str) -> None:
        self._box = Outbox(Path(home) / "node")
        self._session = session

    def close(self) -> None:
        self._box.close()

    def put(self, etype: str, content: dict[str, Any], run_id: str = "", idx: int | None = None) -> int:
        db = self._box.db
        db.execute("BEGIN IMMEDIATE")
        try:
            nxt = db.execute("SELECT COALESCE(MAX(event_id), 0) + 1 FROM outbox WHERE run_id=?",
                             (run_id,)).fetchone()[0]
            cur = db.execute("INSERT INTO outbox(run_id, event_id, ts, idx, kind, data) VALUES(?,?,?,?,?,?)",
                             (run_id, nxt, time.time(), idx, etype, json.dumps(content)))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return int(cur.lastrowid or 0)

    def pending(self, limit: int = 200) -> list[tuple[int, str, dict[str, Any]]]:
        return [(int(e["id"]), str(e["kind"]), dict(e["data"])) for e in self._box.pending(limit)]

    def txn_id(self, entry: int) -> str:
        return f"cis-{self._session}-{entry}"

    def sent(self, entry: int) -> None:
        self._box.mark_sent([entry])

    def sent_many(self, entries: list[int]) -> None:
        self._box.mark_sent(entries)

    def queued(self) -> int:
        return self._box.queued()
