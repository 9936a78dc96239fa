"""The room on a Matrix homeserver, through mautrix (imported only here, only by `cis node` and
`cis run --room:`: ~0.5 s of aiohttp/attrs/yarl that no other command pays).

Why mautrix: it is typed, actively maintained (it powers maubot and the mautrix bridges), has
fewer and lighter dependencies than matrix-nio (no jsonschema, pycryptodome, h2) and imported in
~0.5 s against nio's ~0.8 s on this machine. Its ``ClientAPI`` is used for login, join, create
and send; ``/sync`` and ``/messages`` go through its ``api.request`` so the raw JSON (the
``limited`` flag, ``prev_batch``, custom event types) reaches us untouched.

Order: after the first read, :meth:`MatrixRoom.read` is an incremental ``/sync`` from the last
``next_batch``: Synapse serves it in stream order, the order it persisted events. When Synapse
says ``limited`` (more events than the filter's limit since the token), the missing ones are
fetched with ``/messages`` back to the token and the batch is marked ``gap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pathlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import aiohttp
from mautrix.api import HTTPAPI, Method, Path
from mautrix.client import ClientAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import EventType, RoomAlias, RoomCreatePreset, RoomID, UserID

from cheng_build.cis.node.room import Batch, RoomError, RoomEvent

EVENT_PREFIX = "org.cheng.cis."
TIMELINE_LIMIT = 1000
HTTP_TIMEOUT_S = 20.0


def full_alias(room: str, user_id: str) -> str:
    """``cis`` or ``#cis`` -> ``#cis:<the user's server>``; a full alias or room id is kept."""
    if room.startswith("!") or (room.startswith("#") and ":" in room):
        return room
    server = user_id.split(":", 1)[1] if ":" in user_id else ""
    return f"#{room.lstrip('#')}:{server}"


def full_user(user: str, homeserver_name: str) -> str:
    return user if user.startswith("@") and ":" in user else f"@{user.lstrip('@')}:{homeserver_name}"


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, MatrixConnectionError | aiohttp.ClientError | OSError | TimeoutError):
        return True
    # 429 (rate limited) and 5xx (an overloaded homeserver) pass: the event is retried, never
    # dropped (a dropped state event is a lost result; a dropped claim, a lost race).
    return isinstance(exc, MatrixRequestError) and (exc.http_status == 429 or exc.http_status >= 500)


def _event(raw: Mapping[str, Any]) -> RoomEvent:
    content = raw.get("content")
    return RoomEvent(str(raw.get("event_id", "")), str(raw.get("sender", "")), str(raw.get("type", "")),
                     content if isinstance(content, dict) else {}, int(raw.get("origin_server_ts") or 0))


