"""The transport a node agent talks through: one room, events in one order.

Two implementations: :mod:`.matrix` (a Matrix homeserver) and :mod:`.memroom` (in memory, for
unit tests). Both give the same guarantee the claim rule needs: :meth:`Room.read` returns events
in the room's timeline order, and a token from one read continues exactly after the last event
it returned (on Synapse: incremental ``/sync`` in stream order, one total order per homeserver).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class RoomError(Exception):
    """The room could not be reached or refused us; ``what``/``how`` are for a one-line message."""

    def __init__(self, what: str, how: str = "", *, transient: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.how = how
        # True: the network or the homeserver is gone for now (island mode); False: a refusal
        # (bad credentials, unknown room, not a member) that retrying will not fix.
        self.transient = transient


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """One event as the room delivered it."""

    event_id: str
    sender: str
    type: str
    content: Mapping[str, Any]
    ts_ms: int = 0  # origin_server_ts: informative only, never used for ordering


@dataclass(frozen=True, slots=True)
class Batch:
    """What one read returned: events in timeline order and the token to continue from.

    ``gap`` is True when the homeserver skipped events between the previous token and these
    (Synapse's ``limited``) and they could not be filled in stream order: claims decided inside
    a gap are treated as contested (see ledger.py), never silently taken.
    """

    events: tuple[RoomEvent, ...]
    token: str
    gap: bool = False
    members: frozenset[str] = field(default_factory=frozenset)


class Room(Protocol):
    """A joined room."""

    @property
    def room_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    async def send(self, etype: str, content: Mapping[str, Any], txn_id: str) -> str:
        """Post one event; ``txn_id`` makes a retry idempotent. Returns the event id."""
        ...

    async def read(self, since: str | None, timeout_s: float) -> Batch:
        """Events after ``since`` (None: the room's whole history), waiting up to ``timeout_s``
        for the first one."""
        ...

    async def members(self) -> frozenset[str]:
        """User ids currently joined."""
        ...

    async def close(self) -> None: ...
