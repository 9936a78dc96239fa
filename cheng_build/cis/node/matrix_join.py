"""Getting into a room on a Matrix homeserver, through mautrix: log in (or check a token), resolve
the alias, join or create the room, make the sync filter.

Kept apart from :mod:`.matrix` (the room itself: send, sync, history, on :mod:`.http1`) because
only this part needs mautrix's client and its aiohttp session (~0.2 s at import together): a run
whose user's session (token, room id, filter) is kept from an earlier run never imports them.
The session lives only while getting in; the room then runs on its own client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import RoomAlias, RoomCreatePreset, RoomID, UserID

from cheng_build.cis.node.matrix_ids import full_alias, is_user
from cheng_build.cis.node.room import RoomError


@dataclass(frozen=True, slots=True)
class Joined:
    """What a later run needs to use the room again without this module."""

    token: str
    user_id: str
    room_id: str
    filter_id: str
    alias: str  # the room as resolved: ``#name:server``, or the room id given


async def _call(coro: Any) -> Any:
    try:
        return await coro
    except MatrixRequestError as exc:
        # 429 (rate limited) and 5xx (an overloaded homeserver) pass: retried, never a refusal.
        if exc.http_status == 429 or exc.http_status >= 500:
            raise RoomError(f"homeserver answered HTTP {exc.http_status}", transient=True) from exc
        raise RoomError(f"homeserver refused: {exc.errcode or exc.http_status}: {exc.message}") from exc
    except (MatrixConnectionError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RoomError(f"homeserver unreachable: {exc or type(exc).__name__}",
                        "check --homeserver; the node keeps working and queues its events",
                        transient=True) from exc


async def enter(homeserver: str, user: str, password: str | None, token: str | None, room: str,
                create: bool, join: bool, sync_filter: Callable[[str], Mapping[str, Any]], *,
                connect_timeout_s: float) -> Joined:
    """Log in with ``password`` (or check ``token``), then join ``room`` (``join=False``: only
    check membership), creating it when asked and absent; ``sync_filter(room_id)`` is the filter
    registered for the room's syncs.

    Raises:
        RoomError: bad credentials, unknown room, not a member, homeserver down (``transient``).
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await _enter(session, homeserver, user, password, token, room, create, join, sync_filter)


async def _enter(session: aiohttp.ClientSession, homeserver: str, user: str, password: str | None,
                 token: str | None, room: str, create: bool, join: bool,
                 sync_filter: Callable[[str], Mapping[str, Any]]) -> Joined:
    api = HTTPAPI(homeserver.rstrip("/"), token or "", client_session=session)
    c = ClientAPI(api=api)
    try:
        if token:
            who = await _call(c.whoami())
            c.mxid = who.user_id
            if not is_user(str(who.user_id), user):
                raise RoomError(f"login as {user} refused by {homeserver}: the token is "
                                f"{who.user_id}'s", "give the token of --user, or that user")
        else:
            resp = await _call(c.login(identifier=UserID(user), password=password or ""))
            c.mxid = resp.user_id
    except RoomError as exc:
        if not exc.transient:
            raise RoomError(f"login as {user} refused by {homeserver}",
                            "check --user and --password-file / --token-file") from exc
        raise RoomError(f"homeserver {homeserver} unreachable", "start it, or check --homeserver",
                        transient=True) from exc
    alias = full_alias(room, str(c.mxid))
    room_id = await _join(c, alias, create) if join else await _member_of(c, alias)
    fid = await _call(c.create_filter(sync_filter(room_id)))  # type: ignore[arg-type]
    return Joined(str(api.token), str(c.mxid), room_id, str(fid), alias)


async def _member_of(c: ClientAPI, alias: str) -> str:
    """The room id of ``alias`` when this user has joined it; else a refusal (never a join)."""
    room_id = alias
    if not alias.startswith("!"):
        try:
            room_id = str((await _call(c.resolve_room_alias(RoomAlias(alias)))).room_id)
        except RoomError as exc:
            if exc.transient:
                raise
            raise RoomError(f"unknown room {alias}", "check the room the run was posted to") from exc
    joined = await _call(c.get_joined_rooms())
    if room_id not in {str(r) for r in joined}:
        raise RoomError(f"{c.mxid} is not a member of room {alias}",
                        "only a member of the room may decide for its runs: run `cis node` with this "
                        "user in the room, or ask a member to invite it")
    return room_id


async def _join(c: ClientAPI, alias: str, create: bool) -> str:
    if alias.startswith("!"):
        try:
            return str(await _call(c.join_room_by_id(RoomID(alias))))
        except RoomError as exc:
            if exc.transient:
                raise
            raise RoomError(f"cannot join room {alias}: {exc.what}", "check --room") from exc
    for _ in range(3):
        try:
            info = await _call(c.resolve_room_alias(RoomAlias(alias)))
        except RoomError as exc:
            if exc.transient or "NOT_FOUND" not in exc.what:
                raise
            if not create:
                raise RoomError(f"unknown room {alias}", "check --room, or start a `cis node` with it "
                                "first (a node creates the room)") from exc
            try:
                local = alias[1:].split(":", 1)[0]
                # Joinable by any account of this homeserver: on a self-hosted server with
                # registration closed, its accounts are the membership boundary.
                rid = await _call(c.create_room(alias_localpart=local, preset=RoomCreatePreset.PUBLIC,
                                                name=f"cis {local}"))
                return str(rid)
            except RoomError as exc2:
                if exc2.transient or not ("ROOM_IN_USE" in exc2.what or "already exists" in exc2.what):
                    raise
                await asyncio.sleep(0.2)  # another node created it just now: resolve again
                continue
        # Just after another node created it, the alias may resolve before the room's join rule
        # is public (M_FORBIDDEN) or before its creator's own join is stored (Synapse: "no
        # servers that are in the room"): retry a few times quickly (mautrix's own retry waits
        # 10 s per try).
        for attempt in range(20):
            try:
                return str(await _call(c.join_room(RoomID(str(info.room_id)), max_retries=0)))
            except RoomError as exc:
                if exc.transient:
                    raise
                if attempt == 19 or ("M_FORBIDDEN" not in exc.what and "no servers" not in exc.what):
                    raise RoomError(f"cannot join room {alias}: {exc.what}",
                                    "ask a member to invite you") from exc
                await asyncio.sleep(0.25)
    raise RoomError(f"cannot create or resolve room {alias}")