class MatrixRoom:
    """One joined room on one homeserver (see the module docstring)."""

    def __init__(self, client: ClientAPI, session: aiohttp.ClientSession, room_id: str,
                 filter_id: str) -> None:
        self._c = client
        self._session = session
        self._room = room_id
        self._filter = filter_id

    @property
    def room_id(self) -> str:
        return self._room

    @property
    def user_id(self) -> str:
        return str(self._c.mxid)

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except MatrixRequestError as exc:
            if _transient(exc):
                raise RoomError(f"homeserver answered HTTP {exc.http_status}", transient=True) from exc
            raise RoomError(f"homeserver refused: {exc.errcode or exc.http_status}: {exc.message}") from exc
        except (MatrixConnectionError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise RoomError(f"homeserver unreachable: {exc or type(exc).__name__}",
                            "check --homeserver; the node keeps working and queues its events",
                            transient=True) from exc

    async def send(self, etype: str, content: Mapping[str, Any], txn_id: str) -> str:
        # The txn id makes a retry after a lost answer return the first event, never a second.
        eid = await self._call(self._c.send_message_event(RoomID(self._room), EventType.find(
            etype, EventType.Class.MESSAGE), cast(Any, dict(content)), txn_id=txn_id))
        return str(eid)

    async def _messages(self, start: str, stop: str | None) -> list[RoomEvent]:
        """Events between ``start`` going back to ``stop`` (None: the room's creation), oldest first."""
        out: list[RoomEvent] = []
        frm: str | None = start
        while frm:
            q = {"dir": "b", "from": frm, "limit": "1000",
                 "filter": json.dumps({"types": [EVENT_PREFIX + "*"]})}
            if stop:
                q["to"] = stop
            r = await self._call(self._c.api.request(Method.GET, Path.v3.rooms[self._room].messages,
                                                     query_params=q))
            chunk = r.get("chunk") or []
            out.extend(_event(e) for e in chunk)
            nxt = r.get("end")
            if not chunk or not nxt or nxt == frm:
                break
            frm = nxt
        out.reverse()
        return out

    async def read(self, since: str | None, timeout_s: float) -> Batch:
        # set_presence=offline: a sync that marks the user online makes a homeserver with
        # presence on do presence work (and fan it out) on every long poll; we never read it.
        q = {"filter": self._filter, "timeout": str(int(timeout_s * 1000)), "set_presence": "offline"}
        if since:
            q["since"] = since
        else:
            q["timeout"] = "0"
        r = await self._call(self._c.api.request(Method.GET, Path.v3.sync, query_params=q,
                                                 retry_count=0))
        room = ((r.get("rooms") or {}).get("join") or {}).get(self._room) or {}
        tl = room.get("timeline") or {}
        events = [_event(e) for e in tl.get("events") or []
                  if str(e.get("type", "")).startswith(EVENT_PREFIX)]
        gap = False
        if tl.get("limited") and tl.get("prev_batch"):
            # More happened than one sync carries: fetch the rest back to where we were.
            older = await self._messages(str(tl["prev_batch"]), since)
            seen = {e.event_id for e in events}
            events = [e for e in older if e.event_id not in seen] + events
            gap = since is not None
        return Batch(tuple(events), str(r.get("next_batch", since or "")), gap)

    async def members(self) -> frozenset[str]:
        m = await self._call(self._c.get_joined_members(RoomID(self._room)))
        return frozenset(str(u) for u in m)

    async def close(self) -> None:
        await self._session.close()


async def connect(homeserver: str, user: str, *, password: str | None = None, token: str | None = None,
                  room: str, create: bool = True, join: bool = True,
                  session_file: pathlib.Path | None = None) -> MatrixRoom:
    """Log in (or use a token), join ``room`` (an alias), creating it when asked and absent.
    ``join=False``: never join; refuse unless the user is already a member (the web view acts in
    a room only as a member: membership is the boundary, not something a button press grants).
    ``session_file``: with a password, the access token of an earlier login is kept there (0600)
    and used again while the homeserver accepts it, so repeated runs neither make a new device
    each time nor pay the homeserver's password hashing (~120 ms of its CPU per login); runs
    started together share one login (a lock beside the file).

    Raises:
        RoomError: bad credentials, unknown room, homeserver down (``transient``).
    """
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=HTTP_TIMEOUT_S))
    api = HTTPAPI(homeserver.rstrip("/"), token or "", client_session=session)
    try:
        if token is None and password is not None and session_file is not None:
            # One login per user and session file, even when several runs start at once: the
            # first takes the lock and logs in, the others wait and use the token it kept.
            async with _session_lock(session_file):
                return await _connect_kept(api, session, homeserver, user, password, room, create,
                                           join, session_file)
        return await _connect(api, session, homeserver, user, password, token, room, create, join)
    except BaseException:
        await session.close()
        raise


async def _connect_kept(api: HTTPAPI, session: aiohttp.ClientSession, homeserver: str, user: str,
                        password: str, room: str, create: bool, join: bool,
                        session_file: pathlib.Path) -> MatrixRoom:
    kept = _kept_token(session_file)
    if kept is not None:
        api.token = kept
        try:
            return await _connect(api, session, homeserver, user, None, kept, room, create, join)
        except RoomError as exc:
            if exc.transient or not exc.what.startswith(f"login as {user} refused"):
                raise
            api.token = ""  # revoked or expired: log in with the password below
    got = await _connect(api, session, homeserver, user, password, None, room, create, join)
    if api.token:
        _keep_token(session_file, api.token)
    return got


