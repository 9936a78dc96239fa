"""The web view's buttons on a room run (one ``cis run --room:`` posted from this machine and
mirrored into its store): no local engine drives such a run, so confirm, skip and cancel are posted
to its room as ``control`` events, through the same function as ``cis confirm --room:``
(:mod:`cheng_build.cis.node.decide`), as the Matrix user the view was started with. The session
checks of :mod:`.web` (cookie, ``X-CIS-Token``, ``Host``) run before this is reached.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from cheng_build.cis.node.decide import DecisionState, RoomDecider
from cheng_build.cis.node.mirror import RoomRef
from cheng_build.cis.node.protocol import ProtocolError
from cheng_build.cis.node.room import RoomError
from cheng_build.cis.run import control
from cheng_build.cis.run.store import Store
from cheng_build.cis.view.board import check_body

# A web button on a room run -> the room's control action (cancel a Confirmed task = skip it).
ROOM_ACTIONS = {"confirm": "confirm", "skip": "skip", "cancel": "skip"}


def _error(status: int, what: str, why: str | None = None,
           how: str | None = None) -> tuple[int, dict[str, Any]]:
    return status, {"error": what, "why": why, "how": how}


def room_action(decider: RoomDecider | None, store: Store, run_id: str, ref: RoomRef, task: str,
                action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for a button pressed on task ``task`` of room run ``run_id``:
    200 the event is in the room; 202 the homeserver is unreachable and it waits in the outbox;
    403 the room refused (not a member, bad credentials: nothing kept); 409 no Matrix connection,
    or an action a room run does not take.

    Raises:
        ChengError: a bad body or an unknown task (the server answers 400 / 404).
    """
    check_body(action, body)
    room_act = ROOM_ACTIONS.get(action)
    if room_act is None:
        return _error(HTTPStatus.CONFLICT, f"{action}: not available for a room run",
                      why=f"run {run_id} lives in room {ref.room}; only "
                          f"{', '.join(ROOM_ACTIONS)} act through the room",
                      how="act on the task on the node that holds it")
    idx = control.task_index(store, run_id, task)
    if decider is None:
        return _error(HTTPStatus.CONFLICT,
                      f"{action}: run {run_id} lives in room {ref.room}, and this web view has no "
                      "Matrix connection",
                      why="a decision on a room run is a room event, sent as a member",
                      how="start 'cis web' with --homeserver: --user: --password-file: (or "
                          "CIS_MATRIX_* / matrix.toml), or use 'cis confirm --room:'")
    try:
        d = decider.decide(ref.room_id, run_id, idx, room_act)
    except RoomError as exc:
        return _error(HTTPStatus.FORBIDDEN, f"{action}: room {ref.room} refused: {exc.what}",
                      why="nothing was sent; the decision is not kept", how=exc.how or None)
    except ProtocolError as exc:
        return _error(HTTPStatus.BAD_REQUEST, f"{action}: {exc}")
    if d.state is DecisionState.SENT:
        return HTTPStatus.OK, {"state": d.state.value, "room": ref.room, "event_id": d.event_id,
                               "result": f"{room_act} sent to room {ref.room} (event {d.event_id}): "
                                         "the nodes of the run act on it"}
    return HTTPStatus.ACCEPTED, {
        "state": d.state.value, "room": ref.room, "queued": decider.queued(),
        "result": f"queued: room {ref.room} is unreachable ({d.detail}); the {room_act} waits in "
                  "this machine's outbox and is sent when the homeserver answers"}


__all__ = ["ROOM_ACTIONS", "room_action"]
