"""Feed room events into a ledger: parse, drop what is malformed or forged, keep the order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cheng_build.cis.node import protocol
from cheng_build.cis.node.ledger import Ledger, TaskPlan
from cheng_build.cis.node.protocol import Kind, Message, ProtocolError
from cheng_build.cis.node.room import RoomEvent


def feed(ledger: Ledger, events: Sequence[RoomEvent], now: float,
         plan_for: Callable[[Message], Sequence[TaskPlan]],
         dropped: Callable[[str], None]) -> list[Message]:
    """Apply ``events`` in order; RUN events get their plan from ``plan_for``. Returns what applied.
    ``dropped`` hears why an event was dropped: malformed or forged here, or refused by the ledger
    (e.g. a result from a node that does not hold the task)."""
    out = []
    for ev in events:
        try:
            msg = protocol.parse(ev.type, ev.sender, ev.content, ev.event_id)
        except ProtocolError as exc:
            dropped(str(exc))
            continue
        if msg.kind is Kind.RUN:
            ledger.add_run(msg, plan_for(msg))
        else:
            ledger.apply(msg, now)
            for why in ledger.rejected:
                dropped(why)
            ledger.rejected.clear()
        out.append(msg)
    return out
