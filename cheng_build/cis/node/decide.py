"""A person's decision on a room run (confirm / skip), posted as a room ``control`` event.

One function, :func:`post_control`, makes and sends the event for both ``cis confirm --room:``
and the web view's buttons, so the two can never disagree on what a confirmation is. The room
decides who may send it: the homeserver accepts events only from members of the room, and every
node applies a ``control`` event from any sender it accepts (its ``node`` field must be its
Matrix sender, or it is dropped as forged: :func:`protocol.parse`).

The web view (:class:`RoomDecider`) adds two things a one-shot command does not need:

* **membership first**: it connects without joining (the connector it is given refuses a user
  that is not already a member), so pressing a button never makes anyone a member;
* **an outbox**: every decision is written to a SQLite WAL outbox (coffee mode's ``Outbox``, as a
  node's island queue, in its own file ``$CIS_HOME/web/<identity>/node/coffee.db``: a node
  agent never drains it, nor does a view of another user, so nothing is ever sent under another
  identity) and then delivered. When the
  homeserver is unreachable the decision stays queued, the page says so, and a background
  thread of the web server delivers it when the homeserver answers again. A refusal (not a
  member, bad credentials) is never retried: it is dropped and the page shows why.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cheng_build.cis.node import protocol
from cheng_build.cis.node.island import NodeOutbox
from cheng_build.cis.node.protocol import Kind
from cheng_build.cis.node.room import Room, RoomError

# room (an alias or a room id) -> a connected Room; raises RoomError.
Connector = Callable[[str], Awaitable[Room]]

SEND_TIMEOUT_S = 20.0  # one delivery attempt (login + send) from the web view


def control_fields(run_id: str, idx: int, action: str, reason: str = "") -> dict[str, object]:
    """The fields of a ``control`` event, checked before anything connects.

    Raises:
        protocol.ProtocolError: not a run id, a task index out of range, an unknown action.
    """
    fields: dict[str, object] = {"run": run_id, "task": idx, "action": action}
    if reason:
        fields["reason"] = reason[:400]
    protocol.content(Kind.CONTROL, "@check:x", **fields)
    return fields


async def post_control(room: Room, run_id: str, idx: int, action: str, *, reason: str = "",
                       txn_id: str | None = None) -> str:
    """Post a person's ``action`` (confirm / skip) on task ``idx`` of ``run_id``; the event id.

    Raises:
        protocol.ProtocolError: bad fields (see :func:`control_fields`).
        RoomError: the homeserver refused it (``transient``: it could not be reached).
    """
    fields = control_fields(run_id, idx, action, reason)
    body = protocol.content(Kind.CONTROL, room.user_id, **fields)
    return await room.send(Kind.CONTROL.etype, body,
                           txn_id or f"{action}-{run_id}-{idx}-{time.time_ns()}")


class DecisionState(enum.Enum):
    SENT = "sent"  # in the room's timeline: the nodes act on it
    QUEUED = "queued"  # the homeserver is unreachable: kept in the outbox, delivered later


@dataclass(frozen=True, slots=True)
class Decision:
    state: DecisionState
    room: str
    event_id: str = ""
    detail: str = ""  # why it is queued


class RoomDecider:
    """The web view's way into the rooms of mirrored runs (see the module docstring)."""

    def __init__(self, home: str | Path, connect: Connector, *, who: str = "",
                 timeout_s: float = SEND_TIMEOUT_S) -> None:
        # One outbox per identity (``who``: homeserver and user as given): a queued decision is
        # only ever sent by a view of the user who made it, never by another one on this home.
        key = hashlib.sha256(who.encode()).hexdigest()[:16]
        self.home = Path(home) / "web" / key
        self.connect = connect
        self.timeout_s = timeout_s
        # One delivery at a time: a button press and the background retry never send one entry twice.
        self._lock = threading.Lock()
        self.last_refusal = ""

    def _outbox(self) -> NodeOutbox:
        # Opened per use: the web server's handler threads may not share one SQLite connection.
        return NodeOutbox(self.home, "web")

    def decide(self, room: str, run_id: str, idx: int, action: str) -> Decision:
        """Queue the decision, then try to deliver it (and anything queued before it).

        Raises:
            protocol.ProtocolError: bad fields.
            RoomError: refused (not a member, bad credentials, unknown room): not queued.
        """
        fields = control_fields(run_id, idx, action)
        box = self._outbox()
        try:
            entry = box.put(Kind.CONTROL.etype, {"room": room, **fields}, run_id, idx)
        finally:
            box.close()
        with self._lock:
            sent, why = self._deliver(only=entry)
        if entry in sent:
            return Decision(DecisionState.SENT, room, sent[entry])
        return Decision(DecisionState.QUEUED, room, detail=why)

    def drain(self) -> int:
        """Deliver what is queued (the web server's background retry); how many were sent."""
        with self._lock:
            sent, _ = self._deliver()
        return len(sent)

    def queued(self) -> int:
        if not (self.home / "node" / "coffee.db").exists():
            return 0  # nothing was ever queued: the background check creates no files
        box = self._outbox()
        try:
            return box.queued()
        finally:
            box.close()

    def _deliver(self, only: int | None = None) -> tuple[dict[int, str], str]:
        """Send queued entries in order, room by room; (entry -> event id, why some stayed).
        A refusal of ``only`` is raised; a refusal of an older entry is kept in ``last_refusal``."""
        box = self._outbox()
        try:
            return asyncio.run(asyncio.wait_for(self._send_all(box, only), self.timeout_s))
        except TimeoutError:
            return {}, f"the homeserver did not answer within {self.timeout_s:g} s"
        finally:
            box.close()

    async def _send_all(self, box: NodeOutbox, only: int | None) -> tuple[dict[int, str], str]:
        sent: dict[int, str] = {}
        rooms: dict[str, Room] = {}
        try:
            for entry, _etype, data in box.pending():
                room_name = str(data.pop("room"))
                try:
                    room = rooms.get(room_name)
                    if room is None:
                        room = rooms[room_name] = await self.connect(room_name)
                    sent[entry] = await post_control(
                        room, str(data["run"]), int(data["task"]), str(data["action"]),
                        reason=str(data.get("reason") or ""), txn_id=box.txn_id(entry))
                except RoomError as exc:
                    if exc.transient:
                        return sent, exc.what  # keep it and everything after it, in order
                    box.sent(entry)  # a refusal is not fixed by retrying: drop it, say why
                    if entry == only:
                        raise
                    self.last_refusal = exc.what
                    continue
                except protocol.ProtocolError as exc:
                    box.sent(entry)
                    self.last_refusal = str(exc)
                    continue
                box.sent(entry)
        finally:
            for r in rooms.values():
                await r.close()
        return sent, ""


def retry_forever(decider: RoomDecider, stop: threading.Event, every_s: float = 2.0) -> None:
    """The web server's background delivery: until ``stop``, drain the queue every ``every_s``."""
    while not stop.wait(every_s):
        if decider.queued():
            decider.drain()


__all__ = ["Connector", "Decision", "DecisionState", "RoomDecider", "control_fields",
           "post_control", "retry_forever"]
