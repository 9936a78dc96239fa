"""An in-memory room with the Matrix room's ordering semantics, for unit tests.

One list per room is the timeline: an append is the homeserver persisting an event, its index
the stream position, and a token is the index to continue from. Like Synapse, a retried send
with the same (user, txn_id) returns the first event instead of posting again, and only members
may post. ``cut`` users (an island) get transient errors, as a node that lost the homeserver.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cheng_build.cis.node.room import Batch, RoomError, RoomEvent


@dataclass
class _Timeline:
    room_id: str
    events: list[RoomEvent] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    txns: dict[tuple[str, str], str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryHub:
    """A homeserver in memory: rooms by alias, users, and a switch to cut users off."""

    def __init__(self) -> None:
        self.rooms: dict[str, _Timeline] = {}
        self.cut: set[str] = set()
        self._ids = itertools.count(1)

    def join(self, user_id: str, alias: str, *, create: bool = True) -> MemoryRoom:
        if user_id in self.cut:
            raise RoomError("homeserver unreachable", transient=True)
        tl = self.rooms.get(alias)
        if tl is None:
            if not create:
                raise RoomError(f"no room {alias}", "create it with `cis node` first")
            tl = self.rooms[alias] = _Timeline(f"!mem{len(self.rooms) + 1}:memory")
        tl.members.add(user_id)
        return MemoryRoom(self, tl, user_id)

    def handle(self, user_id: str, alias: str) -> MemoryRoom:
        """``user_id``'s handle on the existing room ``alias`` without joining it: a non-member's
        sends are refused, as the homeserver refuses them."""
        return MemoryRoom(self, self.rooms[alias], user_id)

    def next_id(self) -> str:
        return f"$ev{next(self._ids)}"


class MemoryRoom:
    def __init__(self, hub: MemoryHub, tl: _Timeline, user_id: str) -> None:
        self._hub = hub
        self._tl = tl
        self._user = user_id

    @property
    def room_id(self) -> str:
        return self._tl.room_id

    @property
    def user_id(self) -> str:
        return self._user

    def _check(self) -> None:
        if self._user in self._hub.cut:
            raise RoomError("homeserver unreachable", transient=True)

    async def send(self, etype: str, content: Mapping[str, Any], txn_id: str) -> str:
        self._check()
        if self._user not in self._tl.members:
            raise RoomError(f"{self._user} is not a member of {self.room_id}")
        key = (self._user, txn_id)
        if key in self._tl.txns:
            return self._tl.txns[key]
        ev = RoomEvent(self._hub.next_id(), self._user, etype, dict(content),
                       len(self._tl.events))
        self._tl.events.append(ev)
        self._tl.txns[key] = ev.event_id
        self._tl.changed.set()
        self._tl.changed = asyncio.Event()
        return ev.event_id

    async def read(self, since: str | None, timeout_s: float) -> Batch:
        self._check()
        pos = int(since) if since else 0
        if pos >= len(self._tl.events) and timeout_s > 0:
            waiter = self._tl.changed
            try:
                await asyncio.wait_for(waiter.wait(), timeout_s)
            except TimeoutError:
                pass
            self._check()
        evs = tuple(self._tl.events[pos:])
        return Batch(evs, str(pos + len(evs)), members=frozenset(self._tl.members))

    async def members(self) -> frozenset[str]:
        self._check()
        return frozenset(self._tl.members)

    async def close(self) -> None:
        return None