@contextlib.asynccontextmanager
async def _session_lock(path: pathlib.Path) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``<session file>.lock``, waited for in a thread (the loop goes
    on); where no lock can be made (a read-only home), none: the cost is only a second login."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _kept_token(path: pathlib.Path) -> str | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("access_token")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _keep_token(path: pathlib.Path, token: str) -> None:
    """Written 0600, atomically; a failure only costs the next run a login."""
    from cheng_build.core.atomic import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(path, json.dumps({"access_token": token}).encode(), mode=0o600)
    except OSError:
        pass


async def _connect(api: HTTPAPI, session: aiohttp.ClientSession, homeserver: str, user: str,
                   password: str | None, token: str | None, room: str, create: bool,
                   join: bool = True) -> MatrixRoom:
    c = ClientAPI(api=api)
    probe = MatrixRoom(c, session, "", "")
    try:
        if token:
            who = await probe._call(c.whoami())
            c.mxid = who.user_id
            if str(who.user_id) != user and not str(who.user_id).startswith(f"@{user}:"):
                raise RoomError(f"login as {user} refused by {homeserver}: the token is "
                                f"{who.user_id}'s", "give the token of --user, or that user")
        else:
            resp = await probe._call(c.login(identifier=UserID(user), password=password or ""))
            c.mxid = resp.user_id
    except RoomError as exc:
        if not exc.transient:
            raise RoomError(f"login as {user} refused by {homeserver}",
                            "check --user and --password-file / --token-file") from exc
        raise RoomError(f"homeserver {homeserver} unreachable", "start it, or check --homeserver",
                        transient=True) from exc
    alias = full_alias(room, str(c.mxid))
    room_id = await _join(c, probe, alias, create) if join else await _member_of(c, probe, alias)
    fid = await probe._call(c.create_filter({  # type: ignore[arg-type]
        "room": {"rooms": [room_id], "timeline": {"types": [EVENT_PREFIX + "*"], "limit": TIMELINE_LIMIT},
                 "state": {"types": []}, "ephemeral": {"types": []}, "account_data": {"types": []}},
        "presence": {"types": []}, "account_data": {"types": []}}))
    return MatrixRoom(c, session, room_id, str(fid))


async def _member_of(c: ClientAPI, probe: MatrixRoom, alias: str) -> str:
    """The room id of ``alias`` when this user has joined it; else a refusal (never a join)."""
    room_id = alias
    if not alias.startswith("!"):
        try:
            room_id = str((await probe._call(c.resolve_room_alias(RoomAlias(alias)))).room_id)
        except RoomError as exc:
            if exc.transient:
                raise
            raise RoomError(f"unknown room {alias}", "check the room the run was posted to") from exc
    joined = await probe._call(c.get_joined_rooms())
    if room_id not in {str(r) for r in joined}:
        raise RoomError(f"{c.mxid} is not a member of room {alias}",
                        "only a member of the room may decide for its runs: run `cis node` with this "
                        "user in the room, or ask a member to invite it")
    return room_id


async def _join(c: ClientAPI, probe: MatrixRoom, alias: str, create: bool) -> str:
    if alias.startswith("!"):
        try:
            return str(await probe._call(c.join_room_by_id(RoomID(alias))))
        except RoomError as exc:
            if exc.transient:
                raise
            raise RoomError(f"cannot join room {alias}: {exc.what}", "check --room") from exc
    for _ in range(3):
        try:
            info = await probe._call(c.resolve_room_alias(RoomAlias(alias)))
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
                rid = await probe._call(c.create_room(alias_localpart=local,
                                                      preset=RoomCreatePreset.PUBLIC,
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
                return str(await probe._call(c.join_room(RoomID(str(info.room_id)), max_retries=0)))
            except RoomError as exc:
                if exc.transient:
                    raise
                if attempt == 19 or ("M_FORBIDDEN" not in exc.what and "no servers" not in exc.what):
                    raise RoomError(f"cannot join room {alias}: {exc.what}",
                                    "ask a member to invite you") from exc
                await asyncio.sleep(0.25)
    raise RoomError(f"cannot create or resolve room {alias}")
